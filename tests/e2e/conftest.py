"""Real processes for end-to-end tests: a Celery worker (with beat) on the
configured broker (Redis in CI, the filesystem broker otherwise), the Talon.One
sandbox as its own process, and pytest-django's live server for ingest."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import requests
from django.db import connection

from talon_sandbox.client import SandboxClient
from tests.conftest import API_KEY, CATALOGUE

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], Any], timeout: float = 60, interval: float = 0.2) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


def database_url() -> str:
    """The test database, for processes outside pytest."""
    db = connection.settings_dict
    if db["ENGINE"] == "django.db.backends.sqlite3":
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Process:
    """A child process with its output in a log file, shown when a test fails."""

    def __init__(self, name: str, args: list[str], log_dir: Path, env: dict[str, str]):
        self.name = name
        self.args = args
        self.log_path = log_dir / f"{name}.log"
        self.env = env
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Process:
        log = self.log_path.open("ab")
        self.popen = subprocess.Popen(
            self.args,
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return self

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Ask, then insist after 3 s: no test here depends on a graceful stop."""
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=3)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()

    def output(self) -> str:
        if not self.log_path.exists():  # never started (a test may keep Talon.One down)
            return "(not started)"
        return self.log_path.read_text(errors="replace")[-5000:]


def child_env() -> dict[str, str]:
    """The environment of every child process, on the test database."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "DELIVERY_SWEEP_SECONDS": "1",
        "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
        "DELIVERY_BACKOFF_MAX_SECONDS": "2",
        # A dead flusher's lease expires in seconds, not a minute.
        "TALON_CONNECT_TIMEOUT": "1",
        "TALON_READ_TIMEOUT": "3",
        "DELIVERY_LEASE_MARGIN_SECONDS": "2",
        # Two flushers per destination (on PostgreSQL), one per worker slot: the
        # fault-injection tests hold the promises with sharded delivery.
        "DELIVERY_SHARDS": "2",
        "PYTHONUNBUFFERED": "1",
    }


@pytest.fixture
def process_env(transactional_db: None) -> dict[str, str]:
    """A test may change it before starting a process."""
    return child_env()


@pytest.fixture
def processes(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in reversed(started):
        process.stop()
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        for process in started:
            print(f"----- {process.name} -----\n{process.output()}")


WORKER_ARGS = [
    "-m", "celery", "-A", "integration_site", "worker", "--beat", "--concurrency", "2",
    "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
]  # fmt: skip


def worker_process(processes: list[Process], env: dict[str, str], log_dir: Path) -> Process:
    """A Celery worker with beat (the sweeper), not started."""
    args = [sys.executable, *WORKER_ARGS, "--schedule", str(log_dir / "beat-schedule")]
    process = Process("worker", args, log_dir, env)
    processes.append(process)
    return process


@pytest.fixture
def worker(processes: list[Process], process_env: dict[str, str], tmp_path: Path) -> Process:
    return worker_process(processes, process_env, tmp_path).start()


def start_web(processes: list[Process], env: dict[str, str], log_dir: Path) -> str:
    """gunicorn serving the project, as in production; returns its URL."""
    port = free_port()
    args = [
        sys.executable, "-m", "gunicorn", "integration_site.wsgi",
        "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
    ]  # fmt: skip
    processes.append(Process("web", args, log_dir, env).start())
    url = f"http://127.0.0.1:{port}"
    wait_for(lambda: _answers(url + "/healthz"), timeout=30)
    return url


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).status_code == 200
    except requests.RequestException:
        return False


class RedisServer:
    """A private redis-server that a test may restart (it keeps nothing on disk)."""

    def __init__(self, processes: list[Process], log_dir: Path, env: dict[str, str]):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            shutil.which("redis-server") or "redis-server", "--port", str(self.port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
        ]  # fmt: skip
        self.process = Process("redis", args, log_dir, env)
        processes.append(self.process)

    def start(self) -> None:
        self.process.start()
        wait_for(self._ping, timeout=15)

    def restart_empty(self) -> None:
        self.process.stop(signal.SIGKILL)
        self.start()
        assert self.keys() == []

    def keys(self) -> list[bytes]:
        return redis.Redis.from_url(self.url).keys("*")

    def _ping(self) -> bool:
        try:
            return bool(redis.Redis.from_url(self.url, socket_timeout=1).ping())
        except redis.RedisError:
            return False


@pytest.fixture
def private_redis(
    processes: list[Process], process_env: dict[str, str], tmp_path: Path
) -> RedisServer:
    if shutil.which("redis-server") is None:
        pytest.skip("redis-server is not installed: the broker-loss test needs its own Redis")
    server = RedisServer(processes, tmp_path, process_env)
    server.start()
    process_env["REDIS_URL"] = server.url
    return server


@pytest.fixture
def sandbox_process(
    processes: list[Process], process_env: dict[str, str], tmp_path: Path
) -> Process:
    """Not started: the test decides when Talon.One is up."""
    return new_sandbox_process(processes, process_env, tmp_path)


def new_sandbox_process(processes: list[Process], env: dict[str, str], log_dir: Path) -> Process:
    """The sandbox on a port of its own with the test API key and catalogue, not started."""
    port = free_port()
    args = [
        sys.executable,
        "manage.py",
        "run_talon_sandbox",
        "--port",
        str(port),
        "--api-key",
        API_KEY,
    ]
    for name, type_ in CATALOGUE.items():
        args += ["--attribute", f"{name}:{type_}"]
    process = Process("sandbox", args, log_dir, env)
    process.url = f"http://127.0.0.1:{port}"  # type: ignore[attr-defined]
    processes.append(process)
    return process


def start_sandbox(process: Process) -> SandboxClient:
    process.start()
    client = SandboxClient(process.url)  # type: ignore[attr-defined]
    client.wait_ready(timeout=30)
    return client


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
