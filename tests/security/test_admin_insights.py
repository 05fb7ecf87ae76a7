"""The mapping preview, customer view and dashboard in the admin: who may use
them, and that marketers see no base URL or key there (paths only)."""

import json

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from destinations.models import AttributeMapping, DeliveryAttempt, InboundEvent, SeenMessage
from destinations.services import delivery
from tests.conftest import API_KEY as SANDBOX_KEY
from tests.conftest import identify
from tests.security.conftest import API_KEY, BASE_URL

pytestmark = pytest.mark.django_db

PREVIEW_URL = "/admin/destinations/destination/{}/preview/"
CHANGE_URL = "/admin/destinations/destination/{}/change/"
CUSTOMER_URL = "/admin/destinations/destination/customer/"


@pytest.fixture(autouse=True)
def email_row(destination):
    AttributeMapping.objects.create(destination=destination, name="email", type="string")


@pytest.fixture
def shop(make_destination):
    """A destination delivering to the real sandbox."""
    return make_destination(slug="shop", attributes=["email", "plan"])


def received(destination, message_id, user_id="u1", **fields):
    now = timezone.now()
    return InboundEvent.objects.create(
        destination=destination,
        message_id=message_id,
        type="identify",
        user_id=user_id,
        payload=identify(user_id, message_id, **fields),
        timestamp=now,
        status=InboundEvent.Status.DELIVERED,
    )


def test_the_destination_page_links_to_the_preview(login, marketer, destination):
    html = login(marketer).get(CHANGE_URL.format(destination.pk)).content.decode()

    assert f'<a href="{PREVIEW_URL.format(destination.pk)}">Preview an event</a>' in html


def test_a_marketer_previews_an_identify_and_sees_paths_only(login, marketer, destination):
    client = login(marketer)
    assert client.get(PREVIEW_URL.format(destination.pk)).status_code == 200
    event = identify("u1", traits={"email": "ada@example.com", "favourite_colour": "green"})

    response = client.post(
        PREVIEW_URL.format(destination.pk), {"event": json.dumps(event), "preview": "Preview"}
    )

    html = response.content.decode()
    assert response.status_code == 200
    assert "PUT /v2/customer_profiles?silent=yes" in html
    assert "<td>favourite_colour</td><td>not listed; not sent</td>" in html
    assert "acme-corp" not in html
    assert BASE_URL not in html
    assert API_KEY not in html
    assert not InboundEvent.objects.exists()
    assert not SeenMessage.objects.exists()


def test_an_invalid_paste_says_what_is_wrong(login, marketer, destination):
    response = login(marketer).post(PREVIEW_URL.format(destination.pk), {"event": "{nope"})

    assert "The body is not valid JSON" in response.content.decode()


def test_an_empty_paste_is_required(login, marketer, destination):
    response = login(marketer).post(PREVIEW_URL.format(destination.pk), {"event": "  "})

    html = response.content.decode()
    assert "This field is required." in html
    assert 'id="preview-result"' not in html


def test_a_received_event_is_picked_by_id_from_its_own_destination_only(
    login, marketer, destination, shop
):
    own = received(destination, "mine", traits={"email": "own@example.com"})
    other = received(shop, "theirs", traits={"email": "other@example.com"})
    client = login(marketer)

    page = client.get(PREVIEW_URL.format(destination.pk)).content.decode()
    picked = client.get(PREVIEW_URL.format(destination.pk) + f"?event={own.pk}")
    refused = client.get(PREVIEW_URL.format(destination.pk) + f"?event={other.pk}")

    assert f'href="?event={own.pk}"' in page
    assert f"?event={other.pk}" not in page
    assert "own@example.com" in picked.content.decode()
    assert "PUT /v2/customer_profiles?silent=yes" in picked.content.decode()
    assert "other@example.com" not in refused.content.decode()


def test_the_dry_run_asks_the_sandbox_and_shows_no_host_to_marketers(
    login, marketer, shop, sandbox
):
    event = identify("u1", traits={"email": "ada@example.com"})

    response = login(marketer).post(
        PREVIEW_URL.format(shop.pk), {"event": json.dumps(event), "dry_run": "1"}
    )

    html = response.content.decode()
    assert "Talon.One's answer (dry run)" in html
    assert "Accepted" in html
    assert "PUT /v2/customer_profiles/u1?runRuleEngine=true&amp;dry=true" in html
    assert shop.base_url not in html
    assert SANDBOX_KEY not in html
    assert len(sandbox.requests_log()) == 1
    assert sandbox.profile("u1") is None
    assert not DeliveryAttempt.objects.exists()


def test_users_who_cannot_change_the_destination_preview_without_the_dry_run(
    client, make_user, roles, shop, sandbox
):
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_destination"))
    client.force_login(viewer)
    event = json.dumps(identify("u1"))

    response = client.post(PREVIEW_URL.format(shop.pk), {"event": event, "dry_run": "1"})

    html = response.content.decode()
    assert "PUT /v2/customer_profiles?silent=yes" in html
    assert "dry run" not in html
    assert "Or pick a received event" not in html
    assert sandbox.requests_log() == []


def test_the_preview_needs_the_destination_view_permission(client, make_user, destination):
    client.force_login(make_user("nobody"))

    assert client.get(PREVIEW_URL.format(destination.pk)).status_code == 403
    assert client.get(PREVIEW_URL.format(999999)).status_code == 404


def test_the_customer_view_is_for_readers_of_the_audit_log(
    client, login, make_user, roles, marketer, operator
):
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_destination"))
    client.force_login(viewer)
    assert client.get(CUSTOMER_URL + "?integration_id=u1").status_code == 403
    for user in (marketer, operator):
        response = login(user).get(CUSTOMER_URL + "?integration_id=u1")
        assert response.status_code == 200
        assert "Nothing was delivered to Talon.One for <strong>u1</strong>" in (
            response.content.decode()
        )


def test_the_customer_view_shows_what_was_delivered(
    login, marketer, shop, post_events, sandbox, monkeypatch
):
    monkeypatch.setattr("destinations.services.nudge.nudge", lambda destination_id: None)
    body = identify("u1", "m-1", traits={"email": "ada@example.com", "plan": "gold"})
    assert post_events("shop", body).status_code == 200
    delivery.flush(shop.pk)
    event = InboundEvent.objects.get()

    html = login(marketer).get(CUSTOMER_URL + "?integration_id=u1").content.decode()

    assert "<h2>Shop</h2>" in html
    assert "<code>ada@example.com</code>" in html
    assert f'href="/admin/destinations/inboundevent/{event.pk}/change/">event #{event.pk}' in html


def test_the_admin_index_shows_the_dashboard_and_customer_search_to_audit_readers(
    client, login, make_user, marketer, destination
):
    html = login(marketer).get("/admin/").content.decode()
    assert "<h2>Dashboard</h2>" in html
    assert "<svg" in html
    assert "Last 24 hours" in html
    assert "Last 7 days" in html
    assert "<h2>Customer</h2>" in html
    assert f'action="{CUSTOMER_URL}"' in html

    client.force_login(make_user("staff-only"))
    html = client.get("/admin/").content.decode()
    assert 'id="dashboard"' not in html
    assert "dashboard-destination" not in html
