"""The service's real processes for a benchmark run, on databases of the run's own.

PostgreSQL and Redis are the servers DATABASE_URL and REDIS_URL name (by default the
local ones on their standard ports). The run migrates a template database once, with
the benchmark's destination in it, and gives each scenario a fresh copy
(CREATE DATABASE ... TEMPLATE); every database it made is dropped at the end. Each
scenario has a Celery queue of its own, deleted from Redis at the end too.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis
import yaml
from cryptography.fernet import Fernet

from bench.payloads import API_KEY, ATTRIBUTES, CATALOGUE, SECRET, SLUG
from talon_sandbox.client import SandboxClient

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(check: Callable[[], Any], timeout: float, interval: float = 0.1) -> Any:
    """check()'s first true value; TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if value := check():
                return value
        except OSError:  # not listening yet (requests' errors are OSErrors too)
            pass
        if time.monotonic() >= deadline:
            raise TimeoutError(f"not done after {timeout:.0f} s")
        time.sleep(interval)


@dataclass(frozen=True)
class WorkerShape:
    pool: str
    concurrency: int
    shards: int


def production_worker(compose: str) -> WorkerShape:
    """The worker as docker-compose.yml runs it: its pool, concurrency and
    DELIVERY_SHARDS (the default of `${DELIVERY_SHARDS:-N}`)."""
    worker = yaml.safe_load(compose)["services"]["worker"]
    command = [str(arg) for arg in worker["command"]]

    def option(name: str, default: str) -> str:
        return command[command.index(name) + 1] if name in command else default

    shards = re.search(r"(\d+)\}?$", str(worker.get("environment", {}).get("DELIVERY_SHARDS", 1)))
    concurrency = int(option("--concurrency", str(os.cpu_count() or 1)))
    return WorkerShape(option("--pool", "prefork"), concurrency, int(shards[1]) if shards else 1)


def with_database(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return urlunsplit(urlsplit(server_url)._replace(path=f"/{name}"))


def require_postgresql(server_url: str) -> None:
    if not urlsplit(server_url).scheme.startswith("postgres"):
        raise SystemExit("DATABASE_URL must name a PostgreSQL server")


def on_server(server_url: str, *statements: str) -> None:
    """Statements run on the server, each its own transaction (CREATE DATABASE)."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)  # type: ignore[arg-type]


def recreate_database(server_url: str, name: str) -> str:
    """Database `name` dropped (if there) and created on the PostgreSQL server of
    `server_url`; its URL."""
    require_postgresql(server_url)
    on_server(
        server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"'
    )
    return with_database(server_url, name)


class Process:
    """A child process in a session of its own, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path):
        self.name = name
        log = (log_dir / f"{name}.log").open("ab")
        self.popen = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        log.close()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM to the main process only (a Celery worker then finishes the task it
        runs; gunicorn its requests), then SIGKILL to whatever of the session is left.
        True if it stopped by itself in time."""
        graceful = True
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                graceful = False
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.popen.wait()
        return graceful


def children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a Celery worker's pool)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            # The command name (2nd field) is in parentheses and may hold spaces.
            if int(stat.rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
    return found


def rss_bytes(pid: int) -> int:
    """VmRSS of a process; 0 once it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


class RssSampler(threading.Thread):
    """The summed RSS of a process and its children, sampled until stopped."""

    def __init__(self, pid: int, interval: float = 0.25):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.samples: list[tuple[float, int]] = []  # (time.monotonic(), bytes)
        self._stop_event = threading.Event()

    def run(self) -> None:
        while not self._stop_event.is_set():
            pids = [self.pid, *children(self.pid)]
            self.samples.append((time.monotonic(), sum(rss_bytes(pid) for pid in pids)))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        self._stop_event.set()
        self.join()


class Stack:
    """One benchmark run: its databases, queues, sandbox and processes."""

    def __init__(self, log_dir: Path):
        self.server_url = os.environ.get("DATABASE_URL") or DEFAULT_DATABASE_URL
        require_postgresql(self.server_url)
        self.redis_url = os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
        self.log_dir = log_dir
        log_dir.mkdir(parents=True, exist_ok=True)
        self.prefix = f"talon_bench_{os.getpid()}"
        self.fernet_key = Fernet.generate_key().decode()
        self.databases: list[str] = []
        self.processes: list[Process] = []
        self.sandbox_url = f"http://127.0.0.1:{free_port()}"
        self.sandbox = SandboxClient(self.sandbox_url)
        self.template = ""
        self.sandbox_process: Process | None = None

    # Environment and databases

    def environment(self, database: str, **extra: str) -> dict[str, str]:
        """The processes' environment on `database`; the Celery queue is named after it."""
        return {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "integration_site.settings",
            "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
            "FIELD_ENCRYPTION_KEYS": self.fernet_key,
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "TALON_HTTP_ALLOWED_HOSTS": "127.0.0.1",
            "VAR_DIR": str(self.log_dir),
            "DATABASE_URL": with_database(self.server_url, database),
            "REDIS_URL": self.redis_url,
            "CELERY_QUEUE": database,
            "LOG_LEVEL": "WARNING",
            "PYTHONUNBUFFERED": "1",
            **extra,
        }

    def prepare(self) -> None:
        """The template database: migrated, with the destination; and the sandbox."""
        self.template = self.create_database("template")
        env = self.environment(self.template)
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=env,
                       check=True)  # fmt: skip
        attributes = [arg for name in ATTRIBUTES for arg in ("--attribute", name)]
        subprocess.run(
            [*manage, "create_destination", "--slug", SLUG, "--name", "Bench",
             "--base-url", self.sandbox_url, "--api-key", API_KEY, "--shared-secret", SECRET,
             *attributes],
            cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        catalogue = [arg for name in CATALOGUE for arg in ("--attribute", name)]
        port = urlsplit(self.sandbox_url).port
        self.sandbox_process = Process(
            "sandbox",
            ["manage.py", "run_talon_sandbox", "--port", str(port), "--api-key", API_KEY,
             *catalogue],
            # Production settings leave the sandbox out.
            self.environment(self.template, DJANGO_DEBUG="true"),
            self.log_dir,
        )  # fmt: skip
        self.sandbox.wait_ready(timeout=60)

    def create_database(self, name: str, template: str = "") -> str:
        database = f"{self.prefix}_{name}"
        on_server(
            self.server_url,
            f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)',
            f'CREATE DATABASE "{database}"' + (f' TEMPLATE "{template}"' if template else ""),
        )
        self.databases.append(database)
        return database

    def scenario_database(self, name: str) -> str:
        """A fresh copy of the template: migrated, with the destination."""
        return self.create_database(name, template=self.template)

    def sql(self, database: str, query: str, params: tuple = ()) -> list[tuple]:
        with psycopg.connect(with_database(self.server_url, database), autocommit=True) as conn:
            cursor = conn.execute(query, params)  # type: ignore[arg-type]
            return cursor.fetchall() if cursor.description else []

    def statuses(self, database: str) -> dict[str, int]:
        """The events of a database by status."""
        rows = self.sql(
            database, "SELECT status, count(*) FROM destinations_inboundevent GROUP BY status"
        )
        return dict(rows)

    def set_rate(self, database: str, per_second: int) -> None:
        self.sql(
            database,
            "UPDATE destinations_destination SET max_requests_per_second = %s WHERE slug = %s",
            (per_second, SLUG),
        )

    # Processes

    def start(self, name: str, args: list[str], env: dict[str, str]) -> Process:
        process = Process(name, args, env, self.log_dir)
        self.processes.append(process)
        return process

    def stop(self, process: Process, timeout: float = 30) -> bool:
        graceful = process.stop(timeout)
        self.processes.remove(process)
        return graceful

    def web(self, name: str, env: dict[str, str], workers: int = 2) -> tuple[Process, int]:
        """gunicorn as production runs it (gunicorn.conf.py), `workers` sync workers, on
        the benchmark's URLs (the product's plus a bare view); its port once it answers."""
        port = free_port()
        process = self.start(
            name,
            ["-m", "gunicorn", "integration_site.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers)],
            {**env, "DJANGO_SETTINGS_MODULE": "bench.settings"},
        )  # fmt: skip
        wait_until(lambda: _answers(port, "/healthz"), timeout=60)
        return process, port

    def worker(self, name: str, env: dict[str, str], pool: str, concurrency: int) -> Process:
        return self.start(
            name,
            ["-m", "celery", "-A", "integration_site", "worker", "--pool", pool,
             "--concurrency", str(concurrency), "--loglevel", "WARNING",
             "--hostname", f"{self.prefix}-{name}@%h"],
            env,
        )  # fmt: skip

    def consuming(self, env: dict[str, str]) -> bool:
        """Whether a worker consumes the queue of `env` yet: it declares (binds) its
        queue in Redis when it starts consuming. Start beat after: it declares it too."""
        client = redis.Redis.from_url(self.redis_url)
        return bool(client.exists(f"_kombu.binding.{env['CELERY_QUEUE']}"))

    def beat(self, name: str, env: dict[str, str]) -> Process:
        return self.start(
            name,
            ["-m", "celery", "-A", "integration_site", "beat", "--loglevel", "WARNING",
             "--schedule", str(self.log_dir / f"{name}-schedule")],
            env,
        )  # fmt: skip

    def close(self) -> None:
        """Stop what still runs, drop the databases and queues of the run."""
        for process in reversed(self.processes):
            process.stop(timeout=10)
        self.processes.clear()
        if self.sandbox_process:
            self.sandbox_process.stop(timeout=10)
        if self.databases:
            on_server(
                self.server_url,
                *(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)' for name in self.databases),
            )
        client = redis.Redis.from_url(self.redis_url)
        for key in client.scan_iter(match=f"*{self.prefix}_*"):  # the queues are named so
            client.delete(key)


def _answers(port: int, path: str) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=2) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        return sock.recv(12).endswith(b"200")
