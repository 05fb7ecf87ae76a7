"""The connection test's wording: every answer to GET /v2/authping, and every
request that got none, as one plain sentence an operator can act on."""

import logging

import pytest
import requests
from requests.exceptions import InvalidURL, SSLError

from destinations.models import Destination
from destinations.services.connection import CONNECTED, KEY_HINT, check, interpret
from destinations.talon_one import (
    BAD_KEY,
    AddressNotAllowed,
    Outcome,
    Result,
    _failure,
    classify,
)

HOST = "shop.talon.one"
KEY = "tk-connection-key-5e1b"


def answered(status: int, message: str = "") -> Result:
    return Result(
        "GET", f"https://{HOST}/v2/authping", {}, classify(status), status, "", "", 3,
        message=message,
    )  # fmt: skip


def unanswered(exc: Exception) -> Result:
    outcome, error = _failure(exc)
    return Result("GET", f"https://{HOST}/v2/authping", {}, outcome, None, "", error, 3)


def message(result: Result) -> str:
    checked = interpret(result, HOST)
    assert not checked.ok
    return checked.message


def test_only_204_is_connected():
    assert interpret(answered(204), HOST).ok
    assert (
        interpret(answered(204), HOST).message
        == CONNECTED
        == ("Connected: Talon.One accepted the API key.")
    )
    for status in (200, 201, 202, 299):
        assert message(answered(status)).startswith(
            f"{HOST} answered {status}, where Talon.One answers 204. Is the base URL"
        )


@pytest.mark.parametrize("status", [401, 403])
def test_a_refused_key_says_what_talon_one_answered_and_what_to_do(status):
    assert message(answered(status, "Invalid API key")) == (
        f"Talon.One refused the API key ({status}): Invalid API key. {KEY_HINT}"
    )
    assert message(answered(status)) == f"Talon.One refused the API key ({status}). {KEY_HINT}"


def test_talon_ones_message_is_quoted_as_it_is_with_one_full_stop():
    assert message(answered(401, "unauthorized.")).startswith(
        "Talon.One refused the API key (401): unauthorized. Set"
    )


def test_a_wrong_base_url_is_named():
    assert message(answered(404, "no such endpoint")) == (
        f"{HOST} has no /v2/authping (404): no such endpoint. "
        "Is the base URL your Talon.One deployment's root, e.g. https://mycompany.talon.one?"
    )
    assert message(answered(301)).startswith(
        f"{HOST} answered with a redirect (301), not followed."
    )


@pytest.mark.parametrize("status", [408, 429, 500, 503])
def test_an_outage_says_to_try_again_later(status):
    assert message(answered(status, "Service unavailable")) == (
        f"Talon.One answered {status}: Service unavailable. It is busy or down: try again later."
    )


def test_any_other_answer_is_quoted():
    assert message(answered(400, "Bad request")) == "Talon.One answered 400: Bad request."
    assert message(answered(418)) == "Talon.One answered 418."


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (requests.ConnectionError(), "could not connect to Talon.One."),
        (requests.ConnectTimeout(), "could not connect to Talon.One."),
        (requests.ReadTimeout(), "timed out waiting for Talon.One."),
        (SSLError(), "TLS error: Talon.One's certificate could not be verified."),
        (requests.TooManyRedirects(), "request to Talon.One failed (TooManyRedirects)."),
    ],
)  # fmt: skip
def test_no_answer_says_the_host_could_not_be_reached_and_why(exc, reason):
    assert message(unanswered(exc)) == f"Could not reach {HOST}: {reason}"


def test_an_address_refused_when_sending_is_a_base_url_not_allowed():
    assert message(unanswered(AddressNotAllowed())) == (
        "The base URL is not allowed: the base URL's host resolves to an address that is not "
        "allowed (loopback, private, link-local or metadata)."
    )
    assert message(unanswered(InvalidURL())) == (
        "The base URL is not allowed: the base URL is not valid; correct it."
    )


def test_a_key_that_cannot_be_sent_says_so():
    result = Result(
        "GET", f"https://{HOST}/v2/authping", {}, Outcome.PERMANENT, None, "", BAD_KEY, 0
    )
    assert message(result) == BAD_KEY


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        ("http://shop.talon.one", "use https. Plain http is allowed only for hosts in"),
        ("https://shop.talon.one/v2", "give the host only: no path, query or trailing slash."),
        ("https://10.0.0.8", "this host is refused: loopback, private, link-local"),
        ("https://metadata.google.internal", "this host is refused"),
    ],
)
def test_a_base_url_that_is_not_allowed_is_not_asked_and_says_why(base_url, reason, caplog):
    destination = Destination(slug="shop", base_url=base_url, api_key=KEY)

    with caplog.at_level(logging.INFO, logger="destinations.services.connection"):
        checked = check(destination)

    assert not checked.ok
    assert checked.message.startswith(f"The base URL is not allowed: {reason}")
    assert caplog.messages == [f"Connection test of destination shop: {checked.message}"]
    assert KEY not in caplog.text
