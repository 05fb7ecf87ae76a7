from argparse import ArgumentParser
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from talon_sandbox.attributes import parse_attribute_flags
from talon_sandbox.server import (
    DEFAULT_API_KEYS,
    DEFAULT_LOG_LIMIT,
    DEFAULT_MANAGEMENT_KEYS,
    make_server,
)


class Command(BaseCommand):
    help = (
        "Run a local stand-in for a Talon.One deployment: the Integration API"
        " endpoints this project uses plus a /sandbox/ control API."
    )
    # The sandbox needs neither the database nor the project's checks.
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: ArgumentParser) -> None:
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument("--port", type=int, default=8010)
        parser.add_argument(
            "--api-key",
            dest="api_keys",
            action="append",
            metavar="KEY",
            help=f"accepted Integration API key (repeatable; default {DEFAULT_API_KEYS[0]})",
        )
        parser.add_argument(
            "--management-key",
            dest="management_keys",
            action="append",
            metavar="KEY",
            help="accepted Management API key, for GET /v1/attributes"
            f" (repeatable; default {DEFAULT_MANAGEMENT_KEYS[0]})",
        )
        parser.add_argument(
            "--attribute",
            dest="attributes",
            action="append",
            metavar="NAME:TYPE",
            help='customer-profile attribute, e.g. age:number or "tags:(list string)"'
            " (repeatable; default: a demo catalogue)",
        )
        parser.add_argument(
            "--latency-ms",
            type=int,
            default=0,
            help="time each request holds its profiles before committing",
        )
        parser.add_argument(
            "--log-limit",
            type=int,
            default=DEFAULT_LOG_LIMIT,
            help="number of requests kept in the /sandbox/requests log",
        )
        parser.add_argument("--verbose", action="store_true", help="log every request to stderr")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            attributes = (
                parse_attribute_flags(options["attributes"]) if options["attributes"] else None
            )
            server = make_server(
                options["host"],
                options["port"],
                api_keys=options["api_keys"] or DEFAULT_API_KEYS,
                management_keys=options["management_keys"] or DEFAULT_MANAGEMENT_KEYS,
                attributes=attributes,
                latency_ms=options["latency_ms"],
                log_limit=options["log_limit"],
                verbose=options["verbose"],
            )
        except (ValueError, OSError) as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"Talon.One sandbox listening on {server.url}")
        self.stdout.flush()
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
