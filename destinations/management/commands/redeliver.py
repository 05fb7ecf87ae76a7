from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction
from django.utils.dateparse import parse_datetime

from destinations.models import InboundEvent
from destinations.services import delivery


class Command(BaseCommand):
    help = "Queue events for delivery again: by default every failed one."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--destination", metavar="SLUG", help="Only this destination.")
        parser.add_argument(
            "--status",
            choices=[s.value for s in InboundEvent.Status if s != InboundEvent.Status.PENDING],
            default=InboundEvent.Status.FAILED,
            help="Which events (default: failed).",
        )
        parser.add_argument("--since", help="Only events received at or after (ISO 8601).")
        parser.add_argument("--user-id", help="Only this profile (integrationId).")
        parser.add_argument("--event-id", type=int, action="append", help="Only these ids.")
        parser.add_argument("--dry-run", action="store_true", help="Say how many, change nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        events = InboundEvent.objects.filter(status=options["status"])
        if options["destination"]:
            events = events.filter(destination__slug=options["destination"])
        if options["since"]:
            since = parse_datetime(options["since"])
            if since is None:
                raise CommandError("--since must be an ISO 8601 date and time.")
            events = events.filter(received_at__gte=since)
        if options["user_id"]:
            events = events.filter(user_id=options["user_id"])
        if options["event_id"]:
            events = events.filter(pk__in=options["event_id"])
        if options["dry_run"]:
            self.stdout.write(f"{events.count()} event(s) would be queued again.")
            return
        with transaction.atomic():
            count = delivery.redeliver(events.only("pk", "type", "user_id", "attributes"))
        self.stdout.write(f"{count} event(s) queued again.")
