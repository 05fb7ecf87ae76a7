"""`manage.py redeliver`: which events each filter queues again."""

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from destinations.models import Destination, InboundEvent
from destinations.services import delivery, nudge

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status


@pytest.fixture
def events(make_destination):
    acme, other = make_destination("acme"), make_destination("other")
    rows = {}
    for destination, message_id, status, user_id, days in [
        (acme, "failed-u1", Status.FAILED, "u1", 0),
        (acme, "failed-u2-old", Status.FAILED, "u2", 10),
        (acme, "skipped-u1", Status.SKIPPED, "u1", 0),
        (acme, "delivered-u1", Status.DELIVERED, "u1", 0),
        (other, "other-failed-u1", Status.FAILED, "u1", 0),
    ]:
        row = InboundEvent.objects.create(
            destination=destination,
            message_id=message_id,
            type="identify",
            kind=InboundEvent.Kind.PROFILE,
            user_id=user_id,
            payload={},
            attributes={"plan": "gold"},
            timestamp=timezone.now(),
            status=status,
            reason="Talon.One answered 400",
            attempts=3,
        )
        InboundEvent.objects.filter(pk=row.pk).update(
            received_at=timezone.now() - timedelta(days=days)
        )
        rows[message_id] = row.pk
    return rows


def redeliver(*args: str) -> str:
    out = io.StringIO()
    call_command("redeliver", *args, stdout=out)
    return out.getvalue()


def requeued() -> set[str]:
    return set(
        InboundEvent.objects.filter(status=Status.PENDING).values_list("message_id", flat=True)
    )


def test_by_default_every_failed_event_is_queued_again_as_new(events):
    assert redeliver() == "3 event(s) queued again.\n"

    assert requeued() == {"failed-u1", "failed-u2-old", "other-failed-u1"}
    event = InboundEvent.objects.get(message_id="failed-u1")
    assert (event.attempts, event.reason) == (0, "redelivery requested")
    assert event.next_attempt_at is not None


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--destination", "acme"], {"failed-u1", "failed-u2-old"}),
        (["--status", "skipped"], {"skipped-u1"}),
        (["--status", "delivered"], {"delivered-u1"}),
        (["--user-id", "u2"], {"failed-u2-old"}),
        (["--destination", "acme", "--user-id", "u1"], {"failed-u1"}),
    ],
    ids=["destination", "skipped", "delivered", "user-id", "destination-and-user-id"],
)
def test_filters(events, args, expected):
    redeliver(*args)

    assert requeued() == expected


def test_since_keeps_events_received_at_or_after(events):
    since = (timezone.now() - timedelta(days=1)).isoformat()

    redeliver("--since", since)

    assert requeued() == {"failed-u1", "other-failed-u1"}


def test_event_ids(events):
    redeliver("--event-id", str(events["failed-u1"]), "--event-id", str(events["skipped-u1"]))

    assert requeued() == {"failed-u1"}  # the skipped one is not failed, the default status


def test_dry_run_counts_and_changes_nothing(events):
    assert redeliver("--destination", "acme", "--dry-run") == "2 event(s) would be queued again.\n"

    assert requeued() == set()


def test_a_since_that_is_not_a_date_is_refused(events):
    with pytest.raises(CommandError, match="ISO 8601"):
        redeliver("--since", "yesterday")

    assert requeued() == set()


def test_pending_is_not_a_status_to_redeliver(events):
    with pytest.raises(CommandError):
        redeliver("--status", "pending")


@pytest.mark.parametrize(
    "fields",
    [{"type": "track"}, {"user_id": ""}, {"attributes": {}}],
    ids=["not-identify", "anonymous", "nothing-to-send"],
)
def test_events_that_cannot_be_sent_are_not_queued(make_destination, fields):
    values = {
        "destination": make_destination(),
        "message_id": "m1",
        "type": "identify",
        "user_id": "u1",
        "payload": {},
        "attributes": {"plan": "gold"},
        "timestamp": timezone.now(),
        "status": Status.FAILED,
    }
    InboundEvent.objects.create(**{**values, **fields})

    assert redeliver() == "0 event(s) queued again.\n"
    assert requeued() == set()


def test_redelivered_events_get_their_full_time_again(events):
    InboundEvent.objects.update(queued_at=timezone.now() - timedelta(days=2))

    redeliver("--event-id", str(events["failed-u1"]))

    event = InboundEvent.objects.get(message_id="failed-u1")
    assert timezone.now() - event.queued_at < timedelta(minutes=1)


def test_pending_events_are_left_as_they_are(events):
    InboundEvent.objects.filter(message_id="failed-u1").update(status=Status.PENDING)

    assert delivery.redeliver(InboundEvent.objects.filter(message_id="failed-u1")) == 0

    assert InboundEvent.objects.get(message_id="failed-u1").attempts == 3


def test_redelivery_nudges_each_destination_once_after_commit(
    events, broker_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        redeliver()

    assert broker_queue() == 2
    # Each destination's flush is queued: a third nudge of either queues nothing.
    for destination in Destination.objects.all():
        nudge.nudge(destination.pk)
    assert broker_queue() == 2
