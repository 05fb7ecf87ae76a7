"""create_destination sets what connecting Segment's edge needs."""

from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from destinations.models import Destination, RefusedAttribute
from destinations.services import tracking

pytestmark = pytest.mark.django_db

ARGS = [
    "--slug", "shop", "--name", "Shop", "--base-url", "https://shop.talon.one",
    "--api-key", "tk-1", "--shared-secret", "s-1",
]  # fmt: skip
WRITE_KEY = "wk_Cli7QpR2mX9sLz4Tn8"


def test_write_key_and_first_event_signature_from_the_cli():
    call_command(
        "create_destination", *ARGS, "--write-key", WRITE_KEY, "--accept-first-event-signature"
    )

    destination = Destination.objects.get()
    assert destination.write_key_digest == tracking.write_key_digest(WRITE_KEY)
    assert destination.accept_first_event_signature is True


def test_a_weak_write_key_is_refused_and_nothing_written():
    with pytest.raises(CommandError, match="at least 16"):
        call_command("create_destination", *ARGS, "--write-key", "tooshort")

    assert not Destination.objects.exists()


def test_new_attribute_rows_ask_talon_one_again_about_refused_ones():
    call_command("create_destination", *ARGS, "--attribute", "email")
    destination = Destination.objects.get()
    refused = RefusedAttribute.objects.create(
        destination=destination,
        name="vip",
        message="Talon.One answered 400",
        last_seen_at=timezone.now(),
        retry_at=timezone.now() + timedelta(hours=1),
    )

    call_command("create_destination", *ARGS, "--attribute", "email", "--attribute", "vip:boolean")

    refused.refresh_from_db()
    assert refused.retry_at <= timezone.now()
