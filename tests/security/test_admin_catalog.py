"""The destination page's "Talon.One's attributes" section, against the sandbox
over real HTTP: marketers see the rows flagged and add a suggested row in one
POST, and never see a key; operators set the Management API key and read the
catalog."""

import html as entities
import json
import re

import pytest
from auditlog.models import LogEntry as ValueChange
from django.contrib import messages
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from destinations.models import Destination, InboundEvent
from destinations.services import catalog
from talon_sandbox.server import DEFAULT_MANAGEMENT_KEYS
from tests.security.conftest import API_KEY, change_form_data, messages_shown

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
REFRESH_URL = "/admin/destinations/destination/{}/catalog/refresh/"
ADD_URL = "/admin/destinations/destination/{}/catalog/add/"
MANAGEMENT_KEY = DEFAULT_MANAGEMENT_KEYS[0]
REFRESH_BUTTON = ">Read Talon.One's attributes now</button>"
TALON_ONE = {"email": "string", "plan": "string", "age": "number", "vip": "boolean"}


@pytest.fixture
def shop(make_destination, sandbox) -> Destination:
    sandbox.set_attributes(TALON_ONE)
    return make_destination(
        slug="shop",
        attributes=[("email", "string"), ("age", "string"), ("nickname", "string")],
        management_api_key=MANAGEMENT_KEY,
    )


def identify(destination: Destination, traits: dict, **payload) -> InboundEvent:
    return InboundEvent.objects.create(
        destination=destination,
        message_id=f"m-{InboundEvent.objects.count()}",
        type="identify",
        kind=InboundEvent.Kind.PROFILE,
        user_id="u1",
        payload={"type": "identify", "userId": "u1", "traits": traits, **payload},
        timestamp=timezone.now(),
        status=InboundEvent.Status.DELIVERED,
    )


def text(response) -> str:
    """The page's visible text, roughly: tags dropped, whitespace folded."""
    return " ".join(entities.unescape(re.sub(r"<[^>]+>", " ", response.content.decode())).split())


def test_marketers_see_the_rows_flagged_and_add_a_suggested_row_in_one_post(login, marketer, shop):
    identify(shop, {"email": "ada@example.com", "plan": "gold", "address": {"city": "Berlin"}})
    identify(shop, {"plan": "silver", "address": {"city": "Paris"}})
    assert catalog.refresh(shop) == ""
    client = login(marketer)

    page = client.get(CHANGE_URL.format(shop.pk))

    assert page.status_code == 200
    seen = text(page)
    assert "Talon.One's attributes" in seen
    assert "nickname string - ⚠ not in Talon.One" in seen
    assert "age string number ⚠ Talon.One says number" in seen
    assert "email string string ✓ as in Talon.One" in seen
    html = page.content.decode()
    # Suggested: vip from the catalog, plan (in Talon.One) and address_city (seen).
    assert 'value="vip:boolean" class="button">Add</button>' in html
    assert 'value="plan:string" class="button">Add</button>' in html
    assert 'value="address_city:string" class="button">Add</button>' in html
    # Newest first: the example is the latest value.
    assert 'address_city 2 "Paris" ⚠ not in Talon.One string Add' in seen
    assert "vip vip boolean Add" in seen
    assert f'<form id="talon-catalog-add" method="post" action="{ADD_URL.format(shop.pk)}">' in html
    assert MANAGEMENT_KEY not in html
    assert API_KEY not in html
    assert 'name="management_api_key"' not in html

    response = client.post(ADD_URL.format(shop.pk), {"row": "plan:string"}, follow=True)

    assert response.redirect_chain == [(CHANGE_URL.format(shop.pk) + "#talon-one-attributes", 302)]
    assert messages_shown(response) == [
        (messages.SUCCESS, "Added the row plan (string): it is forwarded from now on.")
    ]
    assert shop.attributes.filter(name="plan", type="string").exists()
    assert 'value="plan:string"' not in response.content.decode()


def test_an_add_is_checked(login, marketer, shop):
    client = login(marketer)

    for row, level, message in [
        ("email:string", messages.WARNING, "A row forwards email already."),
        ("EMAIL:string", messages.WARNING, "A row forwards email already."),
        ("vip:text", messages.ERROR, "Not added: vip: text is not a type"),
        ("first name:string", messages.ERROR, "Not added: first name: Talon.One attribute"),
    ]:
        response = client.post(ADD_URL.format(shop.pk), {"row": row}, follow=True)
        [(got_level, got)] = messages_shown(response)
        assert (got_level, got[: len(message)]) == (level, message), row
    assert shop.attributes.count() == 3


def test_adding_needs_the_permission_and_a_post(login, make_user, roles, shop, client):
    viewer = make_user("vera")
    viewer.user_permissions.add(
        *Permission.objects.filter(codename__in=["view_destination", "view_talonattribute"])
    )
    login(viewer)

    assert client.get(ADD_URL.format(shop.pk)).status_code == 405
    assert client.post(ADD_URL.format(shop.pk), {"row": "vip:boolean"}).status_code == 403
    assert client.post(REFRESH_URL.format(shop.pk)).status_code == 403
    page = client.get(CHANGE_URL.format(shop.pk))
    assert page.status_code == 200
    assert 'id="talon-one-attributes"' in page.content.decode()
    assert "talon-catalog-add" not in page.content.decode()
    assert not shop.attributes.filter(name="vip").exists()


def test_the_section_needs_the_permission_to_view_the_catalog(login, make_user, roles, shop):
    viewer = make_user("vera")
    viewer.user_permissions.add(Permission.objects.get(codename="view_destination"))

    page = login(viewer).get(CHANGE_URL.format(shop.pk))

    assert page.status_code == 200
    assert "Talon.One's attributes" not in page.content.decode()


def test_the_add_form_needs_the_csrf_token(marketer, shop):
    client = Client(enforce_csrf_checks=True)
    client.force_login(marketer)

    assert client.post(ADD_URL.format(shop.pk), {"row": "vip:boolean"}).status_code == 403
    assert not shop.attributes.filter(name="vip").exists()


def test_without_a_key_the_page_says_how_to_check_rows(login, marketer, make_destination, sandbox):
    shop = make_destination(slug="plain")
    identify(shop, {"plan": "gold", "nickname": "Ada"})

    page = login(marketer).get(CHANGE_URL.format(shop.pk))

    seen = text(page)
    assert catalog.NO_KEY in seen
    assert REFRESH_BUTTON not in page.content.decode()
    # Traits seen are listed all the same.
    assert 'value="nickname:string" class="button">Add</button>' in page.content.decode()
    assert 'value="plan:string"' not in page.content.decode()


def test_operators_set_the_management_key_and_read_the_catalog(
    login, operator, make_destination, sandbox
):
    sandbox.set_attributes(TALON_ONE)
    shop = make_destination(slug="shop", attributes=[("email", "string")])
    client = login(operator)
    page = client.get(CHANGE_URL.format(shop.pk))
    assert REFRESH_BUTTON not in page.content.decode()
    data = change_form_data(page)
    data["management_api_key"] = MANAGEMENT_KEY

    saved = client.post(CHANGE_URL.format(shop.pk), data)

    assert saved.status_code == 302
    shop.refresh_from_db()
    assert shop.management_api_key == MANAGEMENT_KEY
    page = client.get(CHANGE_URL.format(shop.pk))
    html = page.content.decode()
    assert REFRESH_BUTTON in html
    assert MANAGEMENT_KEY not in html
    assert "Not read yet." in text(page)

    response = client.post(REFRESH_URL.format(shop.pk), follow=True)

    assert messages_shown(response) == [
        (messages.SUCCESS, "Read 4 customer-profile attributes from Talon.One.")
    ]
    assert "Talon.One's customer-profile attributes as read on" in text(response)
    assert sorted(shop.talon_attributes.values_list("name", flat=True)) == sorted(TALON_ONE)

    data = change_form_data(client.get(CHANGE_URL.format(shop.pk)))
    assert data.get("management_api_key", "") == ""
    assert client.post(CHANGE_URL.format(shop.pk), data).status_code == 302
    shop.refresh_from_db()
    assert shop.management_api_key == MANAGEMENT_KEY  # left empty: kept

    data["remove_management_api_key"] = "on"
    assert client.post(CHANGE_URL.format(shop.pk), data).status_code == 302
    shop.refresh_from_db()
    assert shop.management_api_key == ""


def test_a_wrong_key_is_said_plainly_and_never_shown(login, operator, make_destination, sandbox):
    wrong = "mk-wrong-management-key-5e1c"
    shop = make_destination(slug="shop", management_api_key=wrong)

    response = login(operator).post(REFRESH_URL.format(shop.pk), follow=True)

    [(level, message)] = messages_shown(response)
    assert level == messages.ERROR
    assert message.startswith(
        "Talon.One's attributes were not read: Talon.One refused the Management API key "
        "(it answered 401"
    )
    assert "⚠ The last read failed: Talon.One refused the Management API key" in text(response)
    assert wrong not in response.content.decode()


def test_marketers_never_see_the_management_key_field(login, marketer, shop):
    page = login(marketer).get(CHANGE_URL.format(shop.pk))

    html = page.content.decode()
    assert 'name="management_api_key"' not in html
    assert 'name="remove_management_api_key"' not in html
    data = change_form_data(page)
    data["management_api_key"] = "mk-planted"
    login(marketer).post(CHANGE_URL.format(shop.pk), data)
    shop.refresh_from_db()
    assert shop.management_api_key == MANAGEMENT_KEY


def test_the_management_key_is_in_the_value_history_as_changed_only(
    login, operator, make_destination, sandbox
):
    shop = make_destination(slug="shop")
    client = login(operator)
    data = change_form_data(client.get(CHANGE_URL.format(shop.pk)))
    data["management_api_key"] = MANAGEMENT_KEY

    assert client.post(CHANGE_URL.format(shop.pk), data).status_code == 302
    assert catalog.refresh(Destination.objects.get(pk=shop.pk)) == ""

    changes = [change.changes_dict for change in ValueChange.objects.filter(object_pk=str(shop.pk))]
    assert {"management_api_key": ["", "[secret]"]} in [
        {k: v for k, v in c.items() if k == "management_api_key"} for c in changes
    ]
    assert not any("catalog_fetched_at" in c or "catalog_error" in c for c in changes)
    assert MANAGEMENT_KEY not in json.dumps(list(ValueChange.objects.values()), default=str)


def test_engage_traits_talon_one_does_not_know_are_listed_to_create_there(
    login, marketer, make_destination, sandbox
):
    sandbox.set_attributes({"email": "string", "home": "(list location)"})
    shop = make_destination(slug="shop", attributes=(), management_api_key=MANAGEMENT_KEY)
    personas = {"computation_key": "vip_customers", "computation_class": "audience"}
    identify(shop, {"vip_customers": True}, context={"personas": personas})
    identify(shop, {"vip_customers": False}, context={"personas": personas})
    ltv = {"computation_key": "ltv", "computation_class": "trait"}
    identify(shop, {"ltv": {"a": 1}}, context={"personas": ltv})
    assert catalog.refresh(shop) == ""

    seen = text(login(marketer).get(CHANGE_URL.format(shop.pk)))

    assert "No attribute rows yet." in seen
    assert "home home rows cannot be (list location)" in seen
    assert (
        "vip_customers audience 2 false ⚠ create it in Talon.One (Customer profile, boolean)"
        in seen
    )
    assert 'ltv trait 1 {"a": 1} ⚠ create it in Talon.One (Customer profile)' in seen


def test_without_the_add_permission_suggestions_show_their_type_only(
    login, make_user, roles, make_destination, sandbox
):
    shop = make_destination(slug="shop", attributes=())
    identify(shop, {"nickname": "Ada"})
    reader = make_user("rhea")
    reader.user_permissions.add(
        *Permission.objects.filter(
            codename__in=["view_destination", "change_destination", "view_talonattribute"]
        )
    )

    page = login(reader).get(CHANGE_URL.format(shop.pk))

    assert 'nickname 1 "Ada" ⚠ not in Talon.One string' in text(page)
    assert ">Add</button>" not in page.content.decode()
    assert (
        login(reader).post(ADD_URL.format(shop.pk), {"row": "nickname:string"}).status_code == 403
    )


def test_an_unknown_destination_is_404(login, marketer):
    client = login(marketer)

    assert client.post(ADD_URL.format(999999), {"row": "vip:boolean"}).status_code == 404
    assert client.post(REFRESH_URL.format(999999)).status_code == 404
