#!/usr/bin/env python3
"""Makes a migrated PostgreSQL database for test databases to be copied from, and
prints its name (nothing on SQLite); with --drop, drops it.

`make mutation` runs it and hands the name to the tests (TEST_DATABASE_TEMPLATE,
read by tests/settings.py): each mutant's test run then copies its database from
the template in a fraction of a second instead of running every migration.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import django

NAME = "test_talon_segment_template"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default=NAME)
    parser.add_argument("--drop", action="store_true", help="drop the template instead")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    os.environ.pop("TEST_DATABASE_TEMPLATE", None)
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection

    if connection.vendor != "postgresql":
        return 0
    with connection._nodb_cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{args.name}" WITH (FORCE)')
        if args.drop:
            return 0
        cursor.execute(f'CREATE DATABASE "{args.name}"')
    connection.close()
    settings.DATABASES["default"]["NAME"] = connection.settings_dict["NAME"] = args.name
    call_command("migrate", verbosity=0, interactive=False, run_syncdb=True)
    call_command("createcachetable")
    connection.close()
    print(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
