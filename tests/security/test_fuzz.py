"""Fuzzing the ingest API: thousands of generated bodies, never a 5xx, and it keeps serving.

Hypothesis builds bodies and posts them signed: well-formed Segment events with
any JSON values (every one must be accepted), hostile events (any type in any
place, any text) and corrupted bytes (each must get a 4xx at worst; an accepted
batch accounts for every event). Schemathesis builds requests from the OpenAPI
schema published at /api/schema/ and sends them to the WSGI application. Each
example runs in a savepoint that is rolled back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from destinations.models import AttributeMapping, Destination
from destinations.services.ingest import InvalidEvent, parse_events
from tests.conftest import identify, sign
from tests.security.conftest import SECRET

# Hundreds of examples each: their time grows with the machine's load, so they get
# more than the suite's 5 minutes before pytest-timeout calls them hung.
pytestmark = [pytest.mark.django_db, pytest.mark.timeout(900)]

URL = "/api/v1/segment/acme/"
FUZZ = settings(
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
ROWS = {
    "email": "string",
    "age": "number",
    "vip": "boolean",
    "createdAt": "time",
    "city": "location",
    "tags": "(list string)",
    "scores": "(list number)",
    "visits": "(list time)",
}

# Any text, lone surrogates and NUL included; and text every store can hold.
any_text = st.text(st.characters(exclude_categories=[]), max_size=12)
storable_text = st.text(
    st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12
)


def json_values(text: st.SearchStrategy[str], numbers: st.SearchStrategy[Any]) -> Any:
    scalars = (
        st.none()
        | st.booleans()
        | numbers
        | text
        | st.sampled_from(["", "2026-01-01T12:00:00Z", "1767225600", "true", "1e400", "-0"])
    )
    return st.recursive(
        scalars,
        lambda children: st.lists(children, max_size=4)
        | st.dictionaries(text, children, max_size=4),
        max_leaves=8,
    )


def segment_events(ids: Any, keys: Any, values: Any, types: Any, timestamps: Any) -> Any:
    names = st.sampled_from([*ROWS, "address", "plan", "Email"]) | keys
    return st.fixed_dictionaries(
        {"type": types},
        optional={
            "userId": ids,
            "anonymousId": ids,
            "messageId": ids,
            "timestamp": timestamps,
            "traits": st.dictionaries(
                names, values | st.dictionaries(names, values, max_size=3), max_size=8
            ),
            "context": st.fixed_dictionaries(
                {},
                optional={
                    "personas": st.fixed_dictionaries(
                        {},
                        optional={
                            "computation_class": st.sampled_from(
                                ["audience", "trait", "journey_step", "other"]
                            ),
                            "computation_key": names,
                        },
                    )
                },
            ),
        },
    )


def in_bodies(events: Any) -> Any:
    """One event, an array of events, or a batch."""
    return (
        events
        | st.lists(events, min_size=1, max_size=4)
        | st.fixed_dictionaries({"batch": st.lists(events, min_size=1, max_size=4)})
    )


iso_times = st.datetimes().map(lambda moment: moment.isoformat() + "Z")
# Of the shape Segment sends: the service must take every one (values may be
# anything JSON allows; the mapping decides what is sent).
well_formed = in_bodies(
    segment_events(
        storable_text,
        storable_text,
        json_values(
            storable_text,
            st.integers(-(2**63) + 1, 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
        ),
        st.sampled_from(["identify", "identify", "track", "page", "delete"]),
        iso_times,
    )
)
# Anything at all in every place, some of it right.
anything = json_values(any_text, st.integers() | st.floats())
hostile = (
    in_bodies(
        segment_events(
            any_text | anything,
            any_text,
            anything,
            st.sampled_from(["identify", "x" * 21]) | anything,
            iso_times
            | st.sampled_from(["9999-12-31T23:59:59-23:59", "0001-01-01T00:00+05:00"])
            | anything,
        )
    )
    | anything
)


def encode(value: Any, how: str) -> bytes:
    """The JSON text of value, as a sender might (mis)encode it."""
    if how == "ascii":
        return json.dumps(value).encode()
    # UTF-8, with lone surrogates written as their (invalid) three-byte forms.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def event_count(body: Any) -> int:
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        return len(body["batch"])
    return len(body) if isinstance(body, list) else 1


@pytest.fixture
def acme(destination: Destination, no_broker: list[int]) -> Destination:
    for name, type_ in ROWS.items():
        AttributeMapping.objects.create(destination=destination, name=name, type=type_)
    return destination


@pytest.fixture
def post_signed(client: Any) -> Callable[[bytes], Any]:
    def post(raw: bytes) -> Any:
        with transaction.atomic():
            response = client.post(
                URL,
                raw,
                content_type="application/json",
                headers={"X-Signature": sign(raw, SECRET)},
            )
            transaction.set_rollback(True)
        assert response.status_code in (200, 400, 413), (response.status_code, raw[:500])
        return response

    return post


@settings(FUZZ, max_examples=1000)
@given(body=well_formed, how=st.sampled_from(["ascii", "utf-8"]))
def test_well_formed_events_are_all_accepted(acme, post_signed, body, how):
    raw = encode(body, how)
    # No event is invalid (in a batch an invalid one is stored as skipped: still a 200)...
    assert [e for e in parse_events(raw) if isinstance(e, InvalidEvent)] == []
    response = post_signed(raw)
    assert response.status_code == 200
    # ...and each is stored or recognised as a duplicate.
    assert sum(response.json().values()) == event_count(body)


@settings(FUZZ, max_examples=700)
@given(body=hostile, how=st.sampled_from(["ascii", "utf-8"]))
def test_hostile_events_never_cause_a_5xx(acme, post_signed, body, how):
    response = post_signed(encode(body, how))
    if response.status_code == 200:
        # Each event is accounted for: queued, recorded as skipped (an invalid
        # event of a batch too), or a duplicate.
        assert sum(response.json().values()) == event_count(body)


@settings(FUZZ, max_examples=600)
@given(
    prefix=st.binary(max_size=40),
    body=well_formed,
    cut=st.integers(min_value=0, max_value=400),
    suffix=st.binary(max_size=40),
)
def test_corrupted_bytes_never_cause_a_5xx(acme, post_signed, prefix, body, cut, suffix):
    raw = json.dumps(body).encode()
    post_signed(prefix + raw[:cut] + suffix + raw[cut:])


def test_still_serving_after_fuzzing(acme, post_signed):
    """Hostile requests first, in this test (whatever ran before), then a good one."""

    @settings(FUZZ, max_examples=200)
    @given(body=hostile, how=st.sampled_from(["ascii", "utf-8"]))
    def fuzz(body, how):
        post_signed(encode(body, how))

    fuzz()

    response = post_signed(json.dumps(identify(traits={"email": "a@b.c"})).encode())
    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}


# --- schemathesis, from the published OpenAPI schema ---------------------------


@pytest.fixture
def wsgi_app(settings: Any, acme: Destination) -> Iterator[WSGIHandler]:
    """The real WSGI application, sharing the test's database transaction."""
    settings.ALLOWED_HOSTS = ["localhost"]  # where schemathesis' WSGI transport sends
    # As Django's test client does: a request must not close the test's connection.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def api_schema(wsgi_app: WSGIHandler) -> Any:
    return schemathesis.openapi.from_wsgi("/api/schema/?format=json", wsgi_app)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(FUZZ, max_examples=300)
def test_schema_generated_requests_never_cause_a_5xx(case):
    if "slug" in (case.path_parameters or {}):
        case.path_parameters = {**case.path_parameters, "slug": "acme"}
    case.headers = {
        **{k: v for k, v in (case.headers or {}).items() if k.lower() != "x-signature"},
        "Authorization": f"Bearer {SECRET}",
    }
    with transaction.atomic():
        case.call_and_validate(
            checks=[not_a_server_error, status_code_conformance, response_schema_conformance]
        )
        transaction.set_rollback(True)
