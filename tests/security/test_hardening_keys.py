"""Issue #10, item 1: an API key or secret that an HTTP header cannot carry.

A pasted zero-width space made the HTTP library raise while building the
header: the flush task crashed, the key went to the worker log, and the event
waited a day without a reason. Now such values are refused when saved (admin,
CLI, model), and a stored one is a recorded, permanent failure with a reason
that never holds the key.
"""

from __future__ import annotations

import logging
from http.server import BaseHTTPRequestHandler

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from destinations.models import DeliveryAttempt, Destination, InboundEvent
from destinations.services import delivery
from destinations.talon_one import Outcome, TalonOneClient
from tests.conftest import pending_profile_update
from tests.local_server import local_server
from tests.security.conftest import API_KEY, BASE_URL, SECRET, change_form_data

pytestmark = pytest.mark.django_db

# Each a character a header cannot carry, or that the key would not hold: invisible,
# outside Latin-1, whitespace, a line break, outside ASCII.
BAD_CHARACTERS = ["\u200b", "\u2028", " ", "\t", "\n", "é"]
POSITIONS = {"first": 0, "middle": len(API_KEY) // 2, "last": len(API_KEY)}


def with_character(value: str, character: str, position: str) -> str:
    at = POSITIONS[position]
    return value[:at] + character + value[at:]


def key_fragments() -> list[str]:
    """Whatever the position of the inserted character, one of these is whole."""
    return [API_KEY[:12], API_KEY[-12:]]


def assert_no_key(text: str, where: str) -> None:
    for fragment in key_fragments():
        assert fragment not in text, f"part of the key found in {where}"


def answers_204(request: BaseHTTPRequestHandler, body: bytes) -> None:
    request.send_response(204)
    request.end_headers()


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("character", BAD_CHARACTERS, ids=repr)
def test_the_model_refuses_a_key_or_secret_a_header_cannot_carry(character, position):
    bad = with_character(API_KEY, character, position)
    for field in ("api_key", "shared_secret"):
        values = {"api_key": API_KEY, "shared_secret": SECRET, field: bad}
        destination = Destination(name="Acme", slug="acme", base_url=BASE_URL, **values)

        with pytest.raises(ValidationError) as refused:
            destination.full_clean()

        assert list(refused.value.message_dict) == [field]
        assert_no_key(str(refused.value), "the validation error")


@pytest.mark.parametrize("position", POSITIONS)
def test_the_cli_refuses_a_key_with_a_zero_width_space(position):
    bad = with_character(API_KEY, "\u200b", position)
    with pytest.raises(CommandError, match="printable ASCII") as refused:
        call_command(
            "create_destination",
            "--slug=acme",
            "--name=Acme",
            f"--base-url={BASE_URL}",
            f"--api-key={bad}",
            f"--shared-secret={SECRET}",
        )

    assert_no_key(str(refused.value), "the command's error")
    assert not Destination.objects.exists()


@pytest.mark.parametrize("field", ["api_key", "shared_secret"])
def test_the_admin_refuses_a_pasted_zero_width_space(login, operator, destination, field):
    client = login(operator)
    url = f"/admin/destinations/destination/{destination.pk}/change/"
    data = change_form_data(client.get(url))
    data.update({field: with_character(API_KEY, "\u200b", "middle"), "_save": "Save"})

    response = client.post(url, data)

    assert response.status_code == 200  # the form again, with the error
    assert "printable ASCII" in response.content.decode()
    assert_no_key(response.content.decode(), "the admin page")
    destination.refresh_from_db()
    assert (destination.api_key, destination.shared_secret) == (API_KEY, SECRET)


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("character", BAD_CHARACTERS, ids=repr)
def test_a_stored_key_that_cannot_be_sent_fails_the_event_with_a_reason(
    character, position, no_broker, caplog
):
    """A key saved before validation existed (or written around it)."""
    caplog.set_level(logging.DEBUG)
    with local_server(answers_204) as (base_url, paths):
        destination = Destination.objects.create(
            name="Acme",
            slug="acme",
            base_url=base_url,
            api_key=with_character(API_KEY, character, position),
            shared_secret=SECRET,
        )
        pending_profile_update(destination)

        delivery.flush(destination.pk)  # raised UnicodeEncodeError before the fix

    assert paths == []  # nothing was sent with a broken key
    event = InboundEvent.objects.get()
    attempt = DeliveryAttempt.objects.get()
    assert event.status == InboundEvent.Status.FAILED
    assert "API key" in event.reason
    assert attempt.outcome == DeliveryAttempt.Outcome.FAILED
    assert attempt.error == event.reason
    for model in (InboundEvent, DeliveryAttempt):
        assert_no_key(repr(list(model.objects.values())), model.__name__)
    assert_no_key(caplog.text, "the log")


def test_any_failure_to_build_the_request_is_a_result_not_an_exception(monkeypatch):
    """Whatever the HTTP library raises while building or sending, the client
    answers with a permanent failure that names the kind of error, never its text."""

    def fail(*args, **kwargs):
        raise UnicodeEncodeError("latin-1", f"ApiKey-v1 {API_KEY}", 10, 11, "not latin-1")

    client = TalonOneClient("https://acme.talon.one", API_KEY)
    monkeypatch.setattr(client._session, "request", fail)

    result = client.update_profiles({"u1": {"plan": "gold"}})

    assert result.outcome is Outcome.PERMANENT
    assert result.error == "Not sent: the request could not be built (UnicodeEncodeError)"
    assert_no_key(repr(result), "the result")
