"""The management command, run the way the project runs it: `python manage.py ...`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from talon_sandbox.client import SandboxClient

PROJECT_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(30)
def test_run_talon_sandbox_command() -> None:
    # Minimal settings of our own, so the test does not depend on the project's
    # environment (secret key, database, broker).
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.sandbox.command_settings"}
    command = [
        sys.executable,
        "manage.py",
        "run_talon_sandbox",
        "--port",
        "0",
        "--api-key",
        "k1",
        "--attribute",
        "tags:(list string)",
        "--latency-ms",
        "5",
    ]
    process = subprocess.Popen(
        command, cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        line = process.stdout.readline().strip()
        prefix = "Talon.One sandbox listening on http://127.0.0.1:"
        assert line.startswith(prefix), line
        client = SandboxClient(line.removeprefix("Talon.One sandbox listening on "))
        client.wait_ready(timeout=5)
        assert client.attributes() == {"tags": "(list string)"}
        assert client.faults()["latency_ms"] == 5
    finally:
        process.terminate()
        process.wait(timeout=10)
