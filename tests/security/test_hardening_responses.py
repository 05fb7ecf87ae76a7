"""Issue #10, item 8: Talon.One's answers were stored and shown as received.

An endpoint that echoes the request headers put the API key into the attempt's
response and the event's reason, where Marketers read them. Now every answer is
redacted of the key (as sent, JSON-escaped or percent-encoded) before it is
cut to a bounded size, stored, or turned into a reason.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote

import pytest

from destinations.models import DeliveryAttempt, Destination, InboundEvent
from destinations.services import delivery
from destinations.talon_one import RESPONSE_BODY_LIMIT
from tests.conftest import pending_profile_update
from tests.local_server import local_server
from tests.security.conftest import API_KEY, SECRET

pytestmark = pytest.mark.django_db

# Printable ASCII that JSON and URLs both escape.
QUOTED_KEY = 'tk-"quoted"\\key/4f9a1c7e'


def echo(
    status: int, shape: Callable[[str], str]
) -> Callable[[BaseHTTPRequestHandler, bytes], None]:
    """A Talon.One stand-in that answers with the Authorization header it got."""

    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        payload = shape(request.headers["Authorization"]).encode()
        request.send_response(status)
        request.send_header("Content-Type", "application/json")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    return handle


def at_the_cut(header: str) -> str:
    """The key across the stored limit: neither half may stay."""
    return "x" * (RESPONSE_BODY_LIMIT - len(header) // 2) + header


SHAPES: dict[str, tuple[int, Callable[[str], str]]] = {
    "headers echoed as JSON": (401, lambda h: json.dumps({"headers": {"Authorization": h}})),
    "in Talon.One's message": (401, lambda h: json.dumps({"message": f"bad key: {h}"})),
    "first": (500, lambda h: h + " was refused"),
    "across the cut": (503, at_the_cut),
    "last": (502, lambda h: "refused: " + h),
    "percent-encoded": (400, lambda h: json.dumps({"message": quote(h, safe="")})),
    "in a bulk error about one profile": (
        400,
        lambda h: json.dumps(
            {
                "message": "invalid",
                "errors": [{"source": {"pointer": "/customerProfiles/0/attributes"}, "details": h}],
            }
        ),
    ),
}


def assert_no_key(text: str, key: str, where: str) -> None:
    for form in (key, json.dumps(key)[1:-1], quote(key, safe=""), key[:12], key[-12:]):
        assert form not in text, f"the key ({form!r}) found in {where}"


@pytest.mark.parametrize("key", [API_KEY, QUOTED_KEY], ids=["plain key", "key with quotes"])
@pytest.mark.parametrize("shape", SHAPES)
def test_an_echoed_key_is_stored_and_shown_nowhere(shape, key, no_broker, login, marketer):
    status, make_body = SHAPES[shape]
    with local_server(echo(status, make_body)) as (base_url, paths):
        destination = Destination.objects.create(
            name="Acme", slug="acme", base_url=base_url, api_key=key, shared_secret=SECRET
        )
        for user_id in ("u1", "u2"):  # two: a bulk 400 is split by profile
            pending_profile_update(destination, user_id, message_id=f"m-{user_id}")

        delivery.flush(destination.pk)

    attempts = list(DeliveryAttempt.objects.all())
    events = list(InboundEvent.objects.all())
    assert paths
    for model in (InboundEvent, DeliveryAttempt):
        assert_no_key(repr(list(model.objects.values())), key, model.__name__)
    for attempt in attempts:  # each stored the echo, the key replaced
        assert attempt.response_status == status
        assert "[redact" in attempt.response_body
        assert len(attempt.response_body) <= RESPONSE_BODY_LIMIT
    client = login(marketer)
    pages = ["/admin/destinations/inboundevent/", "/admin/destinations/deliveryattempt/"]
    pages += [f"/admin/destinations/deliveryattempt/{a.pk}/change/" for a in attempts]
    pages += [f"/admin/destinations/inboundevent/{e.pk}/change/" for e in events]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200
        assert_no_key(response.content.decode(), key, page)


def test_a_huge_answer_is_stored_cut_to_the_bound(no_broker):
    body = "z" * 5_000_000
    with local_server(echo(500, lambda h: body)) as (base_url, _paths):
        destination = Destination.objects.create(
            name="Acme", slug="acme", base_url=base_url, api_key=API_KEY, shared_secret=SECRET
        )
        pending_profile_update(destination, "u1", message_id="m-u1")

        delivery.flush(destination.pk)

    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_status == 500
    assert attempt.response_body == "z" * RESPONSE_BODY_LIMIT
