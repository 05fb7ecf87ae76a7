"""What becomes of audience membership changes after each of Talon.One's answers to
POST /v2/customer_audiences: delivered, refused for good, retried later, or a bulk
400/413 halved until the change Talon.One refuses fails alone; and which entries or
exits are too old to send. Against the sandbox or a scripted Talon.One."""

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent, TalonAudience
from destinations.services import delivery
from tests.conftest import audience_identify, send
from tests.local_server import scripted_talon

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome
AUDIENCE = "high_value_customers"
MEMBERSHIPS = "/v2/customer_audiences"


def change(user_id, message_id, member=True, timestamp="2026-01-01T12:00:00Z"):
    return audience_identify(user_id, message_id, AUDIENCE, member, timestamp=timestamp)


def memberships():
    """The membership requests' attempts: profiles, profile, status, outcome, error."""
    return [
        (a.profile_count, a.integration_id, a.response_status, a.outcome, a.error)
        for a in DeliveryAttempt.objects.filter(url__endswith=MEMBERSHIPS).order_by("id")
    ]


def statuses():
    return {
        e.message_id: (e.status, e.reason)
        for e in InboundEvent.objects.filter(kind=InboundEvent.Kind.AUDIENCE)
    }


@pytest.mark.parametrize("status", [400, 413])
def test_a_refused_bulk_is_halved_until_the_refused_change_fails_alone(
    make_destination, post_events, status
):
    def talon(body):
        if "name" in body:
            return 201, {}, {"id": 7}
        if any(c["profileIntegrationId"] == "bad" for c in body["data"]):
            return status, {}, {"message": "invalid profile"}
        return 204, {}, None

    with scripted_talon(talon) as (url, received):
        destination = make_destination(base_url=url, engage_audiences="audience")
        send(post_events, *[change(u, u) for u in ("u1", "bad", "u3", "u4")])
        before = timezone.now()

        delivery.flush(destination.pk)

    sent = [[c["profileIntegrationId"] for c in body["data"]] for body in received[1:]]
    assert sent == [["u1", "bad", "u3", "u4"], ["u1", "bad"], ["u1"], ["bad"], ["u3", "u4"]]
    refused = f"Talon.One answered {status}: invalid profile"
    halved = f"{refused}; split in halves, resent"
    assert memberships() == [
        (4, "", status, Outcome.RETRY, halved),
        (2, "", status, Outcome.RETRY, halved),
        (1, "u1", 204, Outcome.SUCCESS, ""),
        (1, "bad", status, Outcome.FAILED, refused),
        (2, "", 204, Outcome.SUCCESS, ""),
    ]
    assert statuses() == {
        "u1": (Status.DELIVERED, ""),
        "bad": (Status.FAILED, refused),
        "u3": (Status.DELIVERED, ""),
        "u4": (Status.DELIVERED, ""),
    }
    delivered_at = InboundEvent.objects.get(message_id="u1").delivered_at
    assert before <= delivered_at <= timezone.now()
    audience = TalonAudience.objects.get()
    assert (audience.members_added, audience.members_removed) == (3, 0)


def test_changes_for_an_audience_talon_one_does_not_have_fail_with_its_answer(
    make_destination, post_events, sandbox
):
    # An operator set a wrong Talon.One id on the audience.
    destination = make_destination(engage_audiences="audience")
    TalonAudience.objects.create(destination=destination, key=AUDIENCE, talon_id=999)
    send(post_events, change("u1", "in-1"), change("u2", "in-2"))

    delivery.flush(destination.pk)

    refused = "Talon.One answered 404: no audience 999"
    assert memberships() == [(2, "", 404, Outcome.FAILED, refused)]
    assert statuses() == {"in-1": (Status.FAILED, refused), "in-2": (Status.FAILED, refused)}
    assert InboundEvent.objects.filter(next_attempt_at__isnull=False).count() == 0


def test_changes_talon_one_cannot_take_now_are_retried_later(
    make_destination, post_events, sandbox, settings
):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    destination = make_destination(engage_audiences="audience")
    send(post_events, change("u0", "in-0"))
    delivery.flush(destination.pk)  # the audience exists now
    send(post_events, change("u1", "in-1"))
    sandbox.set_faults(fail_next=[503])

    delivery.flush(destination.pk)

    retrying = "Talon.One answered 503: Service unavailable"
    assert memberships()[-1] == (1, "u1", 503, Outcome.RETRY, retrying)
    event = InboundEvent.objects.get(message_id="in-1")
    assert (event.status, event.reason, event.attempts) == (
        Status.PENDING,
        f"retrying: {retrying}",
        1,
    )
    assert 5 - 1 <= (event.next_attempt_at - timezone.now()).total_seconds() <= 10
    assert sandbox.profile("u1") is None


def test_only_changes_older_than_the_delivered_one_are_stale(
    make_destination, post_events, sandbox
):
    destination = make_destination(engage_audiences="audience")
    send(post_events, change("u1", "entry", True, "2026-01-02T00:00:00Z"))
    delivery.flush(destination.pk)
    # An older exit (stale), an exit as old as the entry (sent: the later call wins a
    # tie, as for attributes) and another profile's entry, in one flush.
    send(
        post_events,
        change("u1", "older-exit", False, "2026-01-01T00:00:00Z"),
        change("u1", "tied-exit", False, "2026-01-02T00:00:00Z"),
        change("u2", "other", True, "2026-01-02T00:00:00Z"),
    )
    before = timezone.now()

    delivery.flush(destination.pk)

    stale = "not sent: a newer entry or exit of this audience was already delivered"
    assert statuses() == {
        "entry": (Status.DELIVERED, ""),
        "older-exit": (Status.DELIVERED, stale),
        "tied-exit": (Status.DELIVERED, ""),
        "other": (Status.DELIVERED, ""),
    }
    older = InboundEvent.objects.get(message_id="older-exit")
    assert before <= older.delivered_at <= timezone.now()
    assert sandbox.profile("u1")["audiences"] == []
    assert len(sandbox.profile("u2")["audiences"]) == 1
