"""What the tables hold: values as long as the service lets in, and the indexes it needs."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from destinations.models import DeliveryAttempt, InboundEvent

pytestmark = pytest.mark.django_db


def test_delivery_attempt_keeps_a_long_url(make_destination):
    # A 1,000-character integrationId, percent-encoded into the request's path.
    url = "https://acme.talon.one/v2/customer_profiles/" + "%E7%94%A8" * 1000
    # SQLite stores any length whatever the column type, so reading back proves
    # nothing there: the type is what PostgreSQL enforces (and the migrations match it).
    assert DeliveryAttempt._meta.get_field("url").db_type(connection) == "text"

    attempt = DeliveryAttempt.objects.create(
        destination=make_destination(),
        profile_count=1,
        method="PUT",
        url=url,
        request_body={},
        duration_ms=1,
        attempt_number=1,
        outcome=DeliveryAttempt.Outcome.SUCCESS,
    )

    assert DeliveryAttempt.objects.values_list("url", flat=True).get(pk=attempt.pk) == url


def test_pending_events_have_an_index_for_the_sweeper():
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, InboundEvent._meta.db_table)
    assert constraints["event_pending_due"]["columns"] == ["next_attempt_at"]


def test_migrations_match_the_models():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())
