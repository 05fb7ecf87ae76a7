"""The mapping preview: the exact Talon.One requests an event would become, and
every note, from the real code paths, with nothing stored and nothing sent
(the real sandbox over HTTP sees no request); the dry run asks the sandbox."""

import json

import pytest
from django.utils import timezone

from destinations.models import (
    DeliveryAttempt,
    EventMapping,
    InboundEvent,
    ProfileState,
    RefusedAttribute,
    SeenMessage,
    TalonAudience,
)
from destinations.services import delivery, preview
from destinations.services.handlers import audiences, profiles
from tests.conftest import audience_identify, identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

AUDIENCE = "high_value_customers"


def nothing_stored():
    assert not InboundEvent.objects.exists()
    assert not SeenMessage.objects.exists()
    assert not DeliveryAttempt.objects.exists()
    assert not ProfileState.objects.exists()


def run(destination, event):
    return preview.preview(destination, json.dumps(event))


def audience_call(member):
    return audience_identify("u1", "m-1", AUDIENCE, member, computation_id="aud_2Fxq9")


def test_an_identify_becomes_the_exact_bulk_update_with_every_note(make_destination, sandbox):
    destination = make_destination(attributes=["email", "address_city", ("age", "number")])
    event = identify(
        "u1",
        traits={
            "email": "ada@example.com",
            "address": {"city": "Berlin", "zip": "10115"},
            "age": "36",
            "favourite_colour": "green",
        },
    )

    result = run(destination, event)

    (row,) = result.rows
    assert (row.kind, row.status, row.user_id) == ("profile", "pending", "u1")
    (request,) = row.requests
    assert (request.method, request.path) == ("PUT", "/v2/customer_profiles?silent=yes")
    assert request.body == {
        "customerProfiles": [
            {
                "integrationId": "u1",
                "attributes": {"email": "ada@example.com", "address_city": "Berlin", "age": 36},
            }
        ]
    }
    assert request.note == preview.BULK_NOTE
    assert {"attribute": "favourite_colour", "reason": "not listed; not sent"} in row.notes
    assert {"attribute": "address_zip", "reason": "not listed; not sent"} in row.notes
    assert sandbox.requests_log() == []
    nothing_stored()


def test_with_the_rule_engine_the_request_is_one_profile_with_run_rule_engine(
    make_destination, sandbox
):
    destination = make_destination(run_rule_engine=True)

    (row,) = run(destination, identify("user/1")).rows

    (request,) = row.requests
    assert (request.method, request.path) == (
        "PUT",
        "/v2/customer_profiles/user%2F1?runRuleEngine=true",
    )
    assert request.body == {"attributes": {"email": "ada@example.com", "plan": "gold"}}
    assert request.note == ""


def test_the_request_is_the_one_delivery_sends(make_destination, post_events, sandbox):
    destination = make_destination(run_rule_engine=True)
    event = identify("u1", traits={"email": "ada@example.com", "plan": "gold", "x": 1})

    (request,) = run(destination, event).rows[0].requests
    assert post_events("acme", event).status_code == 200
    delivery.flush(destination.pk)

    (sent,) = sandbox.requests_log()
    assert (sent["method"], sent["path"], sent["query"]) == (
        request.method,
        "/v2/customer_profiles/u1",
        {"runRuleEngine": "true"},
    )
    attempt = DeliveryAttempt.objects.get()
    assert attempt.request_body == request.body
    assert attempt.url == destination.base_url + request.path


def test_what_delivery_would_leave_out_now_is_left_out_with_the_reason(make_destination, sandbox):
    destination = make_destination()
    ProfileState.objects.create(
        destination=destination,
        integration_id="u1",
        attribute_timestamps={"email": "2026-02-01T00:00:00+00:00"},
    )
    RefusedAttribute.objects.create(
        destination=destination,
        name="plan",
        message="Talon.One answered 400: unknown attribute",
        retry_at=timezone.now() + timezone.timedelta(hours=1),
        last_seen_at=timezone.now(),
    )

    (row,) = run(destination, identify("u1")).rows

    assert row.requests == []
    assert row.reason == preview.NOTHING_LEFT
    assert {
        "attribute": "email",
        "reason": profiles.STALE_REASON.format(names="email"),
    } in row.notes
    assert {
        "attribute": "plan",
        "reason": f"{profiles.REFUSED_NOTE}: Talon.One answered 400: unknown attribute",
    } in row.notes


def test_a_mapped_track_event_becomes_a_custom_event(make_destination, sandbox):
    destination = make_destination(attributes=["email"])
    mapping = EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order_done"
    )
    mapping.properties.create(name="total", type="number")
    event = {
        "type": "track",
        "event": "Order Completed",
        "userId": "u1",
        "properties": {"total": "49.90", "secret": "x"},
    }

    (row,) = run(destination, event).rows

    (request,) = row.requests
    assert (request.method, request.path) == ("POST", "/v2/events?silent=yes")
    assert request.body == {
        "profileId": "u1",
        "type": "order_done",
        "attributes": {"total": 49.9},
    }
    assert {"attribute": "secret", "reason": "not listed; not sent"} in row.notes
    unlisted = run(destination, {**event, "event": "Page Scrolled"}).rows[0]
    assert unlisted.requests == []
    assert unlisted.reason == "track event 'Page Scrolled' is not listed for Talon.One; not sent"
    assert sandbox.requests_log() == []
    nothing_stored()


def test_an_audience_entry_creates_the_audience_first_then_adds_the_member(
    make_destination, sandbox
):
    destination = make_destination(engage_audiences="audience")

    rows = run(destination, audience_call(True)).rows

    membership = next(r for r in rows if r.kind == "audience")
    create, add = membership.requests
    assert (create.method, create.path) == ("POST", "/v2/audiences")
    assert create.body == {
        "name": AUDIENCE,
        "integration": "segment",
        "integrationId": "aud_2Fxq9",
    }
    assert (add.method, add.path) == ("POST", "/v2/customer_audiences")
    assert add.body == {
        "data": [{"action": "add", "profileIntegrationId": "u1", "audienceId": None}]
    }
    assert add.note == preview.NEW_AUDIENCE_NOTE
    assert sandbox.requests_log() == []
    nothing_stored()


def test_a_known_audience_exit_is_one_membership_removal(make_destination, sandbox):
    destination = make_destination(engage_audiences="both")
    TalonAudience.objects.create(destination=destination, key=AUDIENCE, talon_id=42)

    rows = run(destination, audience_call(False)).rows

    assert [r.kind for r in rows] == ["profile", "audience"]
    profile_row, membership = rows
    assert profile_row.requests[0].body["customerProfiles"][0]["attributes"][AUDIENCE] is False
    (remove,) = membership.requests
    assert remove.body == {
        "data": [{"action": "delete", "profileIntegrationId": "u1", "audienceId": 42}]
    }
    assert remove.note == ""


def test_an_audience_change_older_than_the_one_delivered_is_not_sent(make_destination, sandbox):
    destination = make_destination(engage_audiences="audience")
    ProfileState.objects.create(
        destination=destination,
        integration_id="u1",
        attribute_timestamps={f"audience:{AUDIENCE}": "2026-02-01T00:00:00+00:00"},
    )

    (row,) = run(destination, audience_call(False)).rows

    assert row.kind == "audience"
    assert row.requests == []
    assert row.reason == audiences.STALE_REASON


def test_a_delete_becomes_the_customer_data_deletion(make_destination, sandbox):
    destination = make_destination()

    (row,) = run(destination, {"type": "delete", "userId": "u 1"}).rows

    (request,) = row.requests
    assert (request.method, request.path, request.body) == (
        "DELETE",
        "/v1/customer_data/u%201",
        None,
    )
    assert sandbox.requests_log() == []


def test_skipped_events_and_invalid_input_say_why(make_destination, sandbox):
    destination = make_destination()

    anonymous = run(destination, identify(None)).rows[0]
    page = run(destination, {"type": "page", "userId": "u1"}).rows[0]
    invalid = preview.preview(destination, '{"type": "identify", "userId": ')
    batch = run(destination, [identify("u1", "a"), {"type": 3}]).rows

    assert anonymous.requests == []
    assert "no userId" in anonymous.reason
    assert page.reason == "page events are not delivered to Talon.One"
    assert invalid.rows == []
    assert invalid.error.startswith("The body is not valid JSON")
    assert [r.status for r in batch] == ["pending", "skipped"]
    assert batch[1].reason == 'The event: "type" must be a string, not a number.'
    nothing_stored()


def test_the_dry_run_asks_the_sandbox_which_changes_nothing(make_destination, sandbox):
    destination = make_destination()
    row = run(destination, identify("u1")).profile_update

    answer = preview.ask_talon_one(destination, row)

    assert answer.accepted
    assert answer.status == 200
    assert answer.path == "/v2/customer_profiles/u1?runRuleEngine=true&dry=true"
    assert answer.body == {"attributes": {"email": "ada@example.com", "plan": "gold"}}
    (sent,) = sandbox.requests_log()
    assert (sent["method"], sent["query"]) == ("PUT", {"runRuleEngine": "true", "dry": "true"})
    assert sandbox.profile("u1") is None
    nothing_stored()


def test_the_dry_run_shows_what_talon_one_refuses(make_destination, sandbox):
    destination = make_destination(attributes=["email", "unknown_in_talon"])
    event = identify("u1", traits={"email": "ada@example.com", "unknown_in_talon": "x"})
    row = run(destination, event).profile_update

    answer = preview.ask_talon_one(destination, row)

    assert not answer.accepted
    assert answer.status == 400
    assert answer.answer.startswith("Talon.One answered 400")
    assert sandbox.profile("u1") is None
