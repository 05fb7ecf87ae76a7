"""What becomes of a Segment delete after each of Talon.One's answers, against the
sandbox over real HTTP: done (also when Talon.One knows no such customer), refused
for good, or retried later; and the tombstone a done deletion leaves in the audit log."""

from datetime import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent, ProfileState
from destinations.services import delivery
from destinations.services.handlers.deletions import scrub
from tests.conftest import API_KEY, identify, pending_profile_update, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome
WHEN = "2026-01-02T00:00:00+00:00"


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


def test_a_customer_whose_id_holds_a_slash_and_a_space_is_deleted(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, identify("a/b c", "m1", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    send(post_events, delete("a/b c"))

    delivery.flush(destination.pk)

    assert sandbox.requests_log()[-1]["path"] == "/v1/customer_data/a%2Fb%20c"
    assert sandbox.profile("a/b c") is None
    assert InboundEvent.objects.get(message_id="d1").status == Status.DELIVERED


def test_the_scrub_keeps_the_delete_itself_and_everyone_elses_events(
    make_destination, post_events, sandbox
):
    other_destination = make_destination("other")
    destination = make_destination()
    for slug in ("acme", "other"):
        response = post_events(
            slug, [identify("u1", f"{slug}-u1", timestamp="2026-01-01T00:00:00Z")]
        )
        assert response.status_code == 200, response.content
    send(post_events, identify("u2", "u2", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)
    delivery.flush(other_destination.pk)
    kept = {
        e.message_id: (e.payload, e.attributes, e.call, e.notes)
        for e in InboundEvent.objects.filter(message_id__in=["other-u1", "u2"])
    }
    kept_attempts = dict(
        DeliveryAttempt.objects.filter(destination=other_destination).values_list(
            "id", "request_body"
        )
    )
    assert (len(kept), len(kept_attempts)) == (2, 1)
    send(post_events, delete())

    delivery.flush(destination.pk)

    assert InboundEvent.objects.get(message_id="acme-u1").payload["scrubbed"]
    assert {
        e.message_id: (e.payload, e.attributes, e.call, e.notes)
        for e in InboundEvent.objects.filter(message_id__in=["other-u1", "u2"])
    } == kept
    for attempt_id, body in kept_attempts.items():
        assert DeliveryAttempt.objects.get(pk=attempt_id).request_body == body
    deletion = InboundEvent.objects.get(message_id="d1")
    assert deletion.payload == {
        "type": "delete",
        "userId": "u1",
        "messageId": "d1",
        "timestamp": WHEN,
    }
    assert deletion.notes == []
    delete_attempt = DeliveryAttempt.objects.get(method="DELETE")
    assert (delete_attempt.request_body, delete_attempt.response_body) == ({}, "")


def test_scrubbing_costs_the_same_queries_for_one_event_as_for_many(make_destination, sandbox):
    destination = make_destination()

    def queries_to_scrub(user_id, events):
        for number in range(events):
            pending_profile_update(destination, user_id, f"{user_id}-{number}")
        with CaptureQueriesContext(connection) as queries:
            scrub(destination, user_id, timezone.now())
        assert InboundEvent.objects.filter(user_id=user_id, attributes={}).count() == events
        return len(queries)

    assert queries_to_scrub("many", 5) == queries_to_scrub("one", 1)


def test_a_failed_delete_can_be_redelivered_a_scrubbed_update_cannot(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, identify("u1", "m1"), identify("u2", "m2"))
    delivery.flush(destination.pk)
    send(post_events, delete("u2", "d2"))
    delivery.flush(destination.pk)  # u2's update is scrubbed: nothing left to send
    destination.api_key = "revoked-key"
    destination.save()
    send(post_events, delete("u1", "d1"))
    delivery.flush(destination.pk)
    destination.api_key = API_KEY
    destination.save()

    queued = delivery.redeliver(InboundEvent.objects.filter(message_id__in=["d1", "m2"]))
    delivery.flush(destination.pk)

    assert queued == 1
    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert (statuses["d1"], statuses["m2"]) == (Status.DELIVERED, Status.DELIVERED)
    assert sandbox.profile("u1") is None
    assert sandbox.profile("u2") is None
    assert [r["method"] for r in sandbox.requests_log()] == ["PUT", "DELETE", "DELETE", "DELETE"]
