"""The admin side of the Segment edge: marketers see what Talon.One refused
(destination page, admin index, their own list); operators set an SDK write
key and the first-event-signature opt-in; changed rows ask Talon.One again."""

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations.models import AttributeMapping, Destination, InboundEvent, RefusedAttribute
from destinations.services import tracking
from tests.security.conftest import change_form_data

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
WRITE_KEY = "wk_Zq8RmT2vLx9PcN4sKd7B"


@pytest.fixture
def refused(destination):
    event = InboundEvent.objects.create(
        destination=destination,
        message_id="m-1",
        type="identify",
        user_id="user-1",
        payload={},
        timestamp=timezone.now(),
        status=InboundEvent.Status.DELIVERED,
    )
    return RefusedAttribute.objects.create(
        destination=destination,
        name="vip_customers_audience",
        message="Talon.One answered 400: unknown attribute",
        example_value=True,
        example_event=event,
        event_count=1234,
        last_seen_at=timezone.now(),
        retry_at=timezone.now() + timedelta(hours=1),
    )


@pytest.mark.parametrize("role", ["marketer", "operator"])
def test_both_roles_see_refused_attributes_on_the_destination_and_the_index(
    request, login, destination, refused, role
):
    client = login(request.getfixturevalue(role))

    page = client.get(CHANGE_URL.format(destination.pk)).content.decode()
    index = client.get("/admin/").content.decode()
    listing = client.get("/admin/destinations/refusedattribute/")

    for html in (page, index):
        assert "vip_customers_audience" in html
        assert "1234" in html
        assert f"/admin/destinations/inboundevent/{refused.example_event_id}/change/" in html
    assert listing.status_code == 200
    assert "vip_customers_audience" in listing.content.decode()


def test_refusals_older_than_a_week_are_not_listed(login, marketer, destination, refused):
    RefusedAttribute.objects.update(last_seen_at=timezone.now() - timedelta(days=8))

    index = login(marketer).get("/admin/").content.decode()

    assert "vip_customers_audience" not in index
    assert "None in the last 7 days." in index


def test_changing_the_attribute_rows_asks_talon_one_again(login, marketer, destination, refused):
    client = login(marketer)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data["attributes-0-name"] = "vipCustomers"
    data["_save"] = "Save"

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 302, response.content.decode()[-2000:]
    assert AttributeMapping.objects.filter(name="vipCustomers").exists()
    refused.refresh_from_db()
    assert refused.retry_at <= timezone.now()


def test_saving_without_changing_rows_keeps_the_refusal(login, marketer, destination, refused):
    client = login(marketer)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data["_save"] = "Save"

    client.post(CHANGE_URL.format(destination.pk), data)

    refused.refresh_from_db()
    assert refused.retry_at > timezone.now()


def test_the_retry_action_asks_talon_one_again(login, marketer, refused):
    response = login(marketer).post(
        "/admin/destinations/refusedattribute/",
        {"action": "retry_now", "_selected_action": [refused.pk]},
    )

    assert response.status_code == 302
    refused.refresh_from_db()
    assert refused.retry_at <= timezone.now()


def test_operator_sets_a_write_key_and_the_opt_in_and_never_sees_the_key(
    login, operator, destination
):
    client = login(operator)
    page = client.get(CHANGE_URL.format(destination.pk))
    assert "None: the Tracking API" in page.content.decode()
    data = change_form_data(page)
    data.update({"write_key": WRITE_KEY, "accept_first_event_signature": "on", "_save": "Save"})

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.write_key_digest == tracking.write_key_digest(WRITE_KEY)
    assert destination.accept_first_event_signature is True
    page = client.get(CHANGE_URL.format(destination.pk)).content.decode()
    assert WRITE_KEY not in page
    assert "Set. SDKs send to this service" in page


def test_a_weak_write_key_is_refused_with_the_reason(login, operator, destination):
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update({"write_key": "shortkey", "_save": "Save"})

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 200
    assert "at least 16 printable ASCII characters" in response.content.decode()
    assert Destination.objects.get().write_key_digest == ""


def test_marketers_see_no_write_key_or_signature_settings(login, marketer, destination):
    html = login(marketer).get(CHANGE_URL.format(destination.pk)).content.decode()

    assert 'name="write_key"' not in html
    assert "accept_first_event_signature" not in html
