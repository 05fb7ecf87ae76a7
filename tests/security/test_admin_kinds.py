"""The admin for the kinds of calls: marketers choose how Engage audiences go
and which track events are forwarded; the destination page lists both."""

import pytest

from destinations.models import Destination, EventMapping, TalonAudience
from tests.security.conftest import change_form_data

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
ADD_EVENT_URL = "/admin/destinations/eventmapping/add/"


def test_a_marketer_forwards_a_track_event_with_typed_properties(login, marketer, destination):
    client = login(marketer)
    page = client.get(ADD_EVENT_URL + f"?destination={destination.pk}")
    data = change_form_data(page)
    data.update(
        {
            "segment_event": "Order Completed",
            "talon_event_type": "order_completed",
            "properties-0-name": "total",
            "properties-0-type": "number",
            "_save": "Save",
        }
    )

    response = client.post(ADD_EVENT_URL, data)

    assert response.status_code == 302, response.content.decode()[-3000:]
    mapping = EventMapping.objects.get()
    assert (mapping.destination, mapping.talon_event_type) == (destination, "order_completed")
    assert list(mapping.properties.values_list("name", "type")) == [("total", "number")]
    html = client.get(CHANGE_URL.format(destination.pk)).content.decode()
    assert "Order Completed</a> → order_completed (1 properties)" in html


def test_a_marketer_sends_engage_audiences_as_talon_one_audiences(login, marketer, destination):
    client = login(marketer)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update({"engage_audiences": "audience", "_save": "Save"})

    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302
    assert Destination.objects.get().engage_audiences == "audience"


def test_the_destination_page_lists_its_audiences(login, marketer, destination):
    TalonAudience.objects.create(
        destination=destination, key="vip_customers", talon_id=42, members_added=1200
    )

    html = login(marketer).get(CHANGE_URL.format(destination.pk)).content.decode()

    assert "<td>vip_customers</td><td>42</td><td>1200</td><td>0</td>" in html


def test_only_operators_may_set_an_audiences_talon_one_id(login, marketer, operator, destination):
    audience = TalonAudience.objects.create(destination=destination, key="vip")
    url = f"/admin/destinations/talonaudience/{audience.pk}/change/"

    assert 'name="talon_id"' not in login(marketer).get(url).content.decode()
    response = login(operator).post(url, {"talon_id": "77", "_save": "Save"})

    assert response.status_code == 302
    audience.refresh_from_db()
    assert audience.talon_id == 77
