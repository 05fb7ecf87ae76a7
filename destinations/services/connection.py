"""Whether a destination's Talon.One base URL and Integration API key work: one
GET /v2/authping, said in words an operator can act on.

The messages come from the client's result only: its error texts are fixed
and its answers are read with the key redacted, so no message carries a key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

from destinations.models import Destination
from destinations.talon_one import BAD_KEY, Outcome, Result, TalonOneClient, base_url_error

logger = logging.getLogger(__name__)

CONNECTED = "Connected: Talon.One accepted the API key."
KEY_HINT = (
    "Set the Integration API key again (Talon.One: Account → Tools → Integration API Keys; "
    "a key belongs to one Application and expires)."
)
BASE_URL_HINT = (
    "Is the base URL your Talon.One deployment's root, e.g. https://mycompany.talon.one?"
)


@dataclass(frozen=True)
class ConnectionCheck:
    ok: bool
    message: str


def check(destination: Destination) -> ConnectionCheck:
    """Asks Talon.One whether the stored base URL and key work. Never raises for
    network errors: every outcome is a message."""
    if reason := base_url_error(destination.base_url):
        result = ConnectionCheck(False, f"The base URL is not allowed: {_clause(reason)}")
    else:
        answer = TalonOneClient(destination.base_url, destination.api_key).authping()
        result = interpret(answer, urlsplit(destination.base_url).netloc)
    logger.info("Connection test of destination %s: %s", destination.slug, result.message)
    return result


def interpret(result: Result, host: str) -> ConnectionCheck:
    """The answer to GET /v2/authping as a plain sentence. Only 204, Talon.One's
    answer to a valid key, counts as connected."""
    status = result.status
    if status is None:
        return ConnectionCheck(False, _unanswered(result, host))
    if status == 204:
        return ConnectionCheck(True, CONNECTED)
    said = f": {_stop(result.message)}" if result.message else "."
    if status in (401, 403):
        message = f"Talon.One refused the API key ({status}){said} {KEY_HINT}"
    elif 300 <= status < 400:
        message = f"{host} answered with a redirect ({status}), not followed. {BASE_URL_HINT}"
    elif status == 404:
        message = f"{host} has no /v2/authping (404){said} {BASE_URL_HINT}"
    elif status < 300:
        message = f"{host} answered {status}, where Talon.One answers 204. {BASE_URL_HINT}"
    elif result.outcome is Outcome.RETRY:
        message = f"Talon.One answered {status}{said} It is busy or down: try again later."
    else:
        message = f"Talon.One answered {status}{said}"
    return ConnectionCheck(False, message)


def _unanswered(result: Result, host: str) -> str:
    if result.error == BAD_KEY:
        return BAD_KEY
    reason = _clause(result.error.removeprefix("Not sent: "))
    if result.outcome is Outcome.PERMANENT:  # refused before sending: where the URL leads
        return f"The base URL is not allowed: {reason}"
    return f"Could not reach {host}: {reason}"


def _clause(text: str) -> str:
    """One of our sentences to follow a colon: lower-case start (unless an acronym)."""
    if text[1:2].islower():
        text = text[:1].lower() + text[1:]
    return _stop(text)


def _stop(text: str) -> str:
    """Ends with one full stop, also when Talon.One's message already had one."""
    return text.strip().rstrip(".") + "."
