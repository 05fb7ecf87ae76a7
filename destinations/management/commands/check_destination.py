from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from destinations.models import Destination
from destinations.services import connection


class Command(BaseCommand):
    help = (
        "Ask Talon.One whether a destination's base URL and Integration API key work "
        "(GET /v2/authping). Exit code 0 when they do, 1 otherwise: usable as a deploy check."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("slug")

    def handle(self, *args: Any, **options: Any) -> None:
        destination = Destination.objects.filter(slug=options["slug"]).first()
        if destination is None:
            slugs = ", ".join(Destination.objects.order_by("slug").values_list("slug", flat=True))
            known = f"Known: {slugs}." if slugs else "There are none yet."
            raise CommandError(f"No destination with the slug '{options['slug']}'. {known}")
        result = connection.check(destination)
        if not result.ok:
            raise CommandError(result.message)
        self.stdout.write(result.message)
