"""The delivery service against the sandbox over real HTTP (no broker: flush is called directly)."""

import io
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from destinations.models import DeliveryAttempt, DeliveryLease, InboundEvent, ProfileState
from destinations.services import delivery, outbox
from destinations.services.handlers import profiles
from destinations.services.shards import WHOLE
from tests.conftest import API_KEY, identify, send
from tests.local_server import scripted_talon

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email", "plan", ("age", "number"), "address_city"])


def make_all_due():
    InboundEvent.objects.filter(status=Status.PENDING).update(next_attempt_at=timezone.now())


def statuses():
    return dict(InboundEvent.objects.values_list("message_id", "status"))


def test_pending_events_reach_talon_one_in_one_bulk_request(destination, post_events, sandbox):
    send(
        post_events,
        identify("u1", "m1", traits={"email": "a@x.io", "age": 36}),
        identify("u2", "m2", traits={"plan": "silver", "address": {"city": "Oslo"}}),
    )

    delivery.flush(destination.pk)

    assert sandbox.profiles() == {
        "u1": {
            "attributes": {"email": "a@x.io", "age": 36},
            "updates": 1,
            "audiences": [],
            "events": [],
            "created": sandbox.profiles()["u1"]["created"],
        },
        "u2": {
            "attributes": {"plan": "silver", "address_city": "Oslo"},
            "updates": 1,
            "audiences": [],
            "events": [],
            "created": sandbox.profiles()["u2"]["created"],
        },
    }
    assert statuses() == {"m1": Status.DELIVERED, "m2": Status.DELIVERED}
    [request] = sandbox.requests_log()
    assert request["path"] == "/v2/customer_profiles"
    assert request["profiles"] == 2


def test_every_attempt_is_audited_without_the_api_key(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))

    delivery.flush(destination.pk)

    attempt = DeliveryAttempt.objects.get()
    assert attempt.outcome == DeliveryAttempt.Outcome.SUCCESS
    assert attempt.response_status == 204
    assert attempt.method == "PUT"
    assert attempt.url == f"{destination.base_url}/v2/customer_profiles?silent=yes"
    assert attempt.request_body == {
        "customerProfiles": [
            {"integrationId": "u1", "attributes": {"email": "ada@example.com", "plan": "gold"}}
        ]
    }
    assert attempt.attempt_number == 1
    assert list(attempt.events.values_list("message_id", flat=True)) == ["m1"]
    audit_text = repr(list(DeliveryAttempt.objects.values()))
    assert API_KEY not in audit_text


def test_events_of_one_profile_coalesce_newest_timestamp_wins(destination, post_events, sandbox):
    send(
        post_events,
        identify("u1", "new", timestamp="2026-01-02T00:00:00Z", traits={"plan": "gold"}),
        identify(
            "u1",
            "old",
            timestamp="2026-01-01T00:00:00Z",
            traits={"plan": "bronze", "email": "old@x.io"},
        ),
    )

    delivery.flush(destination.pk)

    assert sandbox.profile("u1")["attributes"] == {"plan": "gold", "email": "old@x.io"}
    assert sandbox.profile("u1")["updates"] == 1
    assert statuses() == {"new": Status.DELIVERED, "old": Status.DELIVERED}


def test_a_late_event_never_overwrites_a_newer_delivered_value(destination, post_events, sandbox):
    send(
        post_events,
        identify("u1", "new", timestamp="2026-01-02T00:00:00Z", traits={"plan": "gold"}),
    )
    delivery.flush(destination.pk)

    send(
        post_events,
        identify(
            "u1",
            "late",
            timestamp="2026-01-01T00:00:00Z",
            traits={"plan": "bronze", "email": "e@x.io"},
        ),
    )
    delivery.flush(destination.pk)

    assert sandbox.profile("u1")["attributes"] == {"plan": "gold", "email": "e@x.io"}
    late = InboundEvent.objects.get(message_id="late")
    assert late.status == Status.DELIVERED
    assert "newer value was already delivered for plan" in late.reason


def test_a_late_event_with_only_stale_values_sends_nothing(destination, post_events, sandbox):
    send(post_events, identify("u1", "new", timestamp="2026-01-02T00:00:00Z"))
    delivery.flush(destination.pk)
    send(post_events, identify("u1", "late", timestamp="2026-01-01T00:00:00Z"))

    delivery.flush(destination.pk)

    assert len(sandbox.requests_log()) == 1
    late = InboundEvent.objects.get(message_id="late")
    assert late.status == Status.SKIPPED
    assert "older than a value already delivered" in late.reason


@pytest.mark.parametrize(
    ("faults", "reason"),
    [
        ({"down": True}, "Talon.One answered 503"),
        ({"error_rate": {"500": 1.0}}, "Talon.One answered 500"),
        ({"error_rate": {"409": 1.0}}, "avoid parallel requests"),
        ({"error_rate": {"429": 1.0}}, "Talon.One answered 429"),
    ],
    ids=["down", "500", "409", "429"],
)
def test_retryable_answers_reschedule_then_deliver(
    destination, post_events, sandbox, faults, reason
):
    send(post_events, identify("u1", "m1"))
    sandbox.set_faults(**faults)

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert event.next_attempt_at > timezone.now()
    assert reason in event.reason
    assert DeliveryAttempt.objects.get().outcome == DeliveryAttempt.Outcome.RETRY

    sandbox.set_faults(down=False, error_rate={})
    make_all_due()
    delivery.flush(destination.pk)

    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert InboundEvent.objects.get().attempts == 2
    assert sandbox.profile("u1")["attributes"] == {"email": "ada@example.com", "plan": "gold"}


def test_connection_refused_is_retried(make_destination, post_events):
    destination = make_destination(base_url="http://127.0.0.1:9")
    send(post_events, identify("u1", "m1"))

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert "Could not connect to Talon.One" in event.reason
    assert DeliveryAttempt.objects.get().error == "Could not connect to Talon.One"


def test_retry_after_is_honoured(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))
    sandbox.set_faults(error_rate={"429": 1.0}, retry_after=300)

    delivery.flush(destination.pk)

    wait = InboundEvent.objects.get().next_attempt_at - timezone.now()
    assert wait > timedelta(seconds=290)


def test_backoff_grows_exponentially_with_jitter(settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 2
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 60
    for attempt, ceiling in [(1, 2), (2, 4), (3, 8), (10, 60)]:
        seconds = outbox.backoff(attempt).total_seconds()
        assert ceiling / 2 <= seconds <= ceiling


def test_retries_end_as_a_failure_after_the_maximum_age(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))
    InboundEvent.objects.update(queued_at=timezone.now() - timedelta(days=2))
    sandbox.set_faults(down=True)

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.FAILED
    assert event.reason.startswith("gave up after 1 day")
    assert "503" in event.reason


def test_one_rejected_profile_fails_alone_and_the_rest_of_the_bulk_arrives(
    destination, post_events, sandbox
):
    send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(5)])
    sandbox.set_faults(reject_profiles=["u3"])

    delivery.flush(destination.pk)

    assert sorted(sandbox.profiles()) == ["u0", "u1", "u2", "u4"]
    assert statuses()["m3"] == Status.FAILED
    assert "Talon.One answered 400" in InboundEvent.objects.get(message_id="m3").reason
    assert {s for m, s in statuses().items() if m != "m3"} == {Status.DELIVERED}


def test_wrong_api_key_fails_with_the_reason(make_destination, post_events, sandbox):
    destination = make_destination(api_key="not-the-key")
    send(post_events, identify("u1", "m1"))

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.FAILED
    assert event.reason.startswith("Talon.One answered 401")


def test_rule_engine_sends_one_request_per_profile(make_destination, post_events, sandbox):
    destination = make_destination(run_rule_engine=True)
    send(post_events, identify("u 1/é", "m1"), identify("u2", "m2"))

    delivery.flush(destination.pk)

    requests = sandbox.requests_log()
    assert [r["path"] for r in requests] == [
        "/v2/customer_profiles/u%201%2F%C3%A9",
        "/v2/customer_profiles/u2",
    ]
    assert all(r["query"] == {"runRuleEngine": "true"} for r in requests)
    assert sandbox.profile("u 1/é")["attributes"] == {"email": "ada@example.com", "plan": "gold"}
    assert DeliveryAttempt.objects.filter(integration_id="u2").exists()


def test_a_held_lease_keeps_a_second_flusher_out(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))
    assert delivery._acquire_lease(destination.pk, WHOLE, "someone-else")

    assert delivery.flush(destination.pk) is None
    assert sandbox.requests_log() == []


def test_flush_reports_when_work_is_next_due(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))
    sandbox.set_faults(down=True)

    due = delivery.flush(destination.pk)

    assert due == InboundEvent.objects.get().next_attempt_at
    sandbox.set_faults(down=False)
    make_all_due()
    assert delivery.flush(destination.pk) is None


def test_disabled_destination_holds_its_events(destination, post_events, sandbox):
    send(post_events, identify("u1", "m1"))
    destination.enabled = False
    destination.save()

    delivery.flush(destination.pk)

    assert sandbox.requests_log() == []
    assert InboundEvent.objects.get().status == Status.PENDING


def test_redeliver_requeues_failed_events(make_destination, post_events, sandbox):
    destination = make_destination(api_key="not-the-key")
    send(post_events, identify("u1", "m1"))
    delivery.flush(destination.pk)
    destination.api_key = API_KEY
    destination.save()

    assert delivery.redeliver(InboundEvent.objects.all()) == 1
    delivery.flush(destination.pk)

    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert sandbox.profile("u1") is not None


def test_requests_are_spaced_by_the_destination_rate_limit(make_destination, post_events, sandbox):
    destination = make_destination(run_rule_engine=True, max_requests_per_second=10)
    send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(4)])

    started = time.monotonic()
    delivery.flush(destination.pk)

    # Four requests at 10/s: three full intervals between them at least.
    assert time.monotonic() - started >= 0.3
    assert len(sandbox.requests_log()) == 4


def test_redeliver_command_requeues_failed_events_of_a_destination(
    make_destination, post_events, sandbox
):
    destination = make_destination(api_key="not-the-key")
    send(post_events, identify("u1", "m1"))
    delivery.flush(destination.pk)
    destination.api_key = API_KEY
    destination.save()
    out = io.StringIO()

    call_command("redeliver", "--destination", "acme", "--dry-run", stdout=out)
    assert "1 event(s) would be queued again" in out.getvalue()
    assert InboundEvent.objects.get().status == Status.FAILED

    call_command("redeliver", "--destination", "acme", stdout=out)
    assert InboundEvent.objects.get().status == Status.PENDING
    delivery.flush(destination.pk)
    assert InboundEvent.objects.get().status == Status.DELIVERED


def ids(body):
    return [profile["integrationId"] for profile in body["customerProfiles"]]


def test_every_profile_a_bulk_400_refuses_fails_and_the_others_are_delivered(
    destination, post_events, sandbox
):
    # Every other profile: the halving goes down to single profiles everywhere.
    send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(16)])
    sandbox.set_faults(reject_profiles=[f"u{i}" for i in range(0, 16, 2)])

    delivery.flush(destination.pk)

    assert sorted(sandbox.profiles()) == sorted(f"u{i}" for i in range(1, 16, 2))
    failed = InboundEvent.objects.filter(status=Status.FAILED)
    assert failed.count() == 8
    assert all(e.reason.startswith("Talon.One answered 400: ") for e in failed)
    split = DeliveryAttempt.objects.filter(error__endswith="; split in halves, resent")
    assert split.exists()
    assert all(
        error.startswith("Talon.One answered 400")
        for error in split.values_list("error", flat=True)
    )


@pytest.mark.parametrize(
    ("alone", "outcome"),
    [(400, Status.FAILED), (503, Status.PENDING)],
    ids=["the-profile-is-refused", "an-outage-while-isolating"],
)
def test_when_isolating_finds_no_refused_attribute_the_halves_left_are_sent_as_they_are(
    make_destination, post_events, alone, outcome
):
    # Only attributes found refused regroup what is left into full requests: a
    # profile refused as a whole, or an outage while isolating, changes nothing.
    def script(body):
        if ids(body) == ["u1"] and len(body["customerProfiles"][0]["attributes"]) == 1:
            return alone, {}, {"message": "no"}
        return (400, {}, {"message": "no"}) if "u1" in ids(body) else (204, {}, None)

    with scripted_talon(script) as (url, received):
        destination = make_destination(base_url=url)
        send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(8)])
        delivery.flush(destination.pk)

    sent = [ids(body) for body in received]
    assert [batch for batch in sent if batch != ["u1"]] == [
        [f"u{i}" for i in range(8)],
        ["u0", "u1", "u2", "u3"],
        ["u0", "u1"],
        ["u0"],
        ["u2", "u3"],
        ["u4", "u5", "u6", "u7"],
    ]
    assert InboundEvent.objects.get(message_id="m1").status == outcome


@pytest.mark.parametrize("status", [400, 413])
def test_a_bulk_rejected_without_pointers_is_halved_until_the_bad_profile_is_alone(
    make_destination, post_events, status
):
    def script(body):
        if "u5" in ids(body) or (status == 413 and len(ids(body)) > 4):
            return status, {}, {"message": "rejected", "errors": [], "StatusCode": status}
        return 204, {}, None

    with scripted_talon(script) as (url, received):
        destination = make_destination(base_url=url)
        send(post_events, *[identify(f"u{i}", f"m{i}") for i in range(8)])
        delivery.flush(destination.pk)

    final = statuses()
    assert final.pop("m5") == Status.FAILED
    assert set(final.values()) == {Status.DELIVERED}
    delivered = {i for body in received[1:] for i in ids(body) if i != "u5"}
    assert delivered == {f"u{i}" for i in range(8)} - {"u5"}


def test_an_absurd_retry_after_is_capped(make_destination, post_events):
    # A day asked for: a number the guard against "inf" lets through, so only the cap stops it.
    with scripted_talon(lambda body: (429, {"Retry-After": "86400"}, {"message": "slow"})) as (
        url,
        _,
    ):
        destination = make_destination(base_url=url)
        send(post_events, identify("u1", "m1"))
        delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    wait = event.next_attempt_at - timezone.now()
    assert timedelta(minutes=59) < wait <= timedelta(hours=1)


def test_backoff_of_a_very_late_attempt_does_not_overflow(settings):
    settings.DELIVERY_BACKOFF_MAX_SECONDS = 1e308
    assert outbox.backoff(5000) > timedelta(0)


def test_maximum_age_is_per_event_not_per_profile(destination, post_events, sandbox):
    send(post_events, identify("u1", "old", timestamp="2026-01-01T00:00:00Z"))
    InboundEvent.objects.update(queued_at=timezone.now() - timedelta(days=2))
    send(post_events, identify("u1", "new", timestamp="2026-01-02T00:00:00Z"))
    sandbox.set_faults(down=True)

    delivery.flush(destination.pk)

    assert statuses() == {"old": Status.FAILED, "new": Status.PENDING}


def test_events_tried_beyond_the_maximum_age_fail_when_next_claimed(destination, post_events):
    send(post_events, identify("u1", "m1"))
    InboundEvent.objects.update(
        attempts=7, queued_at=timezone.now() - timedelta(days=2), reason="retrying: the last one"
    )

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.FAILED
    assert event.reason == "gave up after 1 day, 0:00:00 of retries; last: retrying: the last one"


def test_an_internal_error_after_sending_retries_instead_of_leaving_events_claimed(
    destination, post_events, sandbox, monkeypatch
):
    send(post_events, identify("u1", "m1"))

    def broken(*args):
        raise RuntimeError("disk full")

    monkeypatch.setattr("destinations.services.handlers.profiles.mark_delivered", broken)
    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.PENDING
    assert event.reason == "retrying: internal error after Talon.One answered 204"
    assert event.next_attempt_at > timezone.now()


@pytest.mark.django_db(transaction=True)  # the thief thread must see the lease row
def test_a_flusher_that_lost_its_lease_sends_nothing_more(
    destination, post_events, sandbox, settings
):
    settings.DELIVERY_BATCH_SIZE = 1
    send(post_events, identify("u1", "m1"), identify("u2", "m2"))
    sandbox.set_faults(latency_ms=600)

    def steal():
        time.sleep(0.3)  # while the first request is in flight
        DeliveryLease.objects.update(holder="another-worker")

    thief = threading.Thread(target=steal)
    thief.start()
    delivery.flush(destination.pk)
    thief.join()

    assert len(sandbox.requests_log()) == 1
    assert sorted(statuses().values()) == [Status.DELIVERED, Status.PENDING]
    assert DeliveryLease.objects.get().holder == "another-worker"


def test_delivered_timestamps_keep_the_newest_per_attribute(destination):
    newer = "2026-01-03T00:00:00+00:00"
    ProfileState.objects.create(
        destination=destination, integration_id="u1", attribute_timestamps={"plan": newer}
    )
    older = datetime(2026, 1, 2, tzinfo=UTC)
    entry = profiles.Entry("u1", timestamps={"plan": older, "email": older})

    profiles.mark_delivered(destination, [entry], timezone.now())

    assert ProfileState.objects.get().attribute_timestamps == {
        "plan": newer,
        "email": older.isoformat(),
    }
