"""What becomes of a Segment delete after each of Talon.One's answers, against the
sandbox over real HTTP: done (also when Talon.One knows no such customer), refused
for good, or retried later; and the tombstone a done deletion leaves in the audit log."""

from datetime import datetime

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent, ProfileState
from destinations.services import delivery
from tests.conftest import identify

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome
WHEN = "2026-01-02T00:00:00+00:00"


@pytest.fixture(autouse=True)
def no_broker(monkeypatch):
    monkeypatch.setattr("destinations.services.delivery.nudge", lambda destination_id: None)


def send(post_events, *events):
    response = post_events("acme", list(events))
    assert response.status_code == 200, response.content


def delete(user_id="u1", message_id="d1"):
    return {"type": "delete", "userId": user_id, "messageId": message_id, "timestamp": WHEN}


def attempts():
    return list(
        DeliveryAttempt.objects.order_by("id").values(
            "method", "integration_id", "response_status", "error", "outcome", "attempt_number"
        )
    )


def test_a_delete_talon_one_accepts_is_done_with_no_error(make_destination, post_events, sandbox):
    destination = make_destination()
    send(post_events, identify("u1", "m1", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    send(post_events, delete())

    delivery.flush(destination.pk)

    assert sandbox.profile("u1") is None
    deletion = InboundEvent.objects.get(message_id="d1")
    assert (deletion.status, deletion.reason, deletion.next_attempt_at) == (
        Status.DELIVERED,
        "",
        None,
    )
    assert attempts()[-1] == {
        "method": "DELETE",
        "integration_id": "u1",
        "response_status": 204,
        "error": "",
        "outcome": Outcome.SUCCESS,
        "attempt_number": 1,
    }
    assert list(DeliveryAttempt.objects.order_by("id").last().events.all()) == [deletion]


def test_deleting_an_unknown_customer_is_done_and_says_talon_one_had_none(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, delete("nobody"))

    delivery.flush(destination.pk)

    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert attempts() == [
        {
            "method": "DELETE",
            "integration_id": "nobody",
            "response_status": 404,
            "error": "Talon.One answered 404: no such customer; no such customer in Talon.One",
            "outcome": Outcome.SUCCESS,
            "attempt_number": 1,
        }
    ]
    assert ProfileState.objects.get(integration_id="nobody").deleted_at == datetime.fromisoformat(
        WHEN
    )


def test_a_delete_refused_for_good_fails_and_keeps_the_customer(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, identify("u1", "m1", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    destination.api_key = "revoked-key"
    destination.save()
    send(post_events, delete())

    delivery.flush(destination.pk)

    refused = (
        "Talon.One answered 401: missing or invalid Integration API key "
        "(header Authorization: ApiKey-v1 <key>)"
    )
    deletion = InboundEvent.objects.get(message_id="d1")
    assert (deletion.status, deletion.reason, deletion.next_attempt_at) == (
        Status.FAILED,
        refused,
        None,
    )
    assert attempts()[-1] == {
        "method": "DELETE",
        "integration_id": "u1",
        "response_status": 401,
        "error": refused,
        "outcome": Outcome.FAILED,
        "attempt_number": 1,
    }
    assert list(DeliveryAttempt.objects.order_by("id").last().events.all()) == [deletion]
    assert sandbox.profile("u1") is not None
    assert not ProfileState.objects.filter(deleted_at__isnull=False).exists()
    assert InboundEvent.objects.get(message_id="m1").payload["traits"]["email"] == "ada@example.com"


def test_a_delete_talon_one_cannot_take_now_is_retried_later(
    make_destination, post_events, sandbox, settings
):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    destination = make_destination()
    send(post_events, identify("u1", "m1", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    send(post_events, delete())
    sandbox.set_faults(fail_next=[503])

    delivery.flush(destination.pk)

    deletion = InboundEvent.objects.get(message_id="d1")
    assert (deletion.status, deletion.reason, deletion.attempts) == (
        Status.PENDING,
        "retrying: Talon.One answered 503: Service unavailable",
        1,
    )
    wait = (deletion.next_attempt_at - timezone.now()).total_seconds()
    assert 5 - 1 <= wait <= 10  # attempt 1: half to all of the base
    assert attempts()[-1] == {
        "method": "DELETE",
        "integration_id": "u1",
        "response_status": 503,
        "error": "Talon.One answered 503: Service unavailable",
        "outcome": Outcome.RETRY,
        "attempt_number": 1,
    }
    assert list(DeliveryAttempt.objects.order_by("id").last().events.all()) == [deletion]
    assert sandbox.profile("u1") is not None

    InboundEvent.objects.filter(pk=deletion.pk).update(next_attempt_at=timezone.now())
    delivery.flush(destination.pk)

    assert InboundEvent.objects.get(message_id="d1").status == Status.DELIVERED
    assert sandbox.profile("u1") is None


def test_a_done_deletion_leaves_a_tombstone_saying_when_and_why(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, identify("u1", "m1", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    send(post_events, delete())
    before = timezone.now().replace(microsecond=0)

    delivery.flush(destination.pk)

    after = timezone.now()
    scrubbed = InboundEvent.objects.get(message_id="m1")
    tombstone = scrubbed.payload["scrubbed"]
    prefix, _, rest = tombstone.partition(": ")
    assert rest == f"the customer's data was deleted (Segment delete of {WHEN})"
    assert prefix.startswith("scrubbed ")
    scrubbed_at = datetime.fromisoformat(prefix.removeprefix("scrubbed "))
    assert scrubbed_at.microsecond == 0  # to the second
    assert before <= scrubbed_at <= after
    assert scrubbed.payload == {
        "type": "identify",
        "messageId": "m1",
        "userId": "u1",
        "scrubbed": tombstone,
    }
    assert scrubbed.notes == [{"attribute": "*", "reason": tombstone}]
    assert (scrubbed.attributes, scrubbed.call) == ({}, {})
    first = DeliveryAttempt.objects.order_by("id").first()
    assert (first.request_body, first.response_body) == ({"scrubbed": tombstone}, "")
