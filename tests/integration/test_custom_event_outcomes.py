"""What the audit log records of each custom event sent (the profile it was for,
when it was delivered), and that one profile's retried event holds back only
that profile's later events: against the sandbox over real HTTP."""

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, EventMapping, InboundEvent
from destinations.services import delivery
from tests.conftest import send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome


@pytest.fixture
def orders(make_destination):
    destination = make_destination()
    EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order"
    )
    return destination


def track(user_id, message_id, timestamp):
    return {
        "type": "track",
        "event": "Order Completed",
        "userId": user_id,
        "messageId": message_id,
        "timestamp": timestamp,
    }


def delete(user_id, message_id, timestamp):
    return {"type": "delete", "userId": user_id, "messageId": message_id, "timestamp": timestamp}


def attempts():
    return list(
        DeliveryAttempt.objects.order_by("id").values_list(
            "method", "integration_id", "response_status", "outcome"
        )
    )


def test_each_custom_event_attempt_names_its_profile_whatever_the_answer(
    orders, post_events, sandbox
):
    send(
        post_events,
        track("u1", "refused", "2026-01-01T00:00:01Z"),
        track("u1", "accepted", "2026-01-01T00:00:02Z"),
    )
    sandbox.set_faults(fail_next=[403])
    before = timezone.now()
    delivery.flush(orders.pk)
    after = timezone.now()
    send(post_events, track("u1", "retried", "2026-01-01T00:00:03Z"))
    sandbox.set_faults(fail_next=[503])

    delivery.flush(orders.pk)

    assert attempts() == [
        ("POST", "u1", 403, Outcome.FAILED),
        ("POST", "u1", 204, Outcome.SUCCESS),
        ("POST", "u1", 503, Outcome.RETRY),
    ]
    events = {e.message_id: e for e in InboundEvent.objects.all()}
    assert [events[m].status for m in ("refused", "accepted", "retried")] == [
        Status.FAILED,
        Status.DELIVERED,
        Status.PENDING,
    ]
    assert before <= events["accepted"].delivered_at <= after
    assert events["refused"].delivered_at is None


def test_a_retried_custom_event_holds_back_only_its_own_profile(orders, post_events, sandbox):
    # u1's event fails and waits; u2's event is sent in the same round, before
    # u2's deletion (which would otherwise make it not worth sending).
    send(
        post_events,
        track("u1", "u1-order", "2026-01-01T00:00:01Z"),
        track("u2", "u2-order", "2026-01-01T00:00:02Z"),
        delete("u2", "u2-delete", "2026-01-01T00:00:03Z"),
    )
    sandbox.set_faults(fail_next=[503])

    delivery.flush(orders.pk)

    assert [(r["method"], r["path"]) for r in sandbox.requests_log()] == [
        ("POST", "/v2/events"),
        ("POST", "/v2/events"),
        ("DELETE", "/v1/customer_data/u2"),
    ]
    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert statuses == {
        "u1-order": Status.PENDING,
        "u2-order": Status.DELIVERED,
        "u2-delete": Status.DELIVERED,
    }
