"""Ingest latency: single signed identify calls, one at a time, as Segment's
classic Webhooks destination sends them. Prints percentiles in milliseconds.

Starts gunicorn (2 workers) and a Celery worker like bench/burst.py does; uses
DATABASE_URL / REDIS_URL when set.

    python bench/ingest_latency.py --requests 2000
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import signal
import statistics
import time

import requests
from burst import API_KEY, SECRET, free_port, fresh_environment, run, start, wait_until


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    options = parser.parse_args()

    var_dir, env = fresh_environment()
    web_port = free_port()
    web = f"http://127.0.0.1:{web_port}"
    run(["manage.py", "create_destination", "--slug", "bench", "--name", "Bench",
         "--base-url", "http://127.0.0.1:9", "--api-key", API_KEY, "--shared-secret", SECRET,
         "--attribute", "email", "--attribute", "plan"], env)  # fmt: skip
    processes = [
        start("web", ["-m", "gunicorn", "integration_site.wsgi", "--bind",
                      f"127.0.0.1:{web_port}", "--workers", "2"], env, var_dir),
    ]  # fmt: skip
    session = requests.Session()
    timings = []
    try:
        wait_until(lambda: requests.get(f"{web}/healthz", timeout=1).ok, 30)
        for i in range(options.requests):
            raw = json.dumps({
                "type": "identify", "messageId": f"lat-{i}", "userId": f"user-{i}",
                "timestamp": "2026-01-01T00:00:00Z",
                "traits": {"email": f"u{i}@example.com", "plan": "gold"},
            }).encode()  # fmt: skip
            signature = hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()
            started = time.perf_counter()
            response = session.post(
                f"{web}/api/v1/segment/bench/", data=raw, timeout=10,
                headers={"Content-Type": "application/json", "X-Signature": signature},
            )  # fmt: skip
            timings.append((time.perf_counter() - started) * 1000)
            response.raise_for_status()
    finally:
        for process in processes:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)

    quantiles = statistics.quantiles(timings, n=100)
    print(json.dumps({
        "requests": len(timings),
        "database": env["DATABASE_URL"].split(":", 1)[0],
        "broker": "redis" if os.environ.get("REDIS_URL") else "filesystem",
        "p50_ms": round(quantiles[49], 1),
        "p95_ms": round(quantiles[94], 1),
        "p99_ms": round(quantiles[98], 1),
        "max_ms": round(max(timings), 1),
    }, indent=2))  # fmt: skip


if __name__ == "__main__":
    main()
