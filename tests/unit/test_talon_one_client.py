"""The Talon.One client's own decisions: which answers are retried, how long
Retry-After makes us wait, what an error body says, how many profiles a bulk
request may carry."""

import json
import time
from datetime import timedelta
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler
from urllib.parse import quote

import pytest
import requests
from django.utils import timezone

from destinations.talon_one import (
    BULK_LIMIT,
    MAX_RETRY_AFTER_SECONDS,
    RESPONSE_BODY_LIMIT,
    RESPONSE_READ_LIMIT,
    Outcome,
    TalonOneClient,
    classify,
    parse_retry_after,
    read_error,
)
from tests.local_server import local_server, scripted_talon


@pytest.mark.parametrize("status", [200, 201, 204, 299])
def test_2xx_is_success(status):
    assert classify(status) is Outcome.SUCCESS


@pytest.mark.parametrize("status", [408, 409, 425, 429, 500, 502, 503, 504, 599])
def test_timeouts_conflicts_rate_limits_and_outages_are_retried(status):
    assert classify(status) is Outcome.RETRY


@pytest.mark.parametrize("status", [199, 300, 301, 302, 400, 401, 403, 404, 407, 410, 413, 422])
def test_everything_else_is_permanent(status):
    assert classify(status) is Outcome.PERMANENT


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        ("0.5", 0.5),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("-30", 0.0),
        ("3600", 3600.0),
        ("3601", MAX_RETRY_AFTER_SECONDS),
        ("86400", MAX_RETRY_AFTER_SECONDS),
        ("1e9", MAX_RETRY_AFTER_SECONDS),
    ],
)
def test_retry_after_in_seconds_is_honoured_up_to_an_hour(header, seconds):
    assert parse_retry_after(header) == seconds


@pytest.mark.parametrize("header", [None, "", "soon", "inf", "-inf", "nan", "Mon, 99 Foo 2026"])
def test_unusable_retry_after_is_ignored(header):
    assert parse_retry_after(header) is None


def http_date(delta: timedelta) -> str:
    return format_datetime(timezone.now() + delta, usegmt=True)


def test_retry_after_as_an_http_date_waits_until_then():
    seconds = parse_retry_after(http_date(timedelta(minutes=2)))

    assert seconds is not None
    assert 115 <= seconds <= 120  # the date has whole seconds


def test_retry_after_as_a_far_http_date_is_capped_at_an_hour():
    assert parse_retry_after(http_date(timedelta(days=2))) == MAX_RETRY_AFTER_SECONDS


def test_retry_after_as_a_past_http_date_means_now():
    assert parse_retry_after(http_date(-timedelta(minutes=5))) == 0.0


def test_error_body_message_is_read_and_its_details_are_not():
    body = """{"message": "Invalid request", "errors": [
        {"title": "bad type", "details": "age must be a number",
         "source": {"pointer": "/customerProfiles/2/attributes/age"}}
    ]}"""

    assert read_error(body) == "Invalid request"


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html>502 Bad Gateway</html>",
        "[1, 2]",
        '"just a string"',
        "null",
        '{"message": 42}',
        '{"message": ["a"], "errors": "nope"}',
        '{"errors": [1, "x", null, {"source": "nope"}, {"source": {"pointer": 7}}]}',
        '{"errors": null}',
    ],
)
def test_malformed_error_bodies_give_no_message(body):
    assert read_error(body) == ""


def test_error_message_is_bounded():
    assert read_error('{"message": "' + "x" * 5000 + '"}') == "x" * 500


def test_bulk_request_over_talon_ones_limit_is_refused_before_sending():
    client = TalonOneClient("http://127.0.0.1:9", "key")
    too_many = {f"u{i}": {"plan": "gold"} for i in range(BULK_LIMIT + 1)}

    with pytest.raises(ValueError, match=str(BULK_LIMIT)):
        client.update_profiles(too_many)


def test_membership_changes_over_talon_ones_limit_are_refused_before_sending():
    client = TalonOneClient("http://127.0.0.1:9", "key")
    too_many = [
        {"action": "add", "profileIntegrationId": f"u{i}", "audienceId": 7}
        for i in range(BULK_LIMIT + 1)
    ]

    with pytest.raises(ValueError, match=f"at most {BULK_LIMIT} changes"):
        client.update_audiences(too_many)


def test_bulk_request_at_talon_ones_limit_is_sent_whole():
    with scripted_talon(lambda body: (204, {}, None)) as (url, received):
        result = TalonOneClient(url, "key").update_profiles(
            {f"u{i}": {"plan": "gold"} for i in range(BULK_LIMIT)}
        )

    assert result.outcome is Outcome.SUCCESS
    [body] = received
    assert len(body["customerProfiles"]) == BULK_LIMIT


@pytest.mark.parametrize(
    ("headers", "retry_after"),
    [({"Retry-After": "7200"}, MAX_RETRY_AFTER_SECONDS), ({"Retry-After": "15"}, 15.0), ({}, None)],
)
def test_a_429_carries_its_retry_after(headers, retry_after):
    answer = {"message": "slow down"}
    with scripted_talon(lambda body: (429, headers, answer)) as (url, _):
        result = TalonOneClient(url, "key").update_profile("u1", {"plan": "gold"}, False)

    assert result.outcome is Outcome.RETRY
    assert result.retry_after == retry_after
    assert result.message == "slow down"
    assert result.summary() == "Talon.One answered 429: slow down"


def test_a_retry_after_date_header_is_read():
    headers = {"Retry-After": http_date(timedelta(minutes=10))}
    with scripted_talon(lambda body: (503, headers, None)) as (url, _):
        result = TalonOneClient(url, "key").update_profiles({"u1": {"plan": "gold"}})

    assert result.outcome is Outcome.RETRY
    assert result.retry_after is not None
    assert 595 <= result.retry_after <= 600


def test_a_bulk_400_is_permanent_with_talon_ones_message():
    answer = {
        "message": "bad",
        "errors": [{"title": "t", "details": "d", "source": {"pointer": "/customerProfiles/1"}}],
    }
    with scripted_talon(lambda body: (400, {}, answer)) as (url, _):
        result = TalonOneClient(url, "key").update_profiles({"a": {}, "b": {}})

    assert result.outcome is Outcome.PERMANENT
    assert result.summary() == "Talon.One answered 400: bad"
    assert result.data is None


def test_success_bodies_are_not_read_for_errors():
    answer = {"message": "not an error", "errors": [{"source": {"pointer": "/customerProfiles/0"}}]}
    with scripted_talon(lambda body: (200, {}, answer)) as (url, _):
        result = TalonOneClient(url, "key").update_profiles({"a": {}})

    assert result.outcome is Outcome.SUCCESS
    assert result.message == ""
    assert result.data == answer
    assert result.summary() == "Talon.One answered 200"


@pytest.mark.parametrize(("rule_engine", "query"), [(True, "true"), (False, "false")])
def test_a_single_update_says_whether_the_rule_engine_runs(rule_engine, query):
    def no_content(request, body):
        request.send_response(204)
        request.end_headers()

    with local_server(no_content) as (url, paths):
        TalonOneClient(url, "key").update_profile("a/b c", {}, rule_engine)

    assert paths == [f"/v2/customer_profiles/a%2Fb%20c?runRuleEngine={query}"]


@pytest.mark.django_db
def test_a_private_address_is_refused_for_good_with_the_reason(settings):
    settings.TALON_HTTP_ALLOWED_HOSTS = []

    result = TalonOneClient("https://10.0.0.1", "key").update_profiles({"u1": {}})

    assert result.outcome is Outcome.PERMANENT
    assert result.summary() == (
        "Not sent: the base URL's host resolves to an address that is not allowed "
        "(loopback, private, link-local or metadata)"
    )


class BrokenSession(requests.Session):
    def request(self, *args, **kwargs):
        raise requests.exceptions.ChunkedEncodingError("connection broken mid-answer")


def test_another_transport_failure_is_retried_and_named_by_its_kind():
    result = TalonOneClient("https://acme.talon.one", "key", BrokenSession()).update_profiles({})

    assert result.outcome is Outcome.RETRY
    assert result.summary() == "Request to Talon.One failed (ChunkedEncodingError)"


def test_a_key_found_inside_its_own_escaped_form_is_redacted_whole():
    # A key that starts with a backslash is found one character into its JSON-
    # escaped form: the longest form is replaced first, so no part of it stays.
    key = "\\tk-4f9a1c7e"
    client = TalonOneClient("http://127.0.0.1:9", key)

    assert client._redact(json.dumps({"key": key})) == '{"key": "[redacted]"}'
    assert client._redact("key=" + quote(key, safe="")) == "key=[redacted]"
    assert client._redact(f"{key} refused") == "[redacted] refused"


def test_a_long_error_answer_is_read_from_its_start():
    answer = {"message": "first words", "pad": "x" * 300_000}
    with scripted_talon(lambda body: (400, {}, answer)) as (url, _):
        result = TalonOneClient(url, "key").update_profile("u1", {"plan": "gold"}, False)

    assert result.message == "first words"
    assert result.response_body.startswith('{"message": "first words"')


def test_an_answer_longer_than_the_read_limit_is_not_waited_for():
    # Twice the limit announced, the limit and a bit sent, then a pause and the
    # end: the client stops reading at the limit instead of waiting for the rest
    # (which here would never come whole).
    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        request.send_response(500)
        request.send_header("Content-Length", str(2 * RESPONSE_READ_LIMIT))
        request.end_headers()
        request.wfile.write(b"z" * (RESPONSE_READ_LIMIT + 100_000))
        request.wfile.flush()
        time.sleep(1)

    with local_server(handle) as (url, _):
        result = TalonOneClient(url, "key").update_profiles({"u1": {"plan": "gold"}})

    assert (result.status, result.error) == (500, "")
    assert result.response_body == "z" * RESPONSE_BODY_LIMIT


def test_an_answer_that_is_not_utf8_is_read_with_replacement_characters():
    # As a cut at the read limit can leave half a character.
    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        payload = b"refused \xe2\x82"
        request.send_response(500)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    with local_server(handle) as (url, _):
        result = TalonOneClient(url, "key").update_profiles({"u1": {"plan": "gold"}})

    assert (result.status, result.response_body) == (500, "refused \ufffd")
