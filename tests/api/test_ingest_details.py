"""Ingest details a refactoring could change unnoticed: the id of an event without
a messageId (stored: it must stay the same across versions, or a Segment retry
after an upgrade is stored twice) and how Basic credentials are read."""

import base64
import hashlib
from datetime import timedelta

import pytest
from django.utils import timezone

from destinations.models import EventMapping, InboundEvent
from destinations.services import ingest_cache
from tests.conftest import SECRET, identify

pytestmark = pytest.mark.django_db

# The compact, key-sorted JSON of EVENT, hashed: pinned, not recomputed here.
EVENT = {"type": "identify", "userId": "u1", "traits": {"plan": "gold", "email": "a@b.c"}}
CONTENT_ID = (
    "sha256:"
    + hashlib.sha256(
        b'{"traits":{"email":"a@b.c","plan":"gold"},"type":"identify","userId":"u1"}'
    ).hexdigest()
)


@pytest.fixture
def destination(make_destination):
    return make_destination()


def test_an_event_without_message_id_is_stored_under_its_content_id(destination, post_events):
    post_events("acme", EVENT)

    assert InboundEvent.objects.get().message_id == CONTENT_ID


def basic(credentials: bytes) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(credentials).decode()}


def test_basic_password_may_hold_colons(destination, post_events):
    headers = basic(f"{SECRET}:pass:word".encode())

    assert post_events("acme", identify(), secret=None, headers=headers).status_code == 200


def test_basic_credentials_with_stray_characters_are_refused(destination, post_events):
    # Lenient base64 would skip the "*" and read the right secret.
    headers = {"Authorization": basic(f"{SECRET}:".encode())["Authorization"] + "*"}

    assert post_events("acme", identify(), secret=None, headers=headers).status_code == 401


def test_an_invalid_event_keeps_the_note_on_its_future_timestamp(destination, post_events):
    future = (timezone.now() + timedelta(days=1)).isoformat()
    bad = identify(message_id="bad", userId=5.5, timestamp=future)

    post_events("acme", [identify(), bad])

    row = InboundEvent.objects.get(message_id="bad")
    assert row.status == InboundEvent.Status.SKIPPED
    assert row.notes == [
        {"attribute": "timestamp", "reason": "in the future; taken as the time received"}
    ]


def test_the_track_mappings_are_read_in_three_queries_however_many(
    destination, django_assert_num_queries
):
    for index in range(3):
        mapping = EventMapping.objects.create(
            destination=destination, segment_event=f"Event {index}", talon_event_type=f"e{index}"
        )
        mapping.properties.create(name="total", type="number")

    with django_assert_num_queries(3):  # the attribute rows, the mappings, their properties
        config = ingest_cache.load_config(destination)

    assert {name: len(rule.properties) for name, rule in config.events.items()} == {
        "Event 0": 1,
        "Event 1": 1,
        "Event 2": 1,
    }
