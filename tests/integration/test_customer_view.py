"""The customer view's selector: for one integrationId, the latest value each
attribute was delivered with, when, and from which event, after real
deliveries to the sandbox (late events, refusals, audiences, deletion)."""

from datetime import UTC, datetime

import pytest

from destinations.models import InboundEvent, ProfileState
from destinations.selectors.customers import customer
from destinations.services import delivery
from tests.conftest import audience_identify, identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

AUDIENCE = "high_value_customers"


def deliver(post_events, destination, *events):
    assert post_events(destination.slug, list(events)).status_code == 200
    delivery.flush(destination.pk)


def at(minute):
    return datetime(2026, 1, 1, 12, minute, tzinfo=UTC)


def test_the_latest_value_of_each_attribute_with_its_time_and_event(
    make_destination, post_events, sandbox
):
    shop = make_destination(attributes=["email", "plan", "not_in_talon"])
    deliver(post_events, shop, identify("u1", "m1", traits={"email": "a@x.io", "plan": "gold"},
                                         timestamp="2026-01-01T12:00:00Z"))  # fmt: skip
    deliver(post_events, shop, identify("u1", "m2", traits={"plan": "silver", "not_in_talon": 1},
                                         timestamp="2026-01-01T12:05:00Z"))  # fmt: skip
    # Arrives late: older than the delivered plan, so Talon.One keeps silver.
    deliver(post_events, shop, identify("u1", "m0", traits={"plan": "bronze"},
                                         timestamp="2026-01-01T11:00:00Z"))  # fmt: skip
    m1, m2 = (InboundEvent.objects.get(message_id=m) for m in ("m1", "m2"))

    (found,) = customer("u1")

    assert found.destination == shop
    shown = {v.name: (v.value, v.timestamp, v.event) for v in found.attributes}
    assert shown == {"email": ("a@x.io", at(0), m1), "plan": ("silver", at(5), m2)}
    assert sandbox.profile("u1")["attributes"] == {"email": "a@x.io", "plan": "silver"}
    assert found.attributes[1].event.delivered_at is not None
    assert customer("someone-else") == []


def test_audience_memberships_are_listed_and_a_deletion_empties_the_view(
    make_destination, post_events, sandbox
):
    shop = make_destination(attributes=["email"], engage_audiences="audience")
    entry = audience_identify("u1", "enter", AUDIENCE)
    deliver(post_events, shop, entry)

    (found,) = customer("u1")

    (membership,) = found.audiences
    assert (membership.name, membership.value) == (AUDIENCE, True)
    assert membership.event == InboundEvent.objects.get(message_id="enter")

    deliver(post_events, shop, {"type": "delete", "userId": "u1", "messageId": "bye",
                                "timestamp": "2026-01-02T00:00:00Z"})  # fmt: skip
    (found,) = customer("u1")
    assert found.attributes == []
    assert found.audiences == []
    assert found.deleted_at == datetime(2026, 1, 2, tzinfo=UTC)


def test_a_value_whose_event_was_purged_shows_only_its_time(
    make_destination, post_events, sandbox, django_assert_max_num_queries
):
    shop = make_destination(attributes=["email"])
    make_destination(slug="other", attributes=["email"])
    deliver(post_events, shop, identify("u1", "m1", traits={"email": "a@x.io"}))
    InboundEvent.objects.all().delete()

    with django_assert_max_num_queries(3):
        (found,) = customer("u1")

    (email,) = found.attributes
    assert (email.name, email.event, email.value) == ("email", None, None)
    assert email.timestamp == at(0)


def test_a_profile_state_without_values_is_not_listed(make_destination):
    shop = make_destination()
    ProfileState.objects.create(destination=shop, integration_id="u1", attribute_timestamps={})

    assert customer("u1") == []
