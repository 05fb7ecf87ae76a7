"""A deletion scrubs the person from the audit log: their entries in bulk request
bodies become a marker, everyone else's entries stay as they were sent."""

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations.models import DeliveryAttempt
from destinations.services.handlers.deletions import scrub
from tests.conftest import pending_profile_update

pytestmark = pytest.mark.django_db

MARKER = {"integrationId": "u1", "scrubbed": True}


def attempt(destination, events, body, integration_id=""):
    row = DeliveryAttempt.objects.create(
        destination=destination,
        integration_id=integration_id,
        profile_count=len(events),
        method="PUT",
        url="https://example.talon.one/v2/customer_profiles",
        request_body=body,
        response_status=200,
        response_body='{"answer": "for u1 and u2"}',
        duration_ms=5,
        attempt_number=1,
        outcome=DeliveryAttempt.Outcome.SUCCESS,
    )
    row.events.set(events)
    return row


@pytest.fixture
def events(make_destination):
    destination = make_destination(attributes=["plan"])
    return (
        pending_profile_update(destination, "u1", "m1"),
        pending_profile_update(destination, "u2", "m2"),
    )


def test_bulk_profile_bodies_keep_the_others_and_mark_the_person(events):
    u1, _ = events
    bulk = attempt(
        u1.destination,
        events,
        {
            "customerProfiles": [
                {"integrationId": "u1", "attributes": {"plan": "gold"}},
                {"integrationId": "u2", "attributes": {"plan": "silver"}},
                "not a profile",
            ]
        },
    )

    scrub(u1.destination, "u1", timezone.now() + timedelta(seconds=1))

    bulk.refresh_from_db()
    assert bulk.request_body == {
        "customerProfiles": [
            MARKER,
            {"integrationId": "u2", "attributes": {"plan": "silver"}},
            "not a profile",
        ]
    }
    assert bulk.response_body == '{"answer": "for u1 and u2"}'  # others' answer kept


def test_bulk_audience_bodies_keep_the_others_and_mark_the_person(events):
    u1, _ = events
    memberships = attempt(
        u1.destination,
        events,
        {
            "data": [
                {"profileIntegrationId": "u1", "audienceId": 7, "action": "add"},
                {"profileIntegrationId": "u2", "audienceId": 7, "action": "add"},
                "not a membership",
            ]
        },
    )

    scrub(u1.destination, "u1", timezone.now() + timedelta(seconds=1))

    memberships.refresh_from_db()
    assert memberships.request_body == {
        "data": [
            MARKER,
            {"profileIntegrationId": "u2", "audienceId": 7, "action": "add"},
            "not a membership",
        ]
    }


def test_a_single_profile_request_is_replaced_whole(events):
    u1, _ = events
    single = attempt(u1.destination, [u1], {"attributes": {"plan": "gold"}}, integration_id="u1")

    scrub(u1.destination, "u1", timezone.now() + timedelta(seconds=1))

    single.refresh_from_db()
    assert list(single.request_body) == ["scrubbed"]
    assert single.request_body["scrubbed"].startswith("scrubbed ")
    assert single.response_body == ""


def test_bodies_that_are_not_objects_are_kept(events):
    u1, _ = events
    odd = attempt(u1.destination, [u1], ["u1", "gold"])

    scrub(u1.destination, "u1", timezone.now() + timedelta(seconds=1))

    odd.refresh_from_db()
    assert odd.request_body == ["u1", "gold"]
