"""Production settings: `check --deploy` is clean, and required secrets are required."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]


def run_manage(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """manage.py with the production settings module and only the given environment."""
    clean = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "FIELD_ENCRYPTION", "TALON_", "AXES_"))
    }
    clean.update(DJANGO_SETTINGS_MODULE="integration_site.settings", VAR_DIR=str(tmp_path), **env)
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def production_env() -> dict[str, str]:
    return {
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(50),
        "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "DJANGO_ALLOWED_HOSTS": "example.com",
    }


def test_check_deploy_passes_without_warnings(tmp_path, production_env):
    result = run_manage(tmp_path, "check", "--deploy", "--fail-level", "WARNING", **production_env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout


@pytest.mark.parametrize("missing", ["DJANGO_SECRET_KEY", "FIELD_ENCRYPTION_KEYS"])
def test_production_refuses_to_start_without_its_secrets(tmp_path, production_env, missing):
    del production_env[missing]

    result = run_manage(tmp_path, "check", **production_env)

    assert result.returncode != 0
    assert missing in result.stderr


def test_production_settings_are_strict(tmp_path, production_env):
    code = (
        "from django.conf import settings as s; "
        "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.CSRF_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, "
        "s.SECURE_HSTS_SECONDS >= 31536000, s.ALLOWED_HOSTS, s.TALON_HTTP_ALLOWED_HOSTS)"
    )
    result = run_manage(tmp_path, "shell", "-c", code, **production_env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "False True True True True ['example.com'] []"
