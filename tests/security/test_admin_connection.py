"""The destination page's connection test, against the sandbox over real HTTP:
operators press "Test connection" and are told whether Talon.One accepts the
URL and key, and are warned after saving one it does not; marketers never see
the button nor may post to it."""

import pytest
from django.contrib import messages
from django.test import Client

from destinations.models import Destination
from tests.security.conftest import change_form_data, messages_shown

pytestmark = pytest.mark.django_db

CHANGE_URL = "/admin/destinations/destination/{}/change/"
TEST_URL = "/admin/destinations/destination/{}/test-connection/"
WRONG_KEY = "tk-wrong-key-2b8d4f"
BUTTON = ">Test connection</button>"


@pytest.fixture
def shop(make_destination, sandbox) -> Destination:
    return make_destination(slug="shop", attributes=())


def test_operators_see_the_button_as_a_form_posting_to_the_test(login, operator, shop):
    page = login(operator).get(CHANGE_URL.format(shop.pk))

    assert page.status_code == 200
    html = page.content.decode()
    assert BUTTON in html
    assert f'<form method="post" action="{TEST_URL.format(shop.pk)}">' in html


def test_operators_adding_a_destination_see_no_button(login, operator):
    page = login(operator).get("/admin/destinations/destination/add/")

    assert page.status_code == 200
    assert BUTTON not in page.content.decode()


def test_marketers_never_see_the_button(login, marketer, shop):
    page = login(marketer).get(CHANGE_URL.format(shop.pk))

    assert page.status_code == 200
    assert "test-connection" not in page.content.decode()
    assert "Test connection" not in page.content.decode()


def test_the_button_says_connected_on_the_destination_page(login, operator, shop, sandbox):
    response = login(operator).post(TEST_URL.format(shop.pk), follow=True)

    assert response.redirect_chain == [(CHANGE_URL.format(shop.pk), 302)]
    assert messages_shown(response) == [
        (messages.SUCCESS, "Connected: Talon.One accepted the API key.")
    ]
    assert [r["path"] for r in sandbox.requests_log()] == ["/v2/authping"]


def test_the_button_says_what_talon_one_answered_to_a_wrong_key(login, operator, make_destination):
    shop = make_destination(slug="shop", api_key=WRONG_KEY)

    response = login(operator).post(TEST_URL.format(shop.pk), follow=True)

    [(level, text)] = messages_shown(response)
    assert level == messages.ERROR
    assert text.startswith("Talon.One refused the API key (401): missing or invalid")
    assert WRONG_KEY not in response.content.decode()


def test_marketers_may_not_post_to_the_test(login, marketer, shop, sandbox):
    response = login(marketer).post(TEST_URL.format(shop.pk))

    assert response.status_code == 403
    assert sandbox.requests_log() == []


def test_the_test_is_a_post_with_a_csrf_token(operator, shop, sandbox):
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    assert client.get(TEST_URL.format(shop.pk)).status_code == 405
    assert client.post(TEST_URL.format(shop.pk)).status_code == 403
    assert sandbox.requests_log() == []


def test_an_unknown_destination_is_not_found(login, operator, sandbox):
    assert login(operator).post(TEST_URL.format(999999)).status_code == 404


def test_anonymous_visitors_are_sent_to_the_login(client, shop, sandbox):
    response = client.post(TEST_URL.format(shop.pk))

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")
    assert sandbox.requests_log() == []


def save(client: Client, destination: Destination, **changes: str):
    data = change_form_data(client.get(CHANGE_URL.format(destination.pk)))
    data.update(changes, _save="Save")
    return client.post(CHANGE_URL.format(destination.pk), data, follow=True)


# The check runs once the save is committed (no transaction waits for Talon.One):
# these tests commit for real.
@pytest.mark.django_db(transaction=True)
def test_saving_a_wrong_key_saves_and_warns(login, operator, shop, sandbox):
    response = save(login(operator), shop, api_key=WRONG_KEY)

    shop.refresh_from_db()
    assert shop.api_key == WRONG_KEY
    changed, warning = messages_shown(response)
    assert changed[0] == messages.SUCCESS
    assert warning[0] == messages.WARNING
    assert warning[1].startswith(
        "Saved, but the connection test failed. Talon.One refused the API key (401)"
    )
    assert WRONG_KEY not in response.content.decode()


@pytest.mark.django_db(transaction=True)
def test_saving_a_working_connection_adds_no_warning(login, operator, shop, sandbox):
    response = save(login(operator), shop, name="Shop EU")

    assert [level for level, _ in messages_shown(response)] == [messages.SUCCESS]
    assert [r["path"] for r in sandbox.requests_log()] == ["/v2/authping"]


@pytest.mark.django_db(transaction=True)
def test_marketers_saving_their_rows_test_nothing(login, marketer, shop, sandbox):
    row = {"attributes-0-name": "vip", "attributes-0-type": "boolean"}
    response = save(login(marketer), shop, **row)

    assert [level for level, _ in messages_shown(response)] == [messages.SUCCESS]
    assert shop.attributes.get().name == "vip"
    assert sandbox.requests_log() == []
