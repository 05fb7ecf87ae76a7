"""Issue #10 item 6: attempt counts grew with the event rate. Every flush added an
attempt to all of a claimed profile's pending rows, sent or not, and a request
waited by the highest count among its rows, so a new event inherited an older
one's failures. Now a row's attempt is counted when a request carries it (or,
for custom events, when it waited behind a failed one since the last progress),
and each profile waits by the fewest attempts among its rows."""

from __future__ import annotations

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, EventMapping, InboundEvent
from destinations.services import delivery
from tests.conftest import identify, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]


@pytest.fixture(autouse=True)
def backoff_settings(settings):
    # Attempt 1 waits 5-10 s, attempt 7 waits 320-640 s: they cannot be mistaken.
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 100_000


@pytest.fixture
def destination(make_destination):
    destination = make_destination()
    EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order"
    )
    return destination


def track(message_id, timestamp):
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "messageId": message_id,
        "timestamp": timestamp,
    }


def waits() -> dict[str, float]:
    now = timezone.now()
    return {
        e.message_id: (e.next_attempt_at - now).total_seconds()
        for e in InboundEvent.objects.filter(status="pending")
    }


def attempts() -> dict[str, int]:
    return dict(InboundEvent.objects.values_list("message_id", "attempts"))


def test_a_new_profile_update_waits_one_step_not_the_older_events_backoff(
    destination, post_events, sandbox
):
    send(post_events, identify("u1", "tried", timestamp="2026-01-01T00:00:00Z"))
    InboundEvent.objects.update(attempts=6)  # failed six times already
    send(post_events, identify("u1", "new", timestamp="2026-01-02T00:00:00Z"))
    sandbox.set_faults(error_rate={"503": 1.0})

    delivery.flush(destination.pk)

    assert attempts() == {"tried": 7, "new": 1}
    assert DeliveryAttempt.objects.get().attempt_number == 1
    assert all(5 - 1 <= wait <= 10 for wait in waits().values()), waits()


def test_custom_events_restart_the_backoff_on_a_new_event_and_on_progress(
    destination, post_events, sandbox
):
    send(post_events, track("first", "2026-01-01T00:00:00Z"), track("next", "2026-01-02T00:00:00Z"))
    sandbox.set_faults(error_rate={"503": 1.0})
    for _ in range(4):
        InboundEvent.objects.update(next_attempt_at=timezone.now())
        delivery.flush(destination.pk)
    # Only the first was sent; the next waited through the same four failures.
    assert len(sandbox.requests_log()) == 4
    assert attempts() == {"first": 4, "next": 4}
    assert InboundEvent.objects.get(message_id="next").reason.startswith("waiting:")
    assert all(40 - 1 <= wait <= 80 for wait in waits().values()), waits()  # attempt 4's

    send(post_events, track("new", "2026-01-03T00:00:00Z"))
    delivery.flush(destination.pk)  # due at once: the first is tried again, and fails

    assert attempts() == {"first": 5, "next": 5, "new": 1}
    assert all(5 - 1 <= wait <= 10 for wait in waits().values()), waits()

    sandbox.set_faults(error_rate={}, fail_next=[])
    InboundEvent.objects.update(next_attempt_at=timezone.now())
    delivery.flush(destination.pk)

    # Each delivered event restarted the count of those behind it.
    assert attempts() == {"first": 6, "next": 1, "new": 1}
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"delivered"}


def test_a_custom_event_refused_for_good_is_progress_too(destination, post_events, sandbox):
    send(post_events, track("first", "2026-01-01T00:00:00Z"), track("next", "2026-01-02T00:00:00Z"))
    sandbox.set_faults(fail_next=[503, 503, 403])
    for _ in range(2):
        InboundEvent.objects.update(next_attempt_at=timezone.now())
        delivery.flush(destination.pk)
    assert attempts() == {"first": 2, "next": 2}

    InboundEvent.objects.update(next_attempt_at=timezone.now())
    delivery.flush(destination.pk)

    assert attempts() == {"first": 3, "next": 1}
    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert statuses == {"first": "failed", "next": "delivered"}
    # The audit log numbers the next event's request as its first attempt, too.
    numbers = DeliveryAttempt.objects.order_by("id").values_list("attempt_number", flat=True)
    assert list(numbers) == [1, 2, 3, 1]


def test_claimed_rows_that_are_not_sent_count_no_attempt(destination, post_events, sandbox):
    # Two profiles in one bulk request that fails, then one of them gets a new
    # event: only the rows a request carries count an attempt.
    send(post_events, identify("u1", "a1"), identify("u2", "b1"))
    sandbox.set_faults(error_rate={"503": 1.0})
    delivery.flush(destination.pk)
    sandbox.set_faults(error_rate={})
    send(post_events, identify("u1", "a2", timestamp="2026-01-02T00:00:00Z"))

    delivery.flush(destination.pk)  # u1 is due (its new event); u2 is not

    assert attempts() == {"a1": 2, "a2": 1, "b1": 1}
    assert InboundEvent.objects.get(message_id="b1").status == "pending"
