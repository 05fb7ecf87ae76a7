"""Hostile bodies get a 4xx that names the problem, never a 500, and store nothing.

In a batch, an event that fails on its own is stored as skipped with the reason,
and the others proceed: Segment never retries a 4xx, so a 400 would lose them all.
"""

import json

import pytest

from destinations.models import AttributeMapping, InboundEvent
from tests.conftest import identify, sign
from tests.security.conftest import SECRET

pytestmark = pytest.mark.django_db

URL = "/api/v1/segment/acme/"


@pytest.fixture
def post(client, destination, no_broker):
    """POST raw bytes, signed with the destination's secret."""

    def post(raw: bytes, **extra):
        return client.generic(
            "POST",
            URL,
            raw,
            content_type="application/json",
            headers={"X-Signature": sign(raw, SECRET)},
            **extra,
        )

    return post


def event_with(**fields) -> bytes:
    return json.dumps(identify(**fields)).encode()


def nested(depth: int, leaf: str = "1") -> str:
    return '{"a":' * depth + leaf + "}" * depth


def assert_refused(response, status: int, message: str) -> None:
    assert response.status_code == status, response.content
    assert message in response.json()["detail"]
    assert not InboundEvent.objects.exists()


BAD_BODIES = {
    # Nesting
    "deep-arrays": (b"[" * 10_000 + b"]" * 10_000, "nested too deeply"),
    "deep-objects": (nested(10_000).encode(), "nested too deeply"),
    "deep-traits": (
        b'{"type":"identify","userId":"u","traits":' + nested(10_000).encode() + b"}",
        "nested too deeply",
    ),
    "65-levels": (
        b'{"type":"identify","userId":"u","traits":' + nested(64).encode() + b"}",
        "nested too deeply (over 64 levels)",
    ),
    # Wrong types of the fields the service reads
    "userid-bool": (event_with(userId=True), '"userId" must be a string'),
    "userid-object": (event_with(userId={"id": 1}), '"userId" must be a string'),
    "anonymousid-fraction": (event_with(anonymousId=7.5), '"anonymousId" must be a string'),
    "messageid-number": (event_with(messageId=12), '"messageId" must be a string'),
    "timestamp-number": (event_with(timestamp=1767225600), '"timestamp" must be a string'),
    "timestamp-list": (event_with(timestamp=["2026"]), '"timestamp" must be a string'),
    "type-null": (event_with(type=None), '"type" is required'),
    "type-number": (event_with(type=1), '"type" must be a string'),
    "type-too-long": (event_with(type="identify" * 3), '"type" is longer than 20'),
    "traits-string": (event_with(traits="gold"), '"traits" must be an object'),
    "traits-number": (event_with(traits=3), '"traits" must be an object'),
    "context-list": (event_with(context=[]), '"context" must be an object'),
    "messageid-too-long": (event_with(messageId="m" * 201), '"messageId" is longer than 200'),
    "userid-too-long": (event_with(userId="u" * 1001), '"userId" is longer than 1000 characters'),
    # PostgreSQL's btree indexes hold entries up to about 2,700 bytes.
    "userid-too-many-bytes": (event_with(userId="用" * 1000), '"userId" is longer than 2000 bytes'),
    # Times no database can store
    "timestamp-past-9999": (
        event_with(timestamp="9999-12-31T23:59:59-23:59"),
        "ISO 8601 date and time in the years 1 to 9999",
    ),
    "timestamp-before-1": (
        event_with(timestamp="0001-01-01T00:00:00+01:00"),
        "ISO 8601 date and time in the years 1 to 9999",
    ),
    "timestamp-month-13": (event_with(timestamp="2026-13-01T00:00:00Z"), "ISO 8601"),
    # Numbers JSON allows only by accident, or not at all
    "nan": (b'{"type":"identify","userId":"u","traits":{"x":NaN}}', "NaN is not a JSON number"),
    "infinity": (
        b'{"type":"identify","userId":"u","traits":{"x":Infinity}}',
        "Infinity is not a JSON number",
    ),
    "minus-infinity": (
        b'{"type":"identify","userId":"u","traits":{"x":-Infinity}}',
        "-Infinity is not a JSON number",
    ),
    "float-overflow": (
        b'{"type":"identify","userId":"u","traits":{"x":1e400}}',
        "the number 1e400 is too large",
    ),
    "huge-int": (
        b'{"type":"identify","userId":"u","traits":{"x":' + b"9" * 4000 + b"}}",
        "an integer is too large (4000 characters)",
    ),
    "int-over-64-bits": (
        b'{"type":"identify","userId":"u","traits":{"x":9223372036854775808}}',
        "integers must be within",
    ),
    "negative-int-over-64-bits": (
        b'{"type":"identify","userId":"u","traits":{"x":-99999999999999999999}}',
        "integers must be within",
    ),
    # Text that is not valid Unicode, or that no database stores
    "lone-surrogate": (
        b'{"type":"identify","userId":"u","traits":{"x":"\\ud800"}}',
        "unpaired UTF-16 surrogate (\\ud800)",
    ),
    "lone-low-surrogate-in-key": (
        b'{"type":"identify","userId":"u","traits":{"\\udfff":"x"}}',
        "unpaired UTF-16 surrogate (\\udfff)",
    ),
    "surrogate-userid": (b'{"type":"identify","userId":"\\ud83d"}', "unpaired UTF-16 surrogate"),
    "nul-in-trait": (
        b'{"type":"identify","userId":"u","traits":{"x":"a\\u0000b"}}',
        "NUL character",
    ),
    "nul-in-userid": (b'{"type":"identify","userId":"u\\u0000"}', "NUL character"),
    "nul-in-context-key": (
        b'{"type":"identify","userId":"u","context":{"\\u0000":1}}',
        "NUL character",
    ),
    "invalid-utf8": (b'{"type":"identify","userId":"\xff"}', "not valid UTF-8"),
    "overlong-utf8": (b'{"type":"identify","userId":"\xc0\xaf"}', "not valid UTF-8"),
    "utf8-encoded-surrogate": (b'{"type":"identify","userId":"\xed\xa0\x80"}', "not valid UTF-8"),
    "truncated-utf8": (b'{"type":"identify","userId":"\xe2\x82"}', "not valid UTF-8"),
    "utf16": ('{"type":"identify"}'.encode("utf-16"), "not valid UTF-8"),
    # Not an event at all
    "empty": (b"", "The body is empty"),
    "whitespace": (b"  \n", "not valid JSON"),
    "null": (b"null", "must be a Segment event object"),
    "trailing-garbage": (event_with() + b"}", "not valid JSON"),
    "bom": (b"\xef\xbb\xbf" + event_with(), "not valid JSON"),
}


@pytest.mark.parametrize(("raw", "message"), BAD_BODIES.values(), ids=BAD_BODIES.keys())
def test_bad_body_is_400_naming_the_problem(post, raw, message):
    assert_refused(post(raw), 400, message)


def test_a_million_keys_are_over_the_request_limit(post):
    traits = {f"k{i}": 1 for i in range(1_000_000)}
    raw = json.dumps(identify(traits=traits)).encode()
    assert len(raw) > 5 * 1024 * 1024

    assert_refused(post(raw), 413, "larger than 5242880 bytes")


def test_single_event_over_32_kb_is_413(post):
    raw = event_with(traits={"email": "x" * (32 * 1024)})
    assert_refused(post(raw), 413, "The event is larger than 32768 bytes")


@pytest.fixture
def forwarding(destination):
    """The destination forwards a trait, so a good event of a batch is queued."""
    AttributeMapping.objects.create(destination=destination, name="email", type="string")


@pytest.mark.usefixtures("forwarding")
def test_event_size_in_a_batch_counts_utf8_bytes(post):
    big = identify(message_id="b", traits={"name": "€" * 11_000})  # 33 KB of UTF-8

    response = post(json.dumps([identify(), big]).encode())

    assert response.json() == {"accepted": 1, "skipped": 1, "duplicates": 0}
    row = InboundEvent.objects.get(message_id="b")
    assert row.status == InboundEvent.Status.SKIPPED
    assert row.reason == "The event is larger than 32768 bytes."


HOSTILE_BATCH_EVENTS = {
    "number": 7,
    "null": None,
    "nested-list": [[{"type": "identify"}]],
    "userid-object": identify(message_id="b", userId={"id": 1}),
    "timestamp-past-9999": identify(message_id="b", timestamp="9999-12-31T23:59:59-23:59"),
    "type-object": identify(message_id="b", type={"$ne": None}),
    "userid-too-many-bytes": identify(message_id="b", userId="用" * 1000),
    "messageid-too-long-utf8": identify(messageId="用" * 201),
}


@pytest.mark.usefixtures("forwarding")
@pytest.mark.parametrize("bad", HOSTILE_BATCH_EVENTS.values(), ids=HOSTILE_BATCH_EVENTS.keys())
def test_hostile_event_in_a_batch_is_stored_as_skipped(post, bad):
    response = post(json.dumps([identify(), bad]).encode())

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "skipped": 1, "duplicates": 0}
    row = InboundEvent.objects.exclude(message_id="m-1").get()
    assert row.status == InboundEvent.Status.SKIPPED
    assert row.reason
    assert row.payload == bad


@pytest.mark.parametrize(
    ("raw", "status", "message"),
    [
        (b'[{"type":"identify","userId":"u"},{"type":"x","n":"\\u0000"}]', 400, "NUL character"),
        (b'[{"type":"identify"},' + nested(100).encode() + b"]", 400, "nested too deeply"),
        (b'[{"type":"identify"},{"n":NaN}]', 400, "NaN"),
    ],
    ids=["nul", "deep", "nan"],
)
def test_unstorable_value_anywhere_in_a_batch_refuses_the_request(post, raw, status, message):
    assert_refused(post(raw), status, message)


def test_more_than_4000_events_is_413(post):
    raw = json.dumps([{"type": "t"}] * 4001).encode()
    assert len(raw) < 500 * 1024
    assert_refused(post(raw), 413, "more than 4000 events")


def test_declared_length_over_the_limit_is_413_before_reading(post):
    assert_refused(post(event_with(), CONTENT_LENGTH=str(10**9)), 413, "larger than 5242880 bytes")


@pytest.mark.parametrize(
    ("length", "message"),
    [
        # A chunked request without Content-Length reaches Django with no body.
        ("", "The body is empty"),
        ("-1", "Content-Length header is not a valid length"),
        ("abc", "Content-Length header is not a valid length"),
        ("١٢", "Content-Length header is not a valid length"),  # digits, but not ASCII
    ],
    ids=["absent", "negative", "garbage", "arabic-digits"],
)
def test_missing_or_broken_content_length_is_400(client, destination, length, message):
    response = client.generic(
        "POST",
        URL,
        event_with(),
        content_type="application/json",
        headers={"Authorization": f"Bearer {SECRET}"},
        CONTENT_LENGTH=length,
    )
    assert_refused(response, 400, message)


def test_content_length_shorter_than_the_body_is_a_truncated_body(client, destination):
    raw = event_with()
    response = client.generic(
        "POST",
        URL,
        raw,
        content_type="application/json",
        headers={"Authorization": f"Bearer {SECRET}"},
        CONTENT_LENGTH=str(len(raw) - 5),
    )
    assert_refused(response, 400, "not valid JSON")


# --- What is accepted at the edges ---------------------------------------------


@pytest.mark.parametrize(
    "traits",
    [
        {"big": 9223372036854775807, "small": -9223372036854775807, "tiny": 5e-324},
        {"plan": "gold", "deep": json.loads(nested(60))},
        {f"k{i}": i for i in range(2000)},
        {"name": "€" * 10_000},  # 30 KB of UTF-8, 60 KB as \\u escapes
    ],
    ids=["int64-and-denormal", "60-levels", "2000-keys", "30-kb-of-utf8"],
)
def test_edge_values_are_accepted(post, traits):
    response = post(event_with(traits=traits))
    assert response.status_code == 200, response.content
    assert InboundEvent.objects.get().payload["traits"] == traits


@pytest.mark.parametrize("leaf", ['"gold"', '"\\ud83d\\ude00"'], ids=["plain", "escaped-text"])
def test_64_levels_are_accepted_and_65_refused_whether_text_is_checked_or_not(post, leaf):
    # An escape that may hide unstorable text makes the parser walk every value.
    def levels(depth: int) -> bytes:
        traits = nested(depth - 1, leaf).encode()
        return b'{"type":"identify","userId":"u","traits":' + traits + b"}"

    assert_refused(post(levels(65)), 400, "nested too deeply (over 64 levels)")
    response = post(levels(64))
    assert response.status_code == 200, response.content


def test_an_escaped_surrogate_pair_is_one_character(post):
    response = post(b'{"type":"identify","userId":"u","traits":{"plan":"\\ud83d\\ude00"}}')
    assert response.status_code == 200, response.content
    assert InboundEvent.objects.get().payload["traits"] == {"plan": "\U0001f600"}
