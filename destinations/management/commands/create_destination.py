from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from destinations.services import destinations


class Command(BaseCommand):
    help = "Create or update a destination (by slug), for scripting and provisioning."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--slug", required=True)
        parser.add_argument("--name", required=True)
        parser.add_argument("--base-url", required=True, help="e.g. https://mycompany.talon.one")
        parser.add_argument("--api-key", required=True, help="Talon.One Integration API key")
        parser.add_argument("--shared-secret", required=True, help="Segment's shared secret")
        parser.add_argument(
            "--attribute",
            action="append",
            default=[],
            metavar="NAME[:TYPE]",
            help="A forwarded trait (repeatable); TYPE defaults to string. "
            "Given attributes replace the destination's list.",
        )
        parser.add_argument(
            "--keep-previous-secret-hours",
            type=float,
            default=24,
            help="When the shared secret changes, keep accepting the old one this long "
            "(0 ends it at once). Default: 24.",
        )
        parser.add_argument(
            "--accept-first-event-signature",
            action="store_true",
            help="Accept Webhooks (Actions) batches whose X-Signature covers only their first "
            "event (prefer an Authorization header; see docs/security.md).",
        )
        parser.add_argument(
            "--write-key",
            help="SDK write key for Segment's Tracking API (/v1/...): 16+ random characters.",
        )
        parser.add_argument("--run-rule-engine", action="store_true")
        parser.add_argument("--disabled", action="store_true")

    def handle(self, *args: Any, **options: Any) -> None:
        attributes = [_parse_attribute(value) for value in options["attribute"]]
        try:
            destination, created = destinations.upsert_destination(
                slug=options["slug"],
                name=options["name"],
                base_url=options["base_url"],
                api_key=options["api_key"],
                shared_secret=options["shared_secret"],
                run_rule_engine=options["run_rule_engine"],
                enabled=not options["disabled"],
                attributes=attributes or None,
                keep_previous_secret_for=timedelta(hours=options["keep_previous_secret_hours"]),
                accept_first_event_signature=options["accept_first_event_signature"],
                write_key=options["write_key"],
            )
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        verb = "Created" if created else "Updated"
        self.stdout.write(
            f"{verb} destination {destination.slug} ({destination.attributes.count()} attributes)"
        )


def _parse_attribute(value: str) -> tuple[str, str]:
    name, _, type_ = value.partition(":")
    return name, type_ or "string"
