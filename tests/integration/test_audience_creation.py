"""Creating an Engage audience in Talon.One on first sight, after each of Talon.One's
answers: created (its id remembered), retried later, refused for good (the reason
in plain words, also when another party holds the integrationId), or accepted
without an id. Against the sandbox over real HTTP, or a scripted Talon.One."""

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
COMPUTATION_ID = "aud_2Fxq9"


def entry(user_id="u1", message_id="in-1"):
    return audience_identify(user_id, message_id, AUDIENCE, computation_id=COMPUTATION_ID)


def attempts():
    return list(
        DeliveryAttempt.objects.order_by("id").values_list(
            "method", "url", "response_status", "error", "outcome", "attempt_number"
        )
    )


def only_event():
    return InboundEvent.objects.get(kind=InboundEvent.Kind.AUDIENCE)


def test_a_created_audience_is_remembered_and_its_creation_recorded(
    make_destination, post_events, sandbox
):
    destination = make_destination(engage_audiences="audience")
    send(post_events, entry())

    delivery.flush(destination.pk)

    (created,) = sandbox.audiences()
    audience = TalonAudience.objects.get()
    assert (audience.key, audience.computation_id, audience.talon_id) == (
        AUDIENCE,
        COMPUTATION_ID,
        created["id"],
    )
    base = destination.base_url
    assert attempts() == [
        ("POST", f"{base}/v2/audiences", 201, f"audience {AUDIENCE} created", Outcome.SUCCESS, 1),
        ("POST", f"{base}/v2/customer_audiences", 204, "", Outcome.SUCCESS, 1),
    ]
    assert only_event().status == Status.DELIVERED


def test_a_creation_talon_one_cannot_take_now_is_retried_later(
    make_destination, post_events, sandbox, settings
):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    destination = make_destination(engage_audiences="audience")
    send(post_events, entry())
    sandbox.set_faults(fail_next=[503])

    delivery.flush(destination.pk)

    event = only_event()
    assert (event.status, event.reason, event.attempts) == (
        Status.PENDING,
        "retrying: Talon.One answered 503: Service unavailable",
        1,
    )
    assert 5 - 1 <= (event.next_attempt_at - timezone.now()).total_seconds() <= 10
    assert attempts() == [
        (
            "POST",
            f"{destination.base_url}/v2/audiences",
            503,
            "Talon.One answered 503: Service unavailable",
            Outcome.RETRY,
            1,
        )
    ]
    assert list(DeliveryAttempt.objects.get().events.all()) == [event]
    assert TalonAudience.objects.get().talon_id is None

    InboundEvent.objects.update(next_attempt_at=timezone.now())
    delivery.flush(destination.pk)

    assert only_event().status == Status.DELIVERED
    assert TalonAudience.objects.get().talon_id == sandbox.audiences()[0]["id"]


def test_a_creation_refused_for_good_fails_its_events_with_the_reason(
    make_destination, post_events, sandbox
):
    destination = make_destination(engage_audiences="audience", api_key="revoked-key")
    send(post_events, entry("u1", "in-1"), entry("u2", "in-2"))

    delivery.flush(destination.pk)

    refused = (
        "Talon.One answered 401: missing or invalid Integration API key "
        "(header Authorization: ApiKey-v1 <key>)"
    )
    reasons = {
        e.message_id: (e.status, e.reason, e.next_attempt_at) for e in InboundEvent.objects.all()
    }
    failed = (
        Status.FAILED,
        f"could not create the audience {AUDIENCE} in Talon.One: {refused}",
        None,
    )
    assert reasons == {"in-1": failed, "in-2": failed}
    assert attempts() == [
        ("POST", f"{destination.base_url}/v2/audiences", 401, refused, Outcome.FAILED, 1)
    ]
    assert DeliveryAttempt.objects.get().events.count() == 2
    assert TalonAudience.objects.get().talon_id is None


def test_an_integration_id_talon_one_has_already_asks_for_its_id_in_the_admin(
    make_destination, post_events, sandbox
):
    # Another destination on the same Talon.One created the audience first.
    first, second = (
        make_destination("first", engage_audiences="audience"),
        make_destination(engage_audiences="audience"),
    )
    send(post_events, entry(), slug="first")
    delivery.flush(first.pk)
    send(post_events, entry())

    delivery.flush(second.pk)

    event = InboundEvent.objects.get(destination=second, kind=InboundEvent.Kind.AUDIENCE)
    assert (event.status, event.reason) == (
        Status.FAILED,
        f"could not create the audience {AUDIENCE} in Talon.One: Talon.One already has an "
        f"audience with this integrationId ({COMPUTATION_ID}), not created by this "
        "destination: set its Talon.One id on the audience in the admin",
    )
    attempt = DeliveryAttempt.objects.get(destination=second)
    assert (attempt.response_status, attempt.outcome) == (409, Outcome.FAILED)
    assert len(sandbox.audiences()) == 1


@pytest.mark.parametrize("answer", [{}, {"id": "7"}, {"id": True}, ["7"]])
def test_an_answer_without_a_numeric_id_fails_the_creation(make_destination, post_events, answer):
    with scripted_talon(lambda body: (201, {}, answer)) as (url, received):
        destination = make_destination(base_url=url, engage_audiences="audience")
        send(post_events, entry())

        delivery.flush(destination.pk)

    assert len(received) == 1  # no membership sent with no audience id
    event = only_event()
    assert (event.status, event.reason) == (
        Status.FAILED,
        f"could not create the audience {AUDIENCE} in Talon.One: no audience id in the answer",
    )
    assert TalonAudience.objects.get().talon_id is None
    assert DeliveryAttempt.objects.get().outcome == Outcome.FAILED
