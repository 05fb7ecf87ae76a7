"""What a 400 says for values no database stores: the whole message, since it is
all a Segment operator sees."""

import pytest

from tests.conftest import identify

pytestmark = pytest.mark.django_db


@pytest.fixture
def destination(make_destination):
    return make_destination()


def post_raw(post_events, raw: bytes):
    return post_events("acme", raw)


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (
            b'{"type": "identify", "userId": "u\\u0000"}',
            "The body holds a NUL character (\\u0000), which cannot be stored.",
        ),
        (
            b'{"type": "identify", "userId": "u\\ud800"}',
            "The body holds an unpaired UTF-16 surrogate (\\ud800): not valid Unicode text.",
        ),
        (
            b'{"type": "identify", "traits": {"n": 1e400}}',
            "The body is not valid JSON: the number 1e400 is too large.",
        ),
        (
            b'{"type": "identify", "traits": {"n": ' + b"9" * 30 + b"e999999999}}",
            "The body is not valid JSON: the number " + "9" * 30 + "e999999999 is too large.",
        ),
        (
            b'{"type": "identify", "traits": {"n": ' + b"9" * 31 + b"e999999999}}",
            "The body is not valid JSON: the number " + "9" * 31 + "e99999999… is too large.",
        ),
        (
            b'{"type": "identify", "traits": {"n": ' + b"9" * 50 + b"e999}}",
            "The body is not valid JSON: the number " + "9" * 40 + "… is too large.",
        ),
    ],
    ids=["nul", "surrogate", "huge-number", "forty-characters", "41-characters", "longer-number"],
)
def test_unstorable_values_are_named(destination, post_events, raw, detail):
    response = post_raw(post_events, raw)

    assert response.status_code == 400
    assert response.json() == {"detail": detail}


@pytest.mark.parametrize(
    ("raw", "detail"),
    [
        (b'{"type": 5}', 'The event: "type" must be a string, not a number.'),
        (
            b'{"type": "identify", "timestamp": 1.5}',
            'The event: "timestamp" must be a string, not a number with a fraction.',
        ),
        (
            b'{"type": "identify", "messageId": {}}',
            'The event: "messageId" must be a string, not an object.',
        ),
        (
            b'{"type": "identify", "messageId": []}',
            'The event: "messageId" must be a string, not an array.',
        ),
        (b'{"type": true}', 'The event: "type" must be a string, not a boolean.'),
        (
            b"{",
            "The body is not valid JSON: "
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (b"[" * 100_000 + b"]" * 100_000, "The body is not valid JSON: it is nested too deeply."),
        (
            b'{"userId": "u"}',
            'The body is not a Segment event: it has no "type" (expected e.g. "identify").',
        ),
        (b'{"type": null}', 'The event: "type" is required.'),
        (b'{"type": "' + b"x" * 21 + b'"}', 'The event: "type" is longer than 20 characters.'),
        (
            b'{"type": "identify", "userId": "' + "\u20ac".encode() * 667 + b'"}',
            'The event: "userId" is longer than 2000 bytes as UTF-8.',
        ),
        (
            b'{"type": "identify", "userId": 4.0}',
            'The event: "userId" must be a string or an integer, not a decimal number.',
        ),
        (
            b'{"type": "identify", "timestamp": "yesterday"}',
            'The event: "timestamp" is not an ISO 8601 date and time in the years 1 to 9999.',
        ),
        (b'{"type": "identify", "traits": []}', 'The event: "traits" must be an object.'),
        (b'{"type": "identify", "context": "web"}', 'The event: "context" must be an object.'),
        (
            b'{"type": "identify", "traits": {"n": 9223372036854775808}}',
            "The body is not valid JSON: an integer is too large (19 characters); "
            "integers must be within \u00b19223372036854775807.",
        ),
        (b"[]", "The body holds no events."),
        (b'{"batch": {}}', '"batch" must be an array of events.'),
        (b"", "The body is empty: send the events as JSON, with a Content-Length header."),
        (b'{"type": "\xff"}', "The body is not valid UTF-8 (bad byte at 10)."),
    ],
    ids=[
        "number",
        "fraction",
        "object",
        "array",
        "boolean",
        "syntax",
        "too-deep",
        "no-type",
        "type-null",
        "type-too-long",
        "userid-bytes",
        "userid-decimal",
        "timestamp",
        "traits",
        "context",
        "integer",
        "no-events",
        "batch-object",
        "empty",
        "utf8",
    ],
)
def test_what_is_wrong_is_said(destination, post_events, raw, detail):
    response = post_raw(post_events, raw)

    assert response.status_code == 400
    assert response.json() == {"detail": detail}


def test_a_batch_with_one_unstorable_value_is_refused_whole(destination, post_events):
    raw = b'[{"type": "identify", "userId": "ok", "messageId": "1"}, {"type": "x\\u0000"}]'

    response = post_raw(post_events, raw)

    assert response.status_code == 400
    assert "NUL character" in response.json()["detail"]
    assert post_events("acme", identify()).json()["accepted"] == 1


@pytest.mark.parametrize("after", ['"plain"', "1", "null", "true"])
def test_an_unstorable_value_is_found_whatever_comes_after_it(destination, post_events, after):
    raw = b'[{"type": "identify", "userId": "u\\u0000"}, ' + after.encode() + b"]"

    response = post_raw(post_events, raw)

    assert response.json() == {
        "detail": "The body holds a NUL character (\\u0000), which cannot be stored."
    }


def test_the_body_may_nest_64_levels_and_no_more(destination, post_events):
    at_the_limit = post_raw(post_events, b"[" * 64 + b"]" * 64)
    over = post_raw(post_events, b"[" * 65 + b"]" * 65)

    assert at_the_limit.json() == {"accepted": 0, "skipped": 1, "duplicates": 0}
    assert over.status_code == 400
    assert over.json() == {"detail": "The body is nested too deeply (over 64 levels)."}
