"""Roles in the admin: what a Marketer, an Operator and anyone at all may see and do."""

from datetime import timedelta

import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.auth.models import Group
from django.utils import timezone

from destinations.models import AttributeMapping, DeliveryAttempt, Destination, InboundEvent
from destinations.services import secrets
from tests.security.conftest import API_KEY, BASE_URL, OLD_SECRET, SECRET, change_form_data

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
CONNECTION_INPUTS = ['name="base_url"', 'name="api_key"', 'name="shared_secret"']


@pytest.fixture
def event(destination):
    return InboundEvent.objects.create(
        destination=destination,
        message_id="m-1",
        type="identify",
        kind=InboundEvent.Kind.PROFILE,
        user_id="user-1",
        payload={"type": "identify", "userId": "user-1", "traits": {"plan": "gold"}},
        timestamp=timezone.now(),
        attributes={"plan": "gold"},
        status=InboundEvent.Status.FAILED,
        reason="Talon.One answered 400",
    )


@pytest.fixture
def attempt(destination, event):
    attempt = DeliveryAttempt.objects.create(
        destination=destination,
        integration_id="user-1",
        profile_count=1,
        method="PUT",
        url=f"{BASE_URL}/v2/customer_profiles?silent=yes",
        request_body={"customerProfiles": []},
        response_status=400,
        duration_ms=12,
        attempt_number=1,
        outcome=DeliveryAttempt.Outcome.FAILED,
    )
    attempt.events.add(event)
    return attempt


def test_roles_are_groups_with_explicit_permissions(roles):
    def codenames(name):
        return set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))

    assert codenames("Marketer") == {
        "view_destination",
        "change_destination",
        "view_attributemapping",
        "add_attributemapping",
        "change_attributemapping",
        "delete_attributemapping",
        "view_inboundevent",
        "view_deliveryattempt",
        "view_refusedattribute",
        *(
            f"{action}_{model}"
            for model in ("eventmapping", "eventproperty")
            for action in ("view", "add", "change", "delete")
        ),
        "view_talonaudience",
        "view_talonattribute",
    }
    operator = codenames("Operator")
    assert {"manage_connection", "redeliver_inboundevent", "view_logentry"} <= operator
    assert {"view_refusedattribute", "change_talonaudience", "add_eventmapping"} <= operator
    assert {"add_destination", "delete_destination", "view_talonattribute"} <= operator
    # Nobody gets write permissions on the audit log.
    for name in ("Marketer", "Operator"):
        audit = {c for c in codenames(name) if c.endswith(("inboundevent", "deliveryattempt"))}
        assert audit <= {"view_inboundevent", "view_deliveryattempt", "redeliver_inboundevent"}


# --- Marketer -----------------------------------------------------------------


def test_marketer_sees_no_url_key_or_secret(login, marketer, destination, attempt):
    client = login(marketer)

    pages = [
        client.get(CHANGE_URL.format(destination.pk)),
        client.get("/admin/destinations/destination/"),
        client.get(f"/admin/destinations/deliveryattempt/{attempt.pk}/change/"),
        client.get("/admin/destinations/deliveryattempt/"),
        client.get("/admin/destinations/inboundevent/"),
    ]

    for page in pages:
        assert page.status_code == 200
        html = page.content.decode()
        for hidden in [API_KEY, SECRET, BASE_URL, "acme-corp", *CONNECTION_INPUTS]:
            assert hidden not in html
    assert "/v2/customer_profiles?silent=yes" in pages[2].content.decode()


def test_marketer_adds_an_attribute_row_on_the_destination_page(login, marketer, destination):
    client = login(marketer)
    AttributeMapping.objects.create(destination=destination, name="email", type="string")
    page = client.get(CHANGE_URL.format(destination.pk))
    data = change_form_data(page)
    data.update({"attributes-1-name": "vip", "attributes-1-type": "boolean", "_save": "Save"})

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 302, response.context and response.context["errors"]
    assert set(destination.attributes.values_list("name", "type")) == {
        ("email", "string"),
        ("vip", "boolean"),
    }
    entry = LogEntry.objects.get()
    assert entry.user == marketer
    assert entry.get_change_message() == "Added attribute mapping “vip (boolean)”."


def test_marketer_can_change_forward_engage_but_nothing_of_the_connection(
    login, marketer, destination
):
    client = login(marketer)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.pop("forward_engage")
    data.update(
        {
            "base_url": "https://evil.example.com",
            "api_key": "stolen",
            "shared_secret": "attacker-secret",
            "accept_unsigned": "on",
            "name": "Renamed",
            "enabled": "",
            "_save": "Save",
        }
    )

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.forward_engage is False
    assert (destination.name, destination.enabled, destination.base_url) == ("Acme", True, BASE_URL)
    assert (destination.api_key, destination.shared_secret) == (API_KEY, SECRET)
    assert destination.accept_unsigned is False


def test_marketer_cannot_add_or_delete_destinations(login, marketer, destination):
    client = login(marketer)
    assert client.get("/admin/destinations/destination/add/").status_code == 403
    delete_url = f"/admin/destinations/destination/{destination.pk}/delete/"
    assert client.get(delete_url).status_code == 403


def test_marketer_cannot_redeliver_or_read_the_change_history_list(
    login, marketer, event, no_broker
):
    client = login(marketer)

    client.post(
        "/admin/destinations/inboundevent/",
        {"action": "redeliver", "_selected_action": [event.pk]},
    )

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED
    assert client.get("/admin/admin/logentry/").status_code == 403


# --- Operator -----------------------------------------------------------------


def test_operator_changes_the_connection_and_the_values_never_come_back(
    login, operator, destination
):
    client = login(operator)
    page = client.get(CHANGE_URL.format(destination.pk))
    html = page.content.decode()
    assert all(name in html for name in CONNECTION_INPUTS)
    assert BASE_URL in html  # the URL is not a secret for operators
    assert API_KEY not in html
    assert SECRET not in html
    data = change_form_data(page)
    data.update(
        {
            "base_url": "https://acme.us-east1.talon.one",
            "api_key": "tk-new-key",
            "shared_secret": "seg-new-secret",
            "keep_previous_secret_for": "4",
            "_save": "Save",
        }
    )

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 302
    destination.refresh_from_db()
    assert destination.base_url == "https://acme.us-east1.talon.one"
    assert (destination.api_key, destination.shared_secret) == ("tk-new-key", "seg-new-secret")
    assert destination.previous_shared_secret == SECRET
    expected_end = timezone.now() + timedelta(hours=4)
    assert abs(destination.previous_secret_expires_at - expected_end) < timedelta(minutes=1)
    page = client.get(CHANGE_URL.format(destination.pk)).content.decode()
    assert "tk-new-key" not in page
    assert "seg-new-secret" not in page
    assert SECRET not in page
    assert "previous secret is also accepted until" in page


def test_operator_leaving_secrets_empty_keeps_them(login, operator, destination):
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    assert not {"api_key", "shared_secret"} & set(data)  # not even in the form's initial data
    data.update({"name": "Acme EU", "_save": "Save"})

    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302

    destination.refresh_from_db()
    assert (destination.name, destination.api_key, destination.shared_secret) == (
        "Acme EU",
        API_KEY,
        SECRET,
    )
    assert destination.previous_shared_secret == ""


def test_operator_ends_a_rotation(login, operator, destination):
    secrets.set_shared_secret(
        destination, "seg-new", keep_previous_for=timedelta(days=1), now=timezone.now()
    )
    destination.save()
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update({"end_rotation": "on", "_save": "Save"})

    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302

    destination.refresh_from_db()
    assert destination.shared_secret == "seg-new"
    assert destination.previous_shared_secret == ""
    assert destination.previous_secret_expires_at is None


def test_operator_creates_a_destination_and_a_secret_is_required(login, operator):
    client = login(operator)
    data = change_form_data(client.get("/admin/destinations/destination/add/"))
    data.update(
        {
            "name": "Beta",
            "slug": "beta",
            "base_url": "https://beta.talon.one",
            "api_key": "tk-beta",
            "attributes-TOTAL_FORMS": "0",
            "_save": "Save",
        }
    )

    refused = client.post("/admin/destinations/destination/add/", data)
    assert refused.status_code == 200
    assert "Required, unless the destination accepts unsigned events" in refused.content.decode()

    data["shared_secret"] = "seg-beta"
    assert client.post("/admin/destinations/destination/add/", data).status_code == 302
    assert Destination.objects.get(slug="beta").shared_secret == "seg-beta"


def test_accepting_unsigned_events_removes_the_secret_and_is_shown_as_a_warning(
    login, operator, destination
):
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update({"accept_unsigned": "on", "_save": "Save"})

    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302

    destination.refresh_from_db()
    assert destination.accept_unsigned is True
    assert destination.shared_secret == ""
    change_page = client.get(CHANGE_URL.format(destination.pk)).content.decode()
    assert change_page.count("accepts unsigned events: anyone who knows its ingest URL") == 2
    assert "UNSIGNED" in client.get("/admin/destinations/destination/").content.decode()


def test_a_new_secret_and_accept_unsigned_together_are_refused(login, operator, destination):
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update({"accept_unsigned": "on", "shared_secret": "seg-x", "_save": "Save"})

    response = client.post(CHANGE_URL.format(destination.pk), data)

    assert response.status_code == 200
    assert "Leave this empty to accept unsigned events" in response.content.decode()
    destination.refresh_from_db()
    assert (destination.shared_secret, destination.accept_unsigned) == (SECRET, False)


def test_operator_redelivers(login, operator, event, no_broker):
    client = login(operator)

    client.post(
        "/admin/destinations/inboundevent/",
        {"action": "redeliver", "_selected_action": [event.pk]},
    )

    event.refresh_from_db()
    assert event.status == InboundEvent.Status.PENDING


def test_operator_sees_the_whole_request_url_of_an_attempt(login, operator, attempt):
    page = login(operator).get(f"/admin/destinations/deliveryattempt/{attempt.pk}/change/")
    assert f"{BASE_URL}/v2/customer_profiles" in page.content.decode()


# --- Change history -----------------------------------------------------------


def test_changes_are_recorded_and_visible_without_secret_values(login, operator, destination):
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update(
        {
            "api_key": "tk-rotated-key",
            "shared_secret": OLD_SECRET,
            "attributes-0-name": "plan",
            "attributes-0-type": "string",
            "_save": "Save",
        }
    )
    assert client.post(CHANGE_URL.format(destination.pk), data).status_code == 302

    entry = LogEntry.objects.get()
    message = entry.get_change_message()
    assert entry.user == operator
    assert "Integration API key" in message
    assert "Segment shared secret" in message
    assert "Added attribute mapping “plan (string)”" in message
    for value in ("tk-rotated-key", OLD_SECRET, API_KEY, SECRET):
        assert value not in entry.change_message
    history = client.get(
        f"/admin/admin/logentry/?content_type__id__exact={entry.content_type_id}"
        f"&user__id__exact={operator.pk}"
    )
    assert history.status_code == 200
    assert "Integration API key" in history.content.decode()
    object_history = client.get(f"/admin/destinations/destination/{destination.pk}/history/")
    assert "Added attribute mapping “plan (string)”" in object_history.content.decode()


# --- Audit rows: read-only for everyone ---------------------------------------


@pytest.mark.parametrize("who", ["marketer", "operator", "superuser"])
def test_nobody_adds_changes_or_deletes_audit_rows(request, login, who, event, attempt):
    client = login(request.getfixturevalue(who))
    entry = LogEntry.objects.create(
        user=request.getfixturevalue(who), action_flag=1, object_repr="x", change_message="[]"
    )
    rows = [
        ("destinations/inboundevent", event.pk, {"status": "delivered"}),
        ("destinations/deliveryattempt", attempt.pk, {"outcome": "success"}),
        ("admin/logentry", entry.pk, {"change_message": "forged"}),
    ]

    for path, pk, forged in rows:
        assert client.get(f"/admin/{path}/add/").status_code == 403
        assert client.post(f"/admin/{path}/add/", forged).status_code == 403
        assert client.post(f"/admin/{path}/{pk}/change/", forged).status_code == 403
        assert client.post(f"/admin/{path}/{pk}/delete/", {"post": "yes"}).status_code == 403

    event.refresh_from_db()
    attempt.refresh_from_db()
    entry.refresh_from_db()
    assert event.status == InboundEvent.Status.FAILED
    assert attempt.outcome == DeliveryAttempt.Outcome.FAILED
    assert entry.change_message == "[]"
