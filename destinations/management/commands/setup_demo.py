import json
import time
from typing import Any

import requests
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from destinations.models import Destination
from destinations.services.destinations import upsert_destination
from destinations.services.ingest import segment_signature

DEMO_ATTRIBUTES = [
    ("email", "string"),
    ("firstName", "string"),
    ("plan", "string"),
    ("age", "number"),
    ("vip", "boolean"),
    ("address_city", "string"),
    ("createdAt", "time"),
]
DEMO_SECRET = "demo-shared-secret"  # noqa: S105 (the local demo's, printed on purpose)
DEMO_API_KEY = "sandbox-api-key"
DEMO_SLUG = "demo"


class Command(BaseCommand):
    help = (
        "Create the demo admin user and a destination pointed at the local sandbox (for make run)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--web-url", default="http://127.0.0.1:8000")
        parser.add_argument("--sandbox-url", default="http://127.0.0.1:8010")
        parser.add_argument("--admin-password", default="admin")
        parser.add_argument(
            "--wait",
            type=float,
            default=0,
            metavar="SECONDS",
            help="Print only once the web server and the sandbox answer (make run starts "
            "them beside this command), waiting at most this long.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        user_model = get_user_model()
        if not user_model.objects.filter(username="admin").exists():
            user_model.objects.create_superuser(
                "admin", "admin@example.com", options["admin_password"]
            )
        # The demo rows only for a new destination: make run runs this every time,
        # and the rows a marketer edited since are theirs.
        exists = Destination.objects.filter(slug=DEMO_SLUG).exists()
        destination, _ = upsert_destination(
            slug=DEMO_SLUG,
            name="Demo (local Talon.One sandbox)",
            base_url=options["sandbox_url"],
            api_key=DEMO_API_KEY,
            shared_secret=DEMO_SECRET,
            attributes=None if exists else DEMO_ATTRIBUTES,
        )
        web = options["web_url"]
        ingest_url = f"{web}/api/v1/segment/{destination.slug}/"
        body = json.dumps(
            {
                "type": "identify",
                "messageId": "demo-message-1",
                "userId": "demo-user-1",
                "timestamp": "2026-01-01T12:00:00Z",
                "traits": {
                    "email": "ada@example.com",
                    "firstName": "Ada",
                    "plan": "gold",
                    "address": {"city": "Berlin"},
                    "favouriteColour": "green",
                },
            },
            separators=(",", ":"),
        )
        signature = segment_signature(DEMO_SECRET.encode(), body.encode())
        if options["wait"]:
            _wait_for([f"{web}/readyz", f"{options['sandbox_url']}/sandbox/stats"], options["wait"])
        self.stdout.write(
            f"""
Admin:      {web}/admin/   (login admin / {options["admin_password"]})
Ingest URL: {ingest_url}   (shared secret: {DEMO_SECRET})
Sandbox:    {options["sandbox_url"]}/sandbox/profiles

Send a signed identify:
  curl -sS -X POST '{ingest_url}' -H 'Content-Type: application/json' \\
    -H 'X-Signature: {signature}' \\
    --data '{body}'

Then see the profile:
  curl -sS {options["sandbox_url"]}/sandbox/profiles/demo-user-1
"""
        )


def _wait_for(urls: list[str], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    for url in urls:
        while not _answers(url):
            if time.monotonic() > deadline:
                raise CommandError(f"{url} did not answer within {seconds:.0f} s")
            time.sleep(0.25)


def _answers(url: str) -> bool:
    try:
        return requests.get(url, timeout=1).ok
    except requests.RequestException:
        return False
