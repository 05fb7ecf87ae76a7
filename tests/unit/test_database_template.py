"""bin/test_database_template.py: the migrated database `make mutation` copies each
mutant's test database from."""

import os
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

SCRIPT = Path(__file__).resolve().parents[2] / "bin" / "test_database_template.py"
NAME = f"test_talon_segment_template_{os.getpid()}"

pytestmark = pytest.mark.django_db


def template(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--name", NAME, *args],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return done.stdout.strip()


def databases() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT datname FROM pg_database")
        return {name for (name,) in cursor.fetchall()}


def test_the_template_has_every_migration_and_is_dropped_after():
    if connection.vendor != "postgresql":
        assert template() == ""  # SQLite: no template, each run migrates
        return
    assert template() == NAME
    try:
        params = {**connection.get_connection_params(), "dbname": NAME}
        with psycopg.connect(**params) as other:
            applied = set(other.execute("SELECT app, name FROM django_migrations").fetchall())
        assert applied == set(MigrationRecorder(connection).applied_migrations())
    finally:
        assert template("--drop") == ""
    assert NAME not in databases()
