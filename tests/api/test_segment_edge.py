"""What real Segment sends is accepted: Webhooks (Actions) batches of up to
4,000 events signed over their first event, header auth beside a signature,
numeric userIds, PUT and PATCH, and the URL without its trailing slash."""

import base64
import json

import pytest

from destinations.models import InboundEvent
from destinations.services.ingest import first_element
from tests.conftest import SECRET, identify, sign
from tests.segment_payloads import actions_batch, js_json, segment_identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

URL = "/api/v1/segment/acme/"
BEARER = {"Authorization": f"Bearer {SECRET}"}


@pytest.fixture
def destination(make_destination):
    return make_destination(attributes=["email", "plan", "address_city"])


def send(client, raw, headers, method="POST", url=URL):
    return client.generic(method, url, raw, content_type="application/json", headers=headers)


def test_a_4000_event_actions_batch_signed_over_its_first_event_is_accepted_when_opted_in(
    client, make_destination
):
    make_destination(accept_first_event_signature=True)
    raw, signature = actions_batch([segment_identify(i) for i in range(4000)])
    assert 3_000_000 < len(raw) < 5 * 1024 * 1024  # over the old 500 KB limit

    response = send(client, raw, {"X-Signature": signature})

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 4000, "skipped": 0, "duplicates": 0}
    assert InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count() == 4000


def test_a_first_event_signature_is_refused_unless_the_destination_opts_in(client, destination):
    raw, signature = actions_batch([segment_identify(i) for i in range(3)])

    response = send(client, raw, {"X-Signature": signature})

    assert response.status_code == 401
    assert not InboundEvent.objects.exists()


def test_a_first_event_signature_does_not_sign_another_first_event(client, make_destination):
    make_destination(accept_first_event_signature=True)
    raw, _ = actions_batch([segment_identify(i) for i in range(3)])
    _, other = actions_batch([segment_identify(9), segment_identify(1)])

    assert send(client, raw, {"X-Signature": other}).status_code == 401


def test_a_first_event_signature_signs_only_array_bodies(client, make_destination):
    make_destination(accept_first_event_signature=True)
    events = [segment_identify(0)]
    _, signature = actions_batch(events)

    response = send(client, js_json({"batch": events}), {"X-Signature": signature})

    assert response.status_code == 401


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {SECRET}", "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()],
    ids=["bearer", "basic"],
)
def test_a_valid_authorization_header_authenticates_whatever_x_signature_says(
    client, destination, authorization
):
    raw, first_event_signature = actions_batch([segment_identify(i) for i in range(3)])

    response = send(
        client, raw, {"Authorization": authorization, "X-Signature": first_event_signature}
    )

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 3


def test_a_whole_body_signature_authenticates_beside_a_foreign_authorization_header(
    client, destination
):
    raw = js_json([segment_identify(0)])

    response = send(client, raw, {"Authorization": "Bearer for-a-proxy", "X-Signature": sign(raw)})

    assert response.status_code == 200


def test_a_wrong_authorization_and_a_wrong_signature_are_refused(client, destination):
    raw = js_json([segment_identify(0)])

    response = send(client, raw, {"Authorization": "Bearer nope", "X-Signature": "0" * 40})

    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "first"),
    [
        (b'[{"a":1},{"b":2}]', b'{"a":1}'),
        (b' \n[ \t{"a": [1, {"b": "]"}]} , 2]', b'{"a": [1, {"b": "]"}]}'),
        ('[{"name":"Zoë \u2013 用户"}]'.encode(), '{"name":"Zoë \u2013 用户"}'.encode()),
        (b'["x"]', b'"x"'),
        (b"[]", None),
        (b'{"batch":[{"a":1}]}', None),
        (b'[{"a":', None),
        (b"\xff[", None),
        (b"[" * 100_000, None),
    ],
    ids=["compact", "spaced", "non-ascii", "string", "empty", "object", "cut", "utf8", "deep"],
)
def test_the_first_element_is_taken_byte_for_byte(body, first):
    assert first_element(body) == first


@pytest.mark.parametrize(
    ("field", "value", "stored"),
    [
        ("userId", 42, "42"),
        ("userId", -7, "-7"),
        ("userId", 2**53 + 1, "9007199254740993"),
        ("anonymousId", 7, "7"),
    ],
)
def test_integer_ids_are_taken_as_their_decimal_strings(client, destination, field, value, stored):
    event = identify(**{field: value})

    response = send(client, js_json(event), BEARER)

    assert response.status_code == 200, response.content
    row = InboundEvent.objects.get()
    assert row.payload[field] == stored
    if field == "userId":
        assert row.user_id == stored
        assert row.status == InboundEvent.Status.PENDING


def test_integer_user_ids_in_a_batch_are_queued(client, destination):
    raw = js_json([identify(user_id=1001, message_id="a"), identify(user_id=1002, message_id="b")])

    assert send(client, raw, BEARER).json() == {"accepted": 2, "skipped": 0, "duplicates": 0}
    assert sorted(InboundEvent.objects.values_list("user_id", flat=True)) == ["1001", "1002"]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (True, '"userId" must be a string or an integer, not a boolean.'),
        (4.5, '"userId" must be a string or an integer, not a number with a fraction.'),
        (42.0, '"userId" must be a string or an integer, not a decimal number.'),
        ({"id": 1}, '"userId" must be a string or an integer, not an object.'),
        ([1], '"userId" must be a string or an integer, not an array.'),
    ],
    ids=["boolean", "fraction", "float", "object", "array"],
)
def test_other_user_id_types_stay_invalid_with_a_clear_reason(client, destination, value, reason):
    raw = js_json([identify(message_id="good"), identify(message_id="bad", userId=value)])

    send(client, raw, BEARER)

    bad = InboundEvent.objects.get(message_id="bad")
    assert bad.status == InboundEvent.Status.SKIPPED
    assert bad.reason == f"The event: {reason}"


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH"])
@pytest.mark.parametrize("url", [URL, URL.rstrip("/")], ids=["slash", "no-slash"])
def test_post_put_and_patch_are_accepted_with_and_without_the_trailing_slash(
    client, destination, method, url
):
    response = send(client, js_json(identify()), BEARER, method=method, url=url)

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1


@pytest.mark.parametrize("debug", [True, False])
def test_the_url_without_slash_is_never_redirected(client, destination, settings, debug):
    settings.DEBUG = debug

    response = send(client, js_json(identify()), BEARER, url=URL.rstrip("/"))

    assert response.status_code == 200


@pytest.mark.parametrize("method", ["GET", "DELETE", "HEAD"])
@pytest.mark.parametrize("url", [URL, URL.rstrip("/")], ids=["slash", "no-slash"])
def test_other_methods_are_405_with_allow(client, destination, method, url):
    response = client.generic(method, url, headers=BEARER)

    assert response.status_code == 405
    assert set(response["Allow"].replace(" ", "").split(",")) >= {"POST", "PUT", "PATCH"}


@pytest.mark.parametrize("encoding", ["chunked", "gzip, Chunked"])
def test_a_chunked_body_is_400_with_a_message(client, destination, encoding):
    response = send(client, b"", {**BEARER, "Transfer-Encoding": encoding})

    assert response.status_code == 400
    assert response.json() == {
        "detail": "Chunked request bodies are not supported: send the body with a Content-Length."
    }


def test_a_content_length_that_is_not_a_length_is_400_saying_so(client, destination):
    response = client.generic(
        "POST", URL, b"{}", content_type="application/json", headers=BEARER, CONTENT_LENGTH="-1"
    )

    assert response.status_code == 400
    assert response.json() == {"detail": "The Content-Length header is not a valid length."}


def test_a_body_of_exactly_the_request_limit_is_read(client, destination, settings):
    raw = js_json([segment_identify(i) for i in range(3)])
    settings.INGEST_MAX_REQUEST_BYTES = len(raw)

    assert send(client, raw, BEARER).json() == {"accepted": 3, "skipped": 0, "duplicates": 0}


def test_batch_limits_are_configurable(client, destination, settings):
    settings.INGEST_MAX_REQUEST_BYTES = 2000
    raw = js_json([segment_identify(i) for i in range(3)])

    response = send(client, raw, BEARER)

    assert response.status_code == 413
    assert response.json()["detail"] == "The request body is larger than 2000 bytes."


def test_4001_events_are_over_the_batch_limit(client, destination):
    raw = json.dumps([{"type": "t"}] * 4001).encode()

    response = send(client, raw, BEARER)

    assert response.status_code == 413
    assert "more than 4000 events" in response.json()["detail"]
