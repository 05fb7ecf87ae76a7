"""Reading Talon.One's attribute catalog (services/catalog.py) against the
sandbox over real HTTP: every page, within about 3 requests/s, the set replaced
in one go, and each failure recorded in plain words without the key."""

import logging
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from http.server import BaseHTTPRequestHandler
from itertools import pairwise

import pytest
from django.conf import settings
from django.utils import timezone

from destinations import tasks
from destinations.models import Destination, InboundEvent, TalonAttribute
from destinations.selectors.catalog import recent_identifies
from destinations.services import catalog
from destinations.talon_one import MANAGEMENT_REQUEST_INTERVAL_SECONDS
from talon_sandbox.server import DEFAULT_MANAGEMENT_KEYS
from tests.local_server import local_server, send_json

pytestmark = pytest.mark.django_db

KEY = DEFAULT_MANAGEMENT_KEYS[0]
WRONG_KEY = "mk-wrong-management-key-9d1f"
TEN = {f"attribute{i}": "number" if i % 2 else "string" for i in range(10)}


def reads(sandbox) -> list[dict]:
    return [entry for entry in sandbox.requests_log() if entry["path"] == "/v1/attributes"]


def at(entry: dict) -> float:
    return datetime.fromisoformat(entry["at"].replace("Z", "+00:00")).timestamp()


def test_every_page_is_read_within_three_requests_a_second(make_destination, sandbox):
    sandbox.set_attributes(TEN)
    shop = make_destination(management_api_key=KEY)
    started = time.monotonic()

    assert catalog.refresh(shop, page_size=3) == ""

    elapsed = time.monotonic() - started
    answered = [entry for entry in reads(sandbox) if entry["status"] == 200]
    assert [entry["query"] for entry in answered] == [
        {"entity": "CustomerProfile", "pageSize": "3", "skip": str(skip)} for skip in (0, 3, 6, 9)
    ]
    gaps = [at(b) - at(a) for a, b in pairwise(answered)]
    assert min(gaps) >= MANAGEMENT_REQUEST_INTERVAL_SECONDS - 0.01  # ms timestamps
    assert elapsed < 2.5 + (1 if len(reads(sandbox)) > 4 else 0)  # a 429 waits 1 s once
    stored = dict(TalonAttribute.objects.filter(destination=shop).values_list("name", "type"))
    assert stored == TEN
    shop.refresh_from_db()
    assert shop.catalog_fetched_at is not None
    assert shop.catalog_error == ""
    assert TalonAttribute.objects.get(destination=shop, name="attribute3").title == "attribute3"


def test_the_set_is_replaced_and_other_destinations_keep_theirs(make_destination, sandbox):
    sandbox.set_attributes({"email": "string", "age": "number"})
    shop = make_destination(management_api_key=KEY)
    other = make_destination(slug="other")
    TalonAttribute.objects.create(destination=shop, name="gone", type="string")
    TalonAttribute.objects.create(destination=shop, name="age", type="string")
    TalonAttribute.objects.create(destination=other, name="kept", type="string")

    assert catalog.refresh(shop) == ""

    assert set(shop.talon_attributes.values_list("name", "type")) == {
        ("email", "string"),
        ("age", "number"),
    }
    assert list(other.talon_attributes.values_list("name", flat=True)) == ["kept"]


def test_a_wrong_key_is_recorded_in_plain_words_and_the_last_read_is_kept(
    make_destination, sandbox, caplog
):
    shop = make_destination(management_api_key=KEY)
    assert catalog.refresh(shop) == ""
    read_at = Destination.objects.get(pk=shop.pk).catalog_fetched_at
    shop.management_api_key = WRONG_KEY
    shop.save()
    caplog.set_level(logging.DEBUG)

    error = catalog.refresh(shop)

    assert error.startswith(
        "Talon.One refused the Management API key (it answered 401: missing or invalid "
        "Management API key"
    )
    shop.refresh_from_db()
    assert shop.catalog_error == error
    assert shop.catalog_fetched_at == read_at
    assert shop.talon_attributes.count() == len(sandbox.attributes())
    assert WRONG_KEY not in caplog.text
    assert error in caplog.text


def test_an_integration_key_is_not_a_management_key(make_destination, sandbox):
    shop = make_destination()
    shop.management_api_key = shop.api_key
    shop.save()

    assert catalog.refresh(shop).startswith(
        "Talon.One refused the Management API key (it answered 401"
    )


def test_without_a_key_nothing_is_asked(make_destination, sandbox):
    shop = make_destination()

    assert catalog.refresh(shop) == catalog.NO_KEY
    assert reads(sandbox) == []
    assert Destination.objects.get(pk=shop.pk).catalog_error == catalog.NO_KEY


def test_an_unreachable_talon_one(make_destination, sandbox):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    shop = make_destination(management_api_key=KEY, base_url=f"http://127.0.0.1:{port}")

    assert catalog.refresh(shop) == "Could not connect to Talon.One"


def test_too_many_pages_are_not_read(make_destination, sandbox, monkeypatch):
    sandbox.set_attributes({"a": "string", "b": "string", "c": "string"})
    monkeypatch.setattr("destinations.talon_one.MANAGEMENT_MAX_PAGES", 2)
    shop = make_destination(management_api_key=KEY)

    error = catalog.refresh(shop, page_size=1)

    assert error == "Talon.One's catalog has more than 2 attributes; not read."
    assert shop.talon_attributes.count() == 0


def test_the_daily_task_reads_every_enabled_destination_with_a_key(make_destination, sandbox):
    sandbox.set_attributes({"plan": "string"})
    shop = make_destination(management_api_key=KEY)
    off = make_destination(slug="off", management_api_key=KEY, enabled=False)
    keyless = make_destination(slug="keyless")

    tasks.refresh_attribute_catalogs()

    assert list(shop.talon_attributes.values_list("name", flat=True)) == ["plan"]
    assert not off.talon_attributes.exists()
    assert not keyless.talon_attributes.exists()
    assert len([e for e in reads(sandbox) if e["status"] == 200]) == 1
    schedule = settings.CELERY_BEAT_SCHEDULE["refresh-attribute-catalogs"]
    assert schedule["task"] == "destinations.tasks.refresh_attribute_catalogs"
    assert schedule["schedule"].total_seconds() == 24 * 3600


# Answers Talon.One's sandbox does not give.


@contextmanager
def talon_answering(
    answers: list[tuple[int, dict[str, str], object]],
) -> Iterator[tuple[str, list[str]]]:
    """A server answering each GET with the next (status, headers, body)."""
    seen: list[str] = []

    def handle(request: BaseHTTPRequestHandler, body: bytes) -> None:
        seen.append(request.headers["Authorization"])
        send_json(request, *answers.pop(0))

    with local_server(handle) as (url, _paths):
        yield url, seen


PAGE = {
    "totalResultSize": 1,
    "data": [{"id": 7, "name": "plan", "type": "string", "title": "Plan", "entity": "X"}],
}


def read_from(
    make_destination: Callable[..., Destination], url: str, key: str = KEY
) -> tuple[Destination, str]:
    shop = make_destination(slug=f"s{Destination.objects.count()}", base_url=url)
    shop.management_api_key = key
    shop.save()
    return shop, catalog.refresh(shop)


def test_a_busy_talon_one_is_asked_again_after_its_retry_after(make_destination):
    answers = [(429, {"Retry-After": "0.2"}, {"message": "slow down"}), (200, {}, PAGE)]
    with talon_answering(answers) as (url, seen):
        shop, error = read_from(make_destination, url)

    assert error == ""
    assert seen == [f"ManagementKey-v1 {KEY}"] * 2
    row = shop.talon_attributes.get()
    assert (row.name, row.type, row.title, row.talon_id) == ("plan", "string", "Plan", 7)


def test_an_answer_echoing_the_key_is_redacted(make_destination):
    answers = [(500, {}, {"message": f"bad key {KEY}"})] * 3
    with talon_answering(answers) as (url, _):
        _, error = read_from(make_destination, url)

    assert error == (
        "Talon.One did not give its attribute catalog (it answered 500: bad key [redacted])."
    )


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            (403, {}, {"message": "forbidden for this key"}),
            "Talon.One refused the Management API key (it answered 403: forbidden for this key).",
        ),
        ((404, {}, None), "Talon.One did not give its attribute catalog (it answered 404)."),
    ],
)
def test_a_refusal_says_whether_the_key_was_refused_and_quotes_any_message(
    make_destination, answer, error
):
    with talon_answering([answer]) as (url, seen):
        _, recorded = read_from(make_destination, url)

    assert recorded == error
    assert len(seen) == 1  # neither is asked again


@pytest.mark.parametrize(
    "body",
    [
        {"data": "x", "totalResultSize": 1},
        {"data": []},
        [],
        {"data": [{"name": "plan"}], "totalResultSize": 1},
        {"data": [{"name": 1, "type": "string"}], "totalResultSize": 1},
    ],
)
def test_an_answer_that_is_no_attribute_list(make_destination, body):
    with talon_answering([(200, {}, body)]) as (url, _):
        _, error = read_from(make_destination, url)

    assert error.startswith("Talon.One's answer ")


def test_a_key_that_cannot_be_sent(make_destination):
    with talon_answering([]) as (url, seen):
        _, error = read_from(make_destination, url, key="key with spaces")

    assert error.startswith("The Management API key cannot be sent")
    assert seen == []


def test_odd_attributes_are_kept_within_the_columns(make_destination):
    page = {
        "totalResultSize": 3,
        "data": [
            {"name": "plan", "type": "string", "id": -1},
            {"name": "plan", "type": "number"},
            {"name": "x" * 300, "type": "string"},
            {"name": "y", "type": "(list something very long)"},
        ],
    }
    with talon_answering([(200, {}, page)]) as (url, _):
        shop, error = read_from(make_destination, url)

    assert error == ""
    assert list(shop.talon_attributes.values_list("name", "type", "title", "talon_id")) == [
        ("plan", "string", "", None)
    ]


def test_any_non_negative_talon_one_id_is_kept(make_destination):
    page = {
        "totalResultSize": 2,
        "data": [
            {"name": "zero", "type": "string", "id": 0},
            {"name": "one", "type": "string", "id": 1},
        ],
    }
    with talon_answering([(200, {}, page)]) as (url, _):
        shop, error = read_from(make_destination, url)

    assert error == ""
    assert dict(shop.talon_attributes.values_list("name", "talon_id")) == {"zero": 0, "one": 1}


# The identify calls the traits seen are read from.


def stored(destination: Destination, type_: str, payload: dict) -> None:
    InboundEvent.objects.create(
        destination=destination,
        message_id=f"m-{InboundEvent.objects.count()}",
        type=type_,
        payload=payload,
        timestamp=timezone.now(),
        status=InboundEvent.Status.DELIVERED,
    )


def test_traits_are_read_from_the_newest_identify_calls_among_the_newest_events(
    make_destination, monkeypatch, django_assert_num_queries
):
    monkeypatch.setattr("destinations.selectors.catalog.RECENT_EVENTS", 4)
    monkeypatch.setattr("destinations.selectors.catalog.RECENT_IDENTIFIES", 2)
    shop = make_destination()
    other = make_destination(slug="other")
    stored(shop, "identify", {"traits": {"too_old": 1}})
    stored(shop, "identify", {"traits": {"a": 1}})
    stored(shop, "track", {"properties": {"p": 1}})
    personas = {"computation_key": "vip", "computation_class": "audience"}
    stored(shop, "identify", {"traits": {"vip": True}, "context": {"personas": personas}})
    stored(other, "identify", {"traits": {"elsewhere": 1}})
    stored(shop, "identify", {"traits": "not an object"})

    with django_assert_num_queries(1):
        read = recent_identifies(shop)

    assert read == [
        {"traits": "not an object", "context": {"personas": None}},
        {"traits": {"vip": True}, "context": {"personas": personas}},
    ]
    monkeypatch.setattr("destinations.selectors.catalog.RECENT_IDENTIFIES", 10)
    assert [event["traits"] for event in recent_identifies(shop)][2:] == [{"a": 1}]
