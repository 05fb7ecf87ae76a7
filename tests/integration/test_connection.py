"""The connection test against the sandbox over real HTTP: GET /v2/authping with
the stored key, and what it says for each way it can go wrong."""

import io
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler

import pytest
from django.core.management import CommandError, call_command

from destinations.services.connection import CONNECTED, check
from tests.conftest import API_KEY
from tests.local_server import local_server, send_json

pytestmark = pytest.mark.django_db

WRONG_KEY = "tk-wrong-key-7c3e0a"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_a_valid_key_is_connected(make_destination, sandbox):
    checked = check(make_destination())

    assert checked.ok
    assert checked.message == CONNECTED
    (request,) = sandbox.requests_log()
    assert (request["method"], request["path"], request["status"]) == ("GET", "/v2/authping", 204)


def test_a_wrong_key_is_refused_with_talon_ones_message(make_destination, sandbox):
    checked = check(make_destination(api_key=WRONG_KEY))

    assert not checked.ok
    assert checked.message.startswith(
        "Talon.One refused the API key (401): missing or invalid Integration API key "
        "(header Authorization: ApiKey-v1 <key>). Set the Integration API key again"
    )
    assert WRONG_KEY not in checked.message


def test_an_outage_says_to_try_again(make_destination, sandbox):
    sandbox.set_faults(down=True)

    checked = check(make_destination())

    assert not checked.ok
    assert checked.message == (
        "Talon.One answered 503: Service unavailable. It is busy or down: try again later."
    )


def test_a_port_nothing_listens_on_could_not_be_reached(make_destination):
    port = free_port()

    checked = check(make_destination(base_url=f"http://127.0.0.1:{port}"))

    assert not checked.ok
    assert checked.message == f"Could not reach 127.0.0.1:{port}: could not connect to Talon.One."


def test_a_base_url_not_allowed_is_refused_before_sending(make_destination, sandbox, settings):
    destination = make_destination()
    settings.TALON_HTTP_ALLOWED_HOSTS = []

    checked = check(destination)

    assert not checked.ok
    assert checked.message == (
        "The base URL is not allowed: use https. Plain http is allowed only for hosts in "
        "TALON_HTTP_ALLOWED_HOSTS (the local sandbox)."
    )
    assert sandbox.requests_log() == []


@pytest.fixture
def echoing_talon() -> Iterator[str]:
    """Answers 401 quoting the request's Authorization header, as a careless
    proxy or a debug page might."""

    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        send_json(request, 401, {}, {"message": f"bad {request.headers['Authorization']}"})

    with local_server(handle) as (url, _paths):
        yield url


def test_an_answer_that_quotes_the_key_is_redacted_in_the_message_and_log(
    make_destination, echoing_talon, caplog
):
    destination = make_destination(base_url=echoing_talon, api_key=WRONG_KEY)

    with caplog.at_level("INFO"):
        checked = check(destination)

    assert checked.message.startswith(
        "Talon.One refused the API key (401): bad ApiKey-v1 [redacted]. "
    )
    assert WRONG_KEY not in checked.message
    assert WRONG_KEY not in caplog.text


class TestCheckDestinationCommand:
    def test_prints_the_message_and_succeeds_when_connected(self, make_destination, sandbox):
        make_destination(slug="shop")
        out = io.StringIO()

        call_command("check_destination", "shop", stdout=out)

        assert out.getvalue() == f"{CONNECTED}\n"

    def test_fails_with_the_message_when_not_connected(self, make_destination, sandbox):
        make_destination(slug="shop", api_key=WRONG_KEY)

        with pytest.raises(CommandError, match=r"^Talon.One refused the API key \(401\)") as exc:
            call_command("check_destination", "shop", stdout=io.StringIO())

        assert exc.value.returncode == 1
        assert WRONG_KEY not in str(exc.value)
        assert API_KEY not in str(exc.value)

    def test_an_unknown_slug_names_the_known_ones(self, make_destination):
        make_destination(slug="shop")
        make_destination(slug="app")

        with pytest.raises(CommandError) as exc:
            call_command("check_destination", "nope")

        assert str(exc.value) == "No destination with the slug 'nope'. Known: app, shop."
