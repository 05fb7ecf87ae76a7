"""The outbox's retry arithmetic and redelivery, at the service level: the
attempt count that reaches the backoff, and an already delivered event sent again."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent
from destinations.services import delivery, outbox
from destinations.services.handlers import profiles
from tests.conftest import identify, send
from tests.local_server import scripted_talon

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status


@pytest.fixture
def backoff_settings(settings):
    # Wide enough apart that attempt 1 (5-10 s) and attempt 5 (80-160 s) cannot overlap.
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 10
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 100_000
    return settings


def wait_of(message_id: str) -> float:
    event = InboundEvent.objects.get(message_id=message_id)
    return (event.next_attempt_at - timezone.now()).total_seconds()


def test_a_retry_waits_by_the_attempt_count_of_the_events(
    make_destination, post_events, backoff_settings
):
    with scripted_talon(lambda body: (503, {}, {"message": "down"})) as (url, _):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "m1"))
        InboundEvent.objects.update(attempts=4)  # tried four times already

        delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert event.attempts == 5
    assert 80 - 1 <= wait_of("m1") <= 160
    assert DeliveryAttempt.objects.get().attempt_number == 5


def test_a_profile_waits_by_its_least_tried_event(make_destination, post_events, backoff_settings):
    # An event that arrived since the last failure starts the count again: it
    # does not inherit the older event's backoff, and the profile's rows wait together.
    with scripted_talon(lambda body: (503, {}, None)) as (url, received):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "tried"), identify("u1", "new"))
        InboundEvent.objects.filter(message_id="tried").update(attempts=4)

        delivery.flush(destination.pk)

    assert len(received) == 1
    assert DeliveryAttempt.objects.get().attempt_number == 1
    assert dict(InboundEvent.objects.values_list("message_id", "attempts")) == {
        "tried": 5,
        "new": 1,
    }
    for message_id in ("tried", "new"):
        assert 5 - 1 <= wait_of(message_id) <= 10


def test_an_internal_error_retries_by_the_attempt_count(
    make_destination, post_events, sandbox, backoff_settings, monkeypatch
):
    destination = make_destination()
    send(post_events, identify("u1", "m1"))
    InboundEvent.objects.update(attempts=4)

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("destinations.services.handlers.profiles.mark_delivered", broken)
    delivery.flush(destination.pk)

    assert InboundEvent.objects.get().reason.startswith("retrying: internal error")
    assert 80 - 1 <= wait_of("m1") <= 160


def test_a_first_failure_waits_the_base_backoff(make_destination, post_events, backoff_settings):
    with scripted_talon(lambda body: (500, {}, None)) as (url, _):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "m1"))

        delivery.flush(destination.pk)

    assert 5 - 1 <= wait_of("m1") <= 10


def test_redelivering_a_delivered_event_sends_it_again(make_destination, post_events, sandbox):
    destination = make_destination()
    send(post_events, identify("u1", "m1", traits={"plan": "gold"}))
    delivery.flush(destination.pk)
    assert len(sandbox.requests_log()) == 1

    assert delivery.redeliver(InboundEvent.objects.all()) == 1
    delivery.flush(destination.pk)

    [_, again] = sandbox.requests_log()
    assert again["profiles"] == 1
    event = InboundEvent.objects.get()
    assert event.status == Status.DELIVERED
    assert event.reason == ""
    assert sandbox.profile("u1")["updates"] == 2


def test_an_event_as_old_as_the_delivered_value_is_not_stale():
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    event = InboundEvent(pk=1, user_id="u1", attributes={"plan": "gold"}, timestamp=at, attempts=1)

    [entry] = profiles.coalesce([event], {"u1": {"plan": at.isoformat()}})

    assert entry.attributes == {"plan": "gold"}
    assert entry.stale == {}


def test_only_the_attributes_older_than_delivered_ones_are_stale():
    at = datetime(2026, 1, 1, 12, tzinfo=UTC)
    delivered = {"u1": {"plan": at.isoformat(), "email": (at - timedelta(days=1)).isoformat()}}
    event = InboundEvent(
        pk=7,
        user_id="u1",
        attributes={"plan": "old", "email": "new@x.io", "age": 3},
        timestamp=at - timedelta(seconds=1),
        attempts=1,
    )

    [entry] = profiles.coalesce([event], delivered)

    assert entry.attributes == {"email": "new@x.io", "age": 3}
    assert entry.stale == {7: ["plan"]}
    assert entry.timestamps == {"email": event.timestamp, "age": event.timestamp}


def test_the_backoff_doubles_up_to_two_to_the_thirtieth_base(settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 1
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 1e308
    for attempt in (31, 32, 5000):
        assert 2**29 <= outbox.backoff(attempt).total_seconds() <= 2**30


def test_without_retry_after_a_short_backoff_stays_short(settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 0.1
    assert 0.05 <= outbox.backoff(1).total_seconds() <= 0.1
    assert 0.05 <= outbox.backoff(1, retry_after=None).total_seconds() <= 0.1


def test_profiles_failing_in_one_bulk_each_wait_by_their_own_attempts(
    make_destination, post_events, backoff_settings
):
    with scripted_talon(lambda body: (503, {}, None)) as (url, received):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "tried"), identify("u2", "new"))
        InboundEvent.objects.filter(message_id="tried").update(attempts=4)

        delivery.flush(destination.pk)

    assert len(received) == 1  # one bulk request for both
    assert 80 - 1 <= wait_of("tried") <= 160
    assert 5 - 1 <= wait_of("new") <= 10


def test_a_request_whose_events_all_gave_up_is_recorded_as_failed(
    make_destination, post_events, backoff_settings
):
    with scripted_talon(lambda body: (503, {}, None)) as (url, _):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "old"))
        InboundEvent.objects.update(queued_at=timezone.now() - timedelta(days=2))

        delivery.flush(destination.pk)

    assert InboundEvent.objects.get().status == Status.FAILED
    assert DeliveryAttempt.objects.get().outcome == DeliveryAttempt.Outcome.FAILED


def test_an_event_queued_the_maximum_age_ago_to_the_microsecond_is_retried_once_more(
    make_destination, post_events, backoff_settings, monkeypatch
):
    # It gives up only once older than DELIVERY_MAX_AGE: never left neither failed
    # nor rescheduled.
    now = timezone.now()
    monkeypatch.setattr(outbox, "timezone", SimpleNamespace(now=lambda: now))
    with scripted_talon(lambda body: (503, {}, None)) as (url, _):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "limit"), identify("u2", "older"))
        InboundEvent.objects.filter(message_id="limit").update(
            queued_at=now - backoff_settings.DELIVERY_MAX_AGE
        )
        InboundEvent.objects.filter(message_id="older").update(
            queued_at=now - backoff_settings.DELIVERY_MAX_AGE - timedelta(microseconds=1)
        )

        delivery.flush(destination.pk)

    limit = InboundEvent.objects.get(message_id="limit")
    assert (limit.status, limit.reason) == (Status.PENDING, "retrying: Talon.One answered 503")
    assert timedelta(seconds=5) <= limit.next_attempt_at - now <= timedelta(seconds=10)
    assert InboundEvent.objects.get(message_id="older").status == Status.FAILED
