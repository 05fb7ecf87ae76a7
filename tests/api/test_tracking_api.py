"""Segment's HTTP Tracking API: SDKs pointed straight at this service."""

import base64
import gzip
import json

import pytest
from segment.analytics import Client as SegmentClient
from segment.analytics import request as segment_request

from destinations.models import Destination, InboundEvent
from destinations.services import tracking
from tests.conftest import identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

WRITE_KEY = "wk_9f3Kq2LmNp7Rs5Tv8XyZ"


@pytest.fixture
def destination(make_destination):
    destination = make_destination(attributes=["email", "plan"])
    tracking.set_write_key(destination, WRITE_KEY)
    return destination


def basic(write_key: str = WRITE_KEY) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()}


def call(client, path, body, headers=None, raw=None):
    data = raw if raw is not None else json.dumps(body).encode()
    return client.post(
        path, data, content_type="application/json", headers=basic() if headers is None else headers
    )


@pytest.fixture
def segment_connections():
    """The SDK keeps its connection to the live server open (one module-wide
    session), and with it the server thread that holds a database connection:
    the test database could not be dropped after the run. Closed after the test."""
    yield
    segment_request._session.close()


def test_the_real_segment_sdk_delivers_identifies_here(
    destination, live_server, segment_connections
):
    sdk = SegmentClient(WRITE_KEY, host=live_server.url, sync_mode=True, gzip=True, max_retries=0)
    errors = []
    sdk.on_error = lambda error, batch: errors.append(error)

    sdk.identify("sdk-user-1", {"email": "ada@example.com", "plan": "gold"})
    sdk.identify(42, {"email": "grace@example.com"})
    sdk.track("sdk-user-1", "Order Completed", {"total": 12})
    sdk.flush()

    assert errors == []
    rows = {row.user_id: row for row in InboundEvent.objects.filter(type="identify")}
    assert rows["sdk-user-1"].attributes == {"email": "ada@example.com", "plan": "gold"}
    assert rows["42"].status == InboundEvent.Status.PENDING
    assert InboundEvent.objects.get(type="track").status == InboundEvent.Status.SKIPPED


@pytest.mark.parametrize("path", ["/v1/identify", "/v1/identify/"])
def test_a_single_call_takes_its_type_from_the_path(client, destination, path):
    event = {"userId": "u1", "traits": {"email": "a@x.io"}, "messageId": "m1"}

    response = call(client, path, event)

    assert response.status_code == 200
    assert response.json() == {"success": True}
    row = InboundEvent.objects.get()
    assert (row.type, row.status, row.attributes) == (
        "identify",
        InboundEvent.Status.PENDING,
        {"email": "a@x.io"},
    )


@pytest.mark.parametrize("kind", ["track", "page", "screen", "group", "alias"])
def test_other_calls_are_recorded(client, destination, kind):
    response = call(client, f"/v1/{kind}", {"userId": "u1", "messageId": "m1"})

    assert response.status_code == 200
    assert InboundEvent.objects.get().type == kind


@pytest.mark.parametrize("kind", ["batch", "import"])
def test_a_batch_applies_its_context_to_events_without_their_own(client, destination, kind):
    body = {
        "batch": [identify(message_id="a"), identify(message_id="b", context={"ip": "1.2.3.4"})],
        "context": {"library": {"name": "analytics-ruby"}},
        "writeKey": WRITE_KEY,
    }

    response = call(client, f"/v1/{kind}", body)

    assert response.json() == {"success": True}
    contexts = dict(InboundEvent.objects.values_list("message_id", "payload__context"))
    assert contexts == {"a": {"library": {"name": "analytics-ruby"}}, "b": {"ip": "1.2.3.4"}}


@pytest.mark.parametrize("defaults", [{}, {"context": {"ip": "1.2.3.4"}}], ids=["plain", "context"])
def test_a_batch_event_that_is_not_an_object_is_skipped_and_the_rest_stored(
    client, destination, defaults
):
    body = {"batch": [identify(message_id="a"), 7], **defaults}

    response = call(client, "/v1/batch", body)

    assert response.json() == {"success": True}
    rows = {row.message_id: row for row in InboundEvent.objects.all()}
    assert rows["a"].status == InboundEvent.Status.PENDING
    assert rows["a"].payload == {**defaults, **identify(message_id="a")}
    (invalid,) = (row for key, row in rows.items() if key != "a")
    assert (invalid.payload, invalid.status, invalid.reason) == (
        7,
        InboundEvent.Status.SKIPPED,
        "The event is not a JSON object.",
    )


def test_the_write_key_may_come_in_the_body(client, destination):
    body = {"userId": "u1", "traits": {"email": "a@x.io"}, "writeKey": WRITE_KEY}

    response = call(client, "/v1/identify", body, headers={})

    assert response.status_code == 200
    assert "writeKey" not in InboundEvent.objects.get().payload


@pytest.mark.parametrize(
    "headers",
    [{}, basic("wk_not_a_key_of_anybody"), {"Authorization": f"Bearer {WRITE_KEY}"}],
    ids=["none", "unknown", "bearer"],
)
def test_a_missing_or_unknown_write_key_is_401(client, destination, headers):
    response = call(client, "/v1/identify", {"userId": "u1"}, headers=headers)

    assert response.status_code == 401
    assert response.json()["success"] is False
    assert not InboundEvent.objects.exists()


def test_a_disabled_destination_refuses_its_write_key(client, destination):
    Destination.objects.update(enabled=False)

    assert call(client, "/v1/identify", {"userId": "u1"}).status_code == 401


def test_gzip_bodies_are_inflated(client, destination):
    raw = gzip.compress(json.dumps({"batch": [identify()]}).encode())

    response = call(
        client, "/v1/batch", None, headers={**basic(), "Content-Encoding": "gzip"}, raw=raw
    )

    assert response.status_code == 200
    assert InboundEvent.objects.get().user_id == "user-1"


@pytest.mark.parametrize(
    ("raw", "encoding", "message"),
    [
        (b"not gzip at all", "gzip", "not valid gzip"),
        (gzip.compress(b'{"batch": []}')[:-12], "gzip", "cut short"),
        (b"{}", "br", "Content-Encoding 'br' is not supported"),
        (gzip.compress(b" " * 600_000 + b"{}"), "gzip", "larger than 512000 bytes"),
    ],
    ids=["garbage", "truncated", "brotli", "bomb"],
)
def test_bad_encodings_are_400_with_the_reason(client, destination, raw, encoding, message):
    response = call(
        client, "/v1/batch", None, headers={**basic(), "Content-Encoding": encoding}, raw=raw
    )

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_segments_limits_apply(client, destination):
    too_big = {
        "batch": [identify(message_id=f"m{i}", traits={"x": "y" * 1000}) for i in range(600)]
    }
    too_many = {"batch": [{"type": "track", "userId": "u"}] * 2501}
    big_event = identify(traits={"email": "x" * 33_000})

    assert "larger than 512000 bytes" in call(client, "/v1/batch", too_big).json()["message"]
    assert "more than 2500 events" in call(client, "/v1/batch", too_many).json()["message"]
    assert "larger than 32768 bytes" in call(client, "/v1/identify", big_event).json()["message"]
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize(
    ("path", "body", "message"),
    [
        ("/v1/identify", [identify()], "must be one event object"),
        ("/v1/batch", identify(), 'must be {"batch": [...]}'),
        ("/v1/identify", {"userId": 4.5}, '"userId" must be a string or an integer'),
    ],
)
def test_bad_bodies_are_400_with_the_reason(client, destination, path, body, message):
    response = call(client, path, body)

    assert response.status_code == 400
    assert message in response.json()["message"]


def test_unknown_calls_are_404(client, destination):
    assert call(client, "/v1/delete", {"userId": "u1"}).status_code == 404


def test_write_keys_must_be_long_printable_and_unique(make_destination, destination):
    other = make_destination(slug="other")
    for bad in ["short", "wk_with a space_0123456", "wk_zero\u200bwidth_0123456"]:
        with pytest.raises(tracking.InvalidWriteKey):
            tracking.set_write_key(other, bad)
    with pytest.raises(tracking.InvalidWriteKey, match="another destination"):
        tracking.set_write_key(other, WRITE_KEY)
