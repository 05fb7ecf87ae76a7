"""Real processes for end-to-end tests: a Celery worker (with beat) on the
configured broker (Redis in CI, the filesystem broker otherwise), the Talon.One
sandbox as its own process, and pytest-django's live server for ingest."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
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
        if self.popen and self.popen.poll() is None:
            os.killpg(self.popen.pid, sig)
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait()

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]


@pytest.fixture
def process_env(transactional_db: None) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DATABASE_URL": database_url(),
        "DELIVERY_SWEEP_SECONDS": "1",
        "DELIVERY_BACKOFF_BASE_SECONDS": "0.5",
        "DELIVERY_BACKOFF_MAX_SECONDS": "2",
        "PYTHONUNBUFFERED": "1",
    }


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


@pytest.fixture
def worker(processes: list[Process], process_env: dict[str, str], tmp_path: Path) -> Process:
    args = [
        sys.executable,
        "-m",
        "celery",
        "-A",
        "integration_site",
        "worker",
        "--beat",
        "--schedule",
        str(tmp_path / "beat-schedule"),
        "--concurrency",
        "2",
        "--loglevel",
        "INFO",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
    ]
    process = Process("worker", args, tmp_path, process_env).start()
    processes.append(process)
    return process


@pytest.fixture
def sandbox_process(
    processes: list[Process], process_env: dict[str, str], tmp_path: Path
) -> Process:
    """Not started: the test decides when Talon.One is up."""
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
    process = Process("sandbox", args, tmp_path, process_env)
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
