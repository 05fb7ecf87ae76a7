"""Burst benchmark: an Engage audience's first sync, one identify per member.

Starts the real processes (gunicorn, a Celery worker with beat, the Talon.One
sandbox), posts N identify calls through the ingest API in Segment batches
while the worker is already delivering, and measures:
  - ingest: events accepted per second (HTTP, signed, stored);
  - delivery: seconds from the first accepted event (or, with --ingest-first,
    from the worker's start once every event is in) until the sandbox holds
    every profile, and how many requests Talon.One (the sandbox) received.

Uses DATABASE_URL / REDIS_URL when set (PostgreSQL / Redis), otherwise SQLite
and the filesystem broker under var/bench/. Not part of `make test`.

    python bench/burst.py --profiles 100000
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-shared-secret"  # noqa: S105 (the benchmark's own)
API_KEY = "bench-api-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def environment(var_dir: Path) -> dict[str, str]:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "integration_site.settings",
        "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DJANGO_SECURE_SSL_REDIRECT": "false",
        "TALON_HTTP_ALLOWED_HOSTS": "127.0.0.1",
        "VAR_DIR": str(var_dir),
        "CELERY_QUEUE": f"bench-{os.getpid()}",
        "LOG_LEVEL": "WARNING",
    }
    if "DATABASE_URL" not in os.environ:
        env["DATABASE_URL"] = f"sqlite:///{var_dir / 'bench.sqlite3'}"
    return env


def fresh_environment() -> tuple[Path, dict[str, str]]:
    """var/bench/ and an environment for the processes, on an empty, migrated database."""
    var_dir = ROOT / "var" / "bench"
    var_dir.mkdir(parents=True, exist_ok=True)
    (var_dir / "bench.sqlite3").unlink(missing_ok=True)
    env = environment(var_dir)
    run(["manage.py", "migrate", "--noinput", "-v", "0"], env)
    run(["manage.py", "flush", "--noinput"], env)
    return var_dir, env


def run(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True)


def start(name: str, args: list[str], env: dict[str, str], log_dir: Path) -> subprocess.Popen:
    log = (log_dir / f"{name}.log").open("wb")
    return subprocess.Popen(
        [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def wait_until(check, timeout: float, interval: float = 0.2):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if value := check():
                return value
        except requests.RequestException:
            pass
        time.sleep(interval)
    raise SystemExit(f"gave up after {timeout}s")


def events(profiles: int) -> list[dict]:
    return [
        {
            "type": "identify",
            "messageId": f"bench-{i}",
            "userId": f"member-{i}",
            "timestamp": "2026-01-01T00:00:00Z",
            "traits": {"email": f"member-{i}@example.com", "plan": "gold", "vip": True,
                       "address": {"city": "Berlin"}, "notForwarded": i,
                       "bench_audience": True},
            "context": {"personas": {"computation_class": "audience",
                                     "computation_key": "bench_audience"}},
        }
        for i in range(profiles)
    ]  # fmt: skip


def post_batches(web: str, all_events: list[dict], batch: int, threads: int) -> float:
    """Posts every batch; returns when the first was accepted."""
    session = requests.Session()
    first_accepted: list[float] = []

    def post(chunk: list[dict]) -> None:
        raw = json.dumps(chunk).encode()
        signature = hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
        response = session.post(
            f"{web}/api/v1/segment/bench/", data=raw, timeout=60,
            headers={"Content-Type": "application/json", "X-Signature": signature},
        )  # fmt: skip
        response.raise_for_status()
        first_accepted.append(time.monotonic())

    chunks = [all_events[i : i + batch] for i in range(0, len(all_events), batch)]
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(post, chunks))
    return min(first_accepted)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000, help="events per ingest request")
    parser.add_argument("--threads", type=int, default=2, help="parallel ingest requests")
    parser.add_argument("--rate", type=int, default=50, help="destination requests/second")
    parser.add_argument(
        "--ingest-first",
        action="store_true",
        help="start the worker only after every event is in: times delivery alone",
    )
    options = parser.parse_args()

    var_dir, env = fresh_environment()
    sandbox_port, web_port = free_port(), free_port()
    sandbox_url, web = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{web_port}"
    run(["manage.py", "create_destination", "--slug", "bench", "--name", "Bench",
         "--base-url", sandbox_url, "--api-key", API_KEY, "--shared-secret", SECRET,
         "--attribute", "email", "--attribute", "plan", "--attribute", "vip:boolean",
         "--attribute", "address_city"], env)  # fmt: skip
    if options.rate != 50:
        run(["manage.py", "shell", "-c",
             "from destinations.models import Destination as D; "
             f"D.objects.filter(slug='bench').update(max_requests_per_second={options.rate})"],
            env)  # fmt: skip

    worker_args = ["-m", "celery", "-A", "integration_site", "worker", "--beat",
                   "--concurrency", "2", "--loglevel", "WARNING", "--schedule",
                   str(var_dir / "beat-schedule")]  # fmt: skip
    processes = [
        start("sandbox", ["manage.py", "run_talon_sandbox", "--port", str(sandbox_port),
                          "--api-key", API_KEY, "--attribute", "email:string",
                          "--attribute", "plan:string", "--attribute", "vip:boolean",
                          "--attribute", "address_city:string",
                          "--attribute", "bench_audience:boolean"],
              {**env, "DJANGO_DEBUG": "true"}, var_dir),  # production settings omit the sandbox
        start("web", ["-m", "gunicorn", "integration_site.wsgi", "--bind",
                      f"127.0.0.1:{web_port}", "--workers", "2"], env, var_dir),
    ]  # fmt: skip
    if not options.ingest_first:
        processes.append(start("worker", worker_args, env, var_dir))
    try:
        wait_until(lambda: requests.get(f"{web}/healthz", timeout=1).ok, 30)
        wait_until(lambda: requests.get(f"{sandbox_url}/sandbox/stats", timeout=1).ok, 30)
        payload = events(options.profiles)

        started = time.monotonic()
        first = post_batches(web, payload, options.batch, options.threads)
        ingested = time.monotonic()
        if options.ingest_first:
            processes.append(start("worker", worker_args, env, var_dir))
            first = time.monotonic()

        def profiles_stored() -> bool:
            stats = requests.get(f"{sandbox_url}/sandbox/stats", timeout=5).json()
            return stats["profiles"] >= options.profiles

        wait_until(profiles_stored, timeout=1800, interval=0.1)
        delivered = time.monotonic()
        stats = requests.get(f"{sandbox_url}/sandbox/stats", timeout=5).json()
        sample = requests.get(f"{sandbox_url}/sandbox/profiles/member-7", timeout=5).json()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
        for process in processes:
            process.wait(timeout=30)

    result = {
        "profiles": options.profiles,
        "database": env["DATABASE_URL"].split(":", 1)[0],
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "ingest_seconds": round(ingested - started, 2),
        "ingest_events_per_second": round(options.profiles / (ingested - started)),
        "mode": "ingest first, then deliver" if options.ingest_first else "concurrent",
        "delivery_seconds": round(delivered - first, 2),
        "talon_requests": stats["requests"],
        "talon_requests_by_status": stats["by_status"],
        "profiles_in_talon": stats["profiles"],
        "profile_updates_in_talon": stats["profiles_updated"],
        "sample_profile": sample["attributes"],
    }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
