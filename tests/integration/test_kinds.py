"""Every kind of Talon.One call, delivered by the one outbox loop against the
sandbox over real HTTP: custom events, audience memberships, deletions."""

import json
from pathlib import Path

import pytest

from destinations.models import (
    DeliveryAttempt,
    Destination,
    EventMapping,
    InboundEvent,
    ProfileState,
    TalonAudience,
)
from destinations.services import delivery
from tests.conftest import audience_identify, identify, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
Kind = InboundEvent.Kind
AUDIENCE = "high_value_customers"


def track(user_id, message_id, event="Order Completed", timestamp="2026-01-01T12:00:00Z", **props):
    return {
        "type": "track",
        "event": event,
        "userId": user_id,
        "messageId": message_id,
        "timestamp": timestamp,
        "properties": props,
    }


def audience_call(user_id, message_id, member, timestamp="2026-01-01T12:00:00Z", **traits):
    return audience_identify(
        user_id,
        message_id,
        AUDIENCE,
        member,
        computation_id="aud_2Fxq9",
        traits=traits,
        timestamp=timestamp,
    )


@pytest.fixture
def orders(make_destination):
    destination = make_destination(attributes=["email"])
    mapping = EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order_completed"
    )
    mapping.properties.create(name="total", type="number")
    mapping.properties.create(name="coupon", type="string")
    return destination


# --- Track → custom events ----------------------------------------------------


def test_a_listed_track_event_becomes_a_talon_one_event_with_typed_attributes(
    orders, post_events, sandbox
):
    send(post_events, track("u1", "t1", total="49.90", coupon="SPRING", secret="not listed"))

    delivery.flush(orders.pk)

    assert sandbox.profile("u1")["events"] == [
        {"type": "order_completed", "attributes": {"total": 49.9, "coupon": "SPRING"}}
    ]
    event = InboundEvent.objects.get()
    assert (event.kind, event.status) == (Kind.EVENT, Status.DELIVERED)
    assert {"attribute": "secret", "reason": "not listed; not sent"} in event.notes


def test_unlisted_and_anonymous_track_events_are_skipped_with_reasons(orders, post_events, sandbox):
    send(post_events, track("u1", "t1", event="Page Scrolled"), track(None, "t2"))

    reasons = dict(InboundEvent.objects.values_list("message_id", "reason"))

    assert reasons["t1"] == "track event 'Page Scrolled' is not listed for Talon.One; not sent"
    assert "no userId" in reasons["t2"]
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {Status.SKIPPED}


def test_a_profiles_events_are_sent_in_event_time_order(orders, post_events, sandbox):
    send(
        post_events,
        track("u1", "late", total=3, timestamp="2026-01-01T12:00:03Z"),
        track("u1", "early", total=1, timestamp="2026-01-01T12:00:01Z"),
        track("u1", "middle", total=2, timestamp="2026-01-01T12:00:02Z"),
    )

    delivery.flush(orders.pk)

    totals = [e["attributes"]["total"] for e in sandbox.profile("u1")["events"]]
    assert totals == [1, 2, 3]


def test_a_retried_event_holds_the_profiles_later_events_back(orders, post_events, sandbox):
    send(
        post_events,
        track("u1", "first", total=1, timestamp="2026-01-01T12:00:01Z"),
        track("u1", "second", total=2, timestamp="2026-01-01T12:00:02Z"),
    )
    sandbox.set_faults(fail_next=[503])

    delivery.flush(orders.pk)

    assert sandbox.profile("u1") is None
    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert statuses == {"first": Status.PENDING, "second": Status.PENDING}
    first, second = (InboundEvent.objects.get(message_id=m) for m in ("first", "second"))
    assert second.next_attempt_at >= first.next_attempt_at


# --- Engage audiences → Talon.One audiences -----------------------------------


@pytest.mark.parametrize("mode", ["audience", "both"])
def test_an_audience_is_created_once_and_memberships_follow_entries_and_exits(
    make_destination, post_events, sandbox, mode
):
    destination = make_destination(attributes=["email"], engage_audiences=mode)
    sandbox.set_attributes({**sandbox.attributes(), AUDIENCE: "boolean"})
    send(post_events, audience_call("u1", "in-1", True), audience_call("u2", "in-2", True))
    delivery.flush(destination.pk)

    (created,) = sandbox.audiences()
    assert (created["name"], created["integration"], created["integrationId"]) == (
        AUDIENCE,
        "segment",
        "aud_2Fxq9",
    )
    assert sandbox.profile("u1")["audiences"] == [created["id"]]
    expected_attributes = {AUDIENCE: True} if mode == "both" else {}
    assert sandbox.profile("u1")["attributes"] == expected_attributes

    send(post_events, audience_call("u1", "out-1", False, timestamp="2026-01-02T00:00:00Z"))
    delivery.flush(destination.pk)

    assert len(sandbox.audiences()) == 1
    assert sandbox.profile("u1")["audiences"] == []
    assert sandbox.profile("u2")["audiences"] == [created["id"]]
    audience = TalonAudience.objects.get()
    assert (audience.talon_id, audience.members_added, audience.members_removed) == (
        created["id"],
        2,
        1,
    )
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {Status.DELIVERED}


def test_the_newest_entry_or_exit_wins_whatever_the_arrival_order(
    make_destination, post_events, sandbox
):
    destination = make_destination(engage_audiences="audience")
    send(
        post_events,
        audience_call("u1", "exit", False, timestamp="2026-01-02T00:00:00Z"),
        audience_call("u1", "entry", True, timestamp="2026-01-01T00:00:00Z"),
    )
    delivery.flush(destination.pk)
    send(post_events, audience_call("u1", "late-entry", True, timestamp="2026-01-01T06:00:00Z"))
    delivery.flush(destination.pk)

    assert sandbox.profile("u1") is None or sandbox.profile("u1")["audiences"] == []
    late = InboundEvent.objects.get(message_id="late-entry")
    assert late.reason.startswith("not sent: a newer entry or exit")


def test_memberships_go_in_bulk(make_destination, post_events, sandbox):
    destination = make_destination(engage_audiences="audience")
    for start in range(0, 2500, 500):
        send(
            post_events, *[audience_call(f"u{i}", f"m{i}", True) for i in range(start, start + 500)]
        )

    delivery.flush(destination.pk)

    requests = sandbox.requests_log()
    assert [r["path"] for r in requests].count("/v2/audiences") == 1
    assert [r["path"] for r in requests].count("/v2/customer_audiences") == 3
    assert len(sandbox.profiles()) == 2500


def test_an_identify_with_other_traits_is_also_a_profile_update(
    make_destination, post_events, sandbox
):
    destination = make_destination(attributes=["email"], engage_audiences="audience")

    send(post_events, audience_call("u1", "m1", True, email="a@x.io"))
    delivery.flush(destination.pk)

    rows = dict(InboundEvent.objects.values_list("message_id", "kind"))
    assert rows == {"m1": Kind.PROFILE, "m1#audience": Kind.AUDIENCE}
    assert sandbox.profile("u1")["attributes"] == {"email": "a@x.io"}
    assert len(sandbox.profile("u1")["audiences"]) == 1


# --- delete → customer data deletion ------------------------------------------


def test_a_delete_follows_the_profiles_updates_and_scrubs_the_audit_log(
    make_destination, post_events, sandbox
):
    destination = make_destination(attributes=["email", "plan"])
    send(post_events, identify("u1", "m1", traits={"email": "ada@x.io", "plan": "gold"}))
    delivery.flush(destination.pk)
    send(
        post_events,
        identify("u1", "m2", traits={"email": "ada@y.io"}, timestamp="2026-01-01T12:00:01Z"),
        {"type": "delete", "userId": "u1", "messageId": "d1", "timestamp": "2026-01-01T12:00:02Z"},
        identify("u2", "m3", traits={"email": "bob@x.io"}),
    )

    delivery.flush(destination.pk)

    assert sandbox.profile("u1") is None
    assert sandbox.profile("u2") is not None
    statuses = dict(InboundEvent.objects.values_list("message_id", "status"))
    assert statuses == {
        "m1": Status.DELIVERED,
        "m2": Status.DELIVERED,
        "d1": Status.DELIVERED,
        "m3": Status.DELIVERED,
    }
    audit = json.dumps(
        [
            list(
                InboundEvent.objects.filter(user_id="u1").values("payload", "attributes", "notes")
            ),
            list(DeliveryAttempt.objects.values("request_body", "response_body")),
        ],
        default=str,
    )
    assert "ada@" not in audit
    assert "gold" not in audit
    assert "bob@x.io" in audit  # only the deleted person's traits go
    scrubbed = InboundEvent.objects.get(message_id="m1")
    assert scrubbed.payload["scrubbed"].startswith("scrubbed ")
    assert ProfileState.objects.get(integration_id="u1").deleted_at is not None


def test_an_older_call_arriving_after_the_deletion_is_not_sent(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(
        post_events,
        {"type": "delete", "userId": "u1", "messageId": "d1", "timestamp": "2026-01-02T00:00:00Z"},
    )
    delivery.flush(destination.pk)

    send(post_events, identify("u1", "late", timestamp="2026-01-01T00:00:00Z"))
    delivery.flush(destination.pk)

    late = InboundEvent.objects.get(message_id="late")
    assert late.status == Status.SKIPPED
    assert late.reason.startswith("not sent: the profile was deleted")
    assert sandbox.profile("u1") is None
    assert [r["method"] for r in sandbox.requests_log()] == ["DELETE"]


def test_a_newer_call_after_the_deletion_waits_for_it_then_creates_a_new_profile(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(
        post_events,
        identify("u1", "new", traits={"email": "again@x.io"}, timestamp="2026-01-03T00:00:00Z"),
        {"type": "delete", "userId": "u1", "messageId": "d1", "timestamp": "2026-01-02T00:00:00Z"},
    )

    delivery.flush(destination.pk)

    assert [r["method"] for r in sandbox.requests_log()] == ["DELETE", "PUT"]
    assert sandbox.profile("u1")["attributes"] == {"email": "again@x.io"}


def test_deleting_a_customer_talon_one_does_not_know_counts_as_done(
    make_destination, post_events, sandbox
):
    destination = make_destination()
    send(post_events, {"type": "delete", "userId": "nobody", "messageId": "d1"})

    delivery.flush(destination.pk)

    event = InboundEvent.objects.get()
    assert event.status == Status.DELIVERED
    assert DeliveryAttempt.objects.get().response_status == 404


def test_the_loop_knows_no_kind():
    source = Path(delivery.__file__).read_text()
    for kind in Kind.values:
        assert f'"{kind}"' not in source
    assert Destination  # the registry, not the loop, lists the handlers
