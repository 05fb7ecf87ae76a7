import base64
import json
import random
from datetime import UTC, datetime, timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from destinations.models import EventMapping, InboundEvent, ProfileState
from destinations.services import ingest as ingest_service
from integration_site.celery import app
from tests.conftest import SECRET, identify, sign

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status


@pytest.fixture
def destination(make_destination):
    return make_destination()


def nudged() -> list[int]:
    """Destinations the real nudge queued a flush for, taken out of the run's queue."""
    found = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while message := channel.basic_get(settings.CELERY_TASK_DEFAULT_QUEUE, no_ack=True):
            assert message.headers["task"] == "destinations.tasks.flush_destination"
            found.append(message.decode()[0][0])
    return found


def test_signed_identify_is_stored_mapped_and_queued(destination, post_events):
    event = identify(traits={"email": "a@b.c", "plan": "gold", "address": {"city": "Berlin"}})

    with_commit = post_events("acme", event)

    assert with_commit.status_code == 200
    assert with_commit.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    row = InboundEvent.objects.get()
    assert row.status == Status.PENDING
    assert row.user_id == "user-1"
    assert row.attributes == {"email": "a@b.c", "plan": "gold", "address_city": "Berlin"}
    assert row.payload == event


def test_queued_event_nudges_the_flush_after_commit(
    destination, post_events, broker_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        post_events("acme", identify())
    assert nudged() == []  # nothing before the commit

    for callback in callbacks:
        callback()

    assert nudged() == [destination.pk]


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"X-Signature": "0" * 40},
        {"X-Signature": sign(b"another body")},
        {"Authorization": "Bearer wrong"},
        {"Authorization": "Basic " + base64.b64encode(b"wrong:").decode()},
        {"Authorization": "Basic !!!not-base64"},
    ],
    ids=["missing", "zeros", "other-body", "bearer-wrong", "basic-wrong", "basic-garbage"],
)
def test_missing_or_wrong_signature_is_401_and_stores_nothing(destination, post_events, headers):
    response = post_events("acme", identify(), secret=None, headers=headers)

    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    assert not InboundEvent.objects.exists()


@pytest.mark.parametrize("shape", [str.upper, str.lower, lambda s: f" {s}\t"])
def test_signature_is_read_whatever_its_case_and_surrounding_space(destination, post_events, shape):
    body = json.dumps(identify()).encode()

    response = post_events("acme", body, headers={"X-Signature": shape(sign(body))})

    assert response.status_code == 200


def test_signature_by_another_secret_is_401(destination, post_events):
    assert post_events("acme", identify(), secret="not-the-secret").status_code == 401


@pytest.mark.parametrize(
    "authorization",
    ["Bearer " + SECRET, "Basic " + base64.b64encode(f"{SECRET}:".encode()).decode()],
    ids=["bearer", "basic"],
)
def test_secret_in_authorization_header_is_accepted(destination, post_events, authorization):
    response = post_events(
        "acme", identify(), secret=None, headers={"Authorization": authorization}
    )
    assert response.status_code == 200


def test_destination_without_secret_refuses_events(make_destination, post_events):
    make_destination(slug="open", shared_secret="")
    assert post_events("open", identify(), secret="").status_code == 401


def test_unknown_and_disabled_slugs_answer_as_a_wrong_signature_does(make_destination, post_events):
    make_destination(slug="off", enabled=False)
    make_destination(slug="acme")
    wrong = post_events("acme", identify(), secret="wrong")

    unknown = post_events("nope", identify())
    disabled = post_events("off", identify())

    assert wrong.status_code == unknown.status_code == disabled.status_code == 401
    assert wrong.json() == unknown.json() == disabled.json()


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid UTF-8"),
        (b'{"type": "identify", "userId": "u", "traits": {"x": NaN}}', "NaN"),
        (b"42", "must be a Segment event object"),
        (b'"identify"', "must be a Segment event object"),
        (b"[]", "no events"),
        (b'{"batch": {}}', '"batch" must be an array'),
        (b'{"userId": "u"}', 'has no "type"'),
        (b'{"type": "identify", "userId": 4.2}', '"userId" must be a string or an integer'),
        (b'{"type": "identify", "messageId": ["x"]}', '"messageId" must be a string'),
        (b'{"type": "identify", "userId": "u", "traits": []}', '"traits" must be an object'),
        (b'{"type": "identify", "userId": "u", "timestamp": "yesterday"}', "ISO 8601"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"type": "identify", "n": ' + b"9" * 5000 + b"}", "not valid JSON"),
    ],
    ids=[
        "malformed",
        "utf8",
        "nan",
        "number",
        "string",
        "empty-array",
        "batch-object",
        "no-type",
        "userid-fraction",
        "messageid-list",
        "traits-list",
        "bad-timestamp",
        "deep",
        "huge-int",
    ],
)
def test_bad_body_is_400_with_a_message_that_says_why(destination, post_events, raw, message):
    response = post_events("acme", raw)

    assert response.status_code == 400
    assert message in response.json()["detail"]
    assert not InboundEvent.objects.exists()


def test_request_over_5_mb_is_413(destination, post_events):
    events = [identify(message_id=f"m-{i}", traits={"email": "x" * 30_000}) for i in range(180)]
    raw = json.dumps(events).encode()
    assert len(raw) > 5 * 1024 * 1024

    response = post_events("acme", raw)

    assert response.status_code == 413
    assert "larger than 5242880 bytes" in response.json()["detail"]


def test_single_event_over_32_kb_is_413(destination, post_events):
    response = post_events("acme", identify(traits={"email": "x" * (33 * 1024)}))
    assert response.status_code == 413
    assert "The event is larger than 32768 bytes" in response.json()["detail"]
    assert not InboundEvent.objects.exists()


def sized(size: int) -> dict:
    """An identify whose compact UTF-8 JSON is exactly `size` bytes."""
    event = identify(traits={"email": "é"})
    compact = len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())
    return identify(traits={"email": "é" + "x" * (size - compact)})


def test_the_32_kb_event_limit_counts_compact_json_bytes(destination, post_events):
    # Indented and escaped as sent, but measured as compact UTF-8: exactly the limit passes.
    at_the_limit = json.dumps(sized(32768), indent=4).encode()
    over = json.dumps(sized(32769), indent=4).encode()

    assert post_events("acme", at_the_limit).status_code == 200
    response = post_events("acme", over)
    assert response.status_code == 413
    assert response.json() == {"detail": "The event is larger than 32768 bytes."}


def with_floats(value: float, size: int) -> dict:
    """An identify of floats whose compact JSON (as json.dumps writes it) is size bytes."""
    event = identify(traits={"pad": "", "x": []})
    event["traits"]["x"] = [value] * ((size - compact_size(event)) // 6 - 1)
    event["traits"]["pad"] = "x" * (size - compact_size(event))
    assert compact_size(event) == size
    return event


def compact_size(event: dict) -> int:
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())


def test_the_event_limit_counts_floats_as_json_writes_them(destination, post_events):
    # json writes 1e-09 where faster serializers write 1e-9, and 1e-05 where they
    # write 0.00001: json's count decides, either way.
    for value in (1e-09, 1e-05):
        assert post_events("acme", with_floats(value, 32768)).status_code == 200
        assert post_events("acme", with_floats(value, 32769)).status_code == 413


def test_an_event_orjson_cannot_write_is_measured_by_json():
    # The parser refuses integers this large first: this guard only keeps a
    # refusal by orjson from becoming a 500.
    event = {"x": 2**64}
    size = compact_size(event)

    assert ingest_service._larger_than(event, size) is False
    assert ingest_service._larger_than(event, size - 1) is True


@pytest.mark.parametrize("body", [42, "identify", None, True])
def test_a_body_that_is_not_an_event_says_what_is_accepted(destination, post_events, body):
    response = post_events("acme", json.dumps(body).encode())

    assert response.status_code == 400
    assert response.json() == {
        "detail": "The body must be a Segment event object, an array of events, "
        'or {"batch": [...]}.'
    }


def test_a_batch_item_that_is_not_an_object_is_skipped_saying_so(destination, post_events):
    post_events("acme", [identify(), 42])

    assert InboundEvent.objects.get(type="invalid").reason == "The event is not a JSON object."


# --- One bad event does not cost its batch (Segment never retries a 4xx) ------

CONTENT_ID = "sha256:"
BAD_BATCH_EVENTS = {
    "not-an-object": (1, "The event is not a JSON object", "invalid", CONTENT_ID),
    "null": (None, "The event is not a JSON object", "invalid", CONTENT_ID),
    "no-type": ({"userId": "u", "messageId": "bad"}, '"type" is required', "invalid", "bad"),
    "type-number": (
        identify(message_id="bad", type=7),
        '"type" must be a string',
        "invalid",
        "bad",
    ),
    "type-too-long": (
        identify(message_id="bad", type="x" * 21),
        '"type" is longer than 20 characters',
        "invalid",
        "bad",
    ),
    "userid-boolean": (
        identify(message_id="bad", userId=True),
        '"userId" must be a string or an integer, not a boolean',
        "identify",
        "bad",
    ),
    "messageid-list": (
        identify(messageId=["x"]),
        '"messageId" must be a string',
        "identify",
        CONTENT_ID,
    ),
    "messageid-too-long": (
        identify(messageId="m" * 201),
        '"messageId" is longer than 200 characters',
        "identify",
        CONTENT_ID,
    ),
    "bad-timestamp": (
        identify(message_id="bad", timestamp="yesterday"),
        "ISO 8601",
        "identify",
        "bad",
    ),
    "traits-list": (
        identify(message_id="bad", traits=[]),
        '"traits" must be an object',
        "identify",
        "bad",
    ),
    "over-32-kb": (
        identify(message_id="bad", traits={"email": "x" * (33 * 1024)}),
        "The event is larger than 32768 bytes",
        "identify",
        "bad",
    ),
}


@pytest.mark.parametrize(
    ("bad", "reason", "stored_type", "stored_id"),
    BAD_BATCH_EVENTS.values(),
    ids=BAD_BATCH_EVENTS.keys(),
)
@pytest.mark.parametrize(
    "wrap", [lambda events: events, lambda events: {"batch": events}], ids=["array", "batch"]
)
def test_invalid_event_in_a_batch_is_skipped_with_the_reason_and_the_rest_is_stored(
    destination, post_events, wrap, bad, reason, stored_type, stored_id
):
    response = post_events("acme", wrap([identify(message_id="good"), bad]))

    assert response.status_code == 200, response.content
    assert response.json() == {"accepted": 1, "skipped": 1, "duplicates": 0}
    assert InboundEvent.objects.get(message_id="good").status == Status.PENDING
    row = InboundEvent.objects.exclude(message_id="good").get()
    assert row.status == Status.SKIPPED
    assert reason in row.reason
    assert row.payload == bad
    assert row.type == stored_type
    assert row.message_id.startswith(stored_id)
    assert not row.attributes


def test_invalid_event_keeps_its_usable_user_id_and_timestamp(destination, post_events):
    bad = identify(message_id="bad", traits="gold", timestamp="2026-02-01T00:00:00Z")

    post_events("acme", [identify(), bad])

    row = InboundEvent.objects.get(message_id="bad")
    assert row.user_id == "user-1"
    assert row.timestamp.isoformat() == "2026-02-01T00:00:00+00:00"


def test_invalid_events_of_a_batch_sent_again_are_duplicates(destination, post_events):
    batch = [identify(), 1, identify(message_id="bad", userId=5.5)]
    assert post_events("acme", batch).json() == {"accepted": 1, "skipped": 2, "duplicates": 0}

    again = post_events("acme", batch)

    assert again.json() == {"accepted": 0, "skipped": 0, "duplicates": 3}
    assert InboundEvent.objects.count() == 3


def test_batch_of_only_invalid_events_is_recorded_and_nudges_nothing(
    destination, post_events, broker_queue, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post_events("acme", [1, "two"])

    assert response.json() == {"accepted": 0, "skipped": 2, "duplicates": 0}
    assert nudged() == []


# --- userId: as long as the columns and their indexes can hold ----------------


def random_text(count: int, first: str, last: str) -> str:
    """Characters at random: PostgreSQL compresses a repetitive index entry below its
    size limit, real user ids it may not."""
    rng = random.Random(count)
    return "".join(chr(rng.randint(ord(first), ord(last))) for _ in range(count))


CJK = ("\u4e00", "\u9fff")  # three bytes each in UTF-8
CYRILLIC = ("\u0400", "\u04ff")  # two bytes each


def test_user_id_over_2000_utf8_bytes_is_400(destination, post_events):
    # 1,000 characters, 3,000 bytes: more than a PostgreSQL index entry holds.
    response = post_events("acme", identify(user_id=random_text(1000, *CJK)))

    assert response.status_code == 400
    assert '"userId" is longer than 2000 bytes' in response.json()["detail"]
    assert not InboundEvent.objects.exists()


def test_user_id_over_2000_utf8_bytes_in_a_batch_is_skipped(destination, post_events):
    long_id = identify(message_id="long", user_id=random_text(1000, *CJK))

    response = post_events("acme", [identify(), long_id])

    assert response.json() == {"accepted": 1, "skipped": 1, "duplicates": 0}
    row = InboundEvent.objects.get(message_id="long")
    assert row.user_id == ""
    assert '"userId" is longer than 2000 bytes' in row.reason


@pytest.mark.parametrize(
    "user_id",
    [random_text(1000, *CYRILLIC), random_text(666, *CJK), "u" * 1000],
    ids=["2000-bytes", "cjk-1998-bytes", "1000-ascii"],
)
def test_longest_user_ids_are_stored_indexed_and_can_be_delivered(
    destination, post_events, user_id
):
    response = post_events("acme", identify(user_id=user_id))

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert InboundEvent.objects.get().user_id == user_id
    # The delivery's per-profile state is unique per (destination, integrationId).
    ProfileState.objects.create(destination=destination, integration_id=user_id)


def test_user_id_over_1000_characters_is_400(destination, post_events):
    response = post_events("acme", identify(user_id="u" * 1001))
    assert response.status_code == 400
    assert '"userId" is longer than 1000 characters' in response.json()["detail"]


def test_duplicate_message_id_is_acknowledged_and_not_queued_again(destination, post_events):
    assert post_events("acme", identify()).json()["accepted"] == 1

    again = post_events("acme", identify())

    assert again.status_code == 200
    assert again.json() == {"accepted": 0, "skipped": 0, "duplicates": 1}
    assert InboundEvent.objects.count() == 1


def test_message_id_stored_by_a_concurrent_request_counts_as_a_duplicate(
    destination, post_events, monkeypatch, broker_queue, django_capture_on_commit_callbacks
):
    """Another request stores the same messageId after this one began: the row is
    the other request's, so this one neither counts it as accepted nor nudges."""
    real_insert = ingest_service._insert

    def competitor_first(*args):
        InboundEvent.objects.create(
            destination=destination,
            message_id="m-1",
            type="identify",
            user_id="user-1",
            payload=identify(),
            timestamp=timezone.now(),
            status=Status.PENDING,
        )
        return real_insert(*args)

    monkeypatch.setattr(ingest_service, "_insert", competitor_first)
    with django_capture_on_commit_callbacks(execute=True):
        response = post_events("acme", [identify(), identify(message_id="m-2")])

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}
    assert InboundEvent.objects.count() == 2
    assert nudged() == [destination.pk]


def test_rows_of_one_request_share_its_request_id(destination, post_events):
    post_events("acme", [identify(message_id="a"), identify(message_id="b", type="track")])
    post_events("acme", identify(message_id="c"))

    ids = dict(InboundEvent.objects.values_list("message_id", "request_id"))
    assert ids["a"] == ids["b"]
    assert ids["c"] is not None
    assert ids["c"] != ids["a"]


def test_same_message_id_for_two_destinations_is_two_events(make_destination, post_events):
    make_destination("one")
    make_destination("two")
    post_events("one", identify())
    post_events("two", identify())
    assert InboundEvent.objects.count() == 2


def test_duplicates_within_one_batch_count_once(destination, post_events):
    response = post_events("acme", [identify(), identify()])
    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}


def test_event_without_message_id_dedupes_on_content(destination, post_events):
    event = identify()
    del event["messageId"]
    post_events("acme", event)
    assert post_events("acme", event).json()["duplicates"] == 1


def test_content_dedupe_ignores_the_order_of_keys(destination, post_events):
    event = identify(traits={"email": "a@b.c", "plan": "gold"})
    del event["messageId"]
    reordered = dict(reversed(event.items()))
    reordered["traits"] = dict(reversed(event["traits"].items()))
    assert json.dumps(reordered) != json.dumps(event)

    post_events("acme", event)

    assert post_events("acme", reordered).json() == {"accepted": 0, "skipped": 0, "duplicates": 1}


def test_content_dedupe_tells_different_events_apart(destination, post_events):
    event = identify()
    del event["messageId"]
    post_events("acme", event)

    other = {**event, "traits": {"email": "other@b.c"}}

    assert post_events("acme", other).json()["accepted"] == 1


def test_anonymous_identify_is_recorded_as_skipped(destination, post_events):
    event = identify(user_id=None, anonymousId="anon-1")

    response = post_events("acme", event)

    assert response.json() == {"accepted": 0, "skipped": 1, "duplicates": 0}
    row = InboundEvent.objects.get()
    assert row.status == Status.SKIPPED
    assert "only logged-in users are supported" in row.reason


@pytest.mark.parametrize("event_type", ["page", "screen", "group", "alias"])
def test_other_event_types_are_recorded_as_skipped(destination, post_events, event_type):
    response = post_events("acme", identify(type=event_type))

    assert response.json()["skipped"] == 1
    row = InboundEvent.objects.get()
    assert row.status == Status.SKIPPED
    assert row.type == event_type
    assert f"{event_type} events are not delivered" in row.reason


@pytest.mark.parametrize("name", [["Order Completed"], 7, None])
def test_a_track_event_named_by_anything_but_text_is_not_listed(destination, post_events, name):
    EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order"
    )
    event = {"type": "track", "userId": "u1", "messageId": "t1", "event": name}

    assert post_events("acme", event).json() == {"accepted": 0, "skipped": 1, "duplicates": 0}
    assert InboundEvent.objects.get().reason == (
        f"track event {name!r} is not listed for Talon.One; not sent"
    )


def test_queued_identify_keeps_the_reason_of_each_trait_left_out(destination, post_events):
    post_events("acme", identify(traits={"email": "a@b.c", "favouriteColour": "green"}))

    row = InboundEvent.objects.get()
    assert row.status == Status.PENDING
    assert row.attributes == {"email": "a@b.c"}
    assert row.notes == [{"attribute": "favouriteColour", "reason": "not listed; not sent"}]


def test_identify_with_nothing_to_send_is_skipped_with_the_reason(destination, post_events):
    post_events("acme", identify(traits={"favouriteColour": "green"}))

    row = InboundEvent.objects.get()
    assert row.status == Status.SKIPPED
    assert "nothing sent" in row.reason
    assert row.notes == [{"attribute": "favouriteColour", "reason": "not listed; not sent"}]


@pytest.mark.parametrize(
    "wrap", [lambda events: events, lambda events: {"batch": events}], ids=["array", "batch"]
)
def test_batches_are_accepted(destination, post_events, wrap):
    events = [identify(message_id="a"), identify(message_id="b", type="track")]

    response = post_events("acme", wrap(events))

    assert response.json() == {"accepted": 1, "skipped": 1, "duplicates": 0}


def test_naive_timestamp_is_taken_as_utc_and_missing_one_as_now(destination, post_events):
    post_events(
        "acme",
        [
            identify(message_id="a", timestamp="2026-03-01T10:00:00"),
            {k: v for k, v in identify(message_id="b").items() if k != "timestamp"},
        ],
    )
    first, second = InboundEvent.objects.order_by("message_id")
    assert first.timestamp.isoformat() == "2026-03-01T10:00:00+00:00"
    assert (
        second.timestamp == second.received_at
        or abs((second.timestamp - second.received_at).total_seconds()) < 5
    )


def test_ingest_schema_is_published(client):
    response = client.get("/api/schema/?format=json")

    assert response.status_code == 200
    operation = json.loads(response.content)["paths"]["/api/v1/segment/{slug}/"]["post"]
    assert set(operation["responses"]) == {"200", "400", "401", "413"}
    assert operation["requestBody"]["required"] is True


def test_engage_traits_pass_through_unless_the_destination_turns_it_off(
    make_destination, post_events
):
    make_destination("on")
    make_destination("off", forward_engage=False)
    audience = identify(
        traits={"email": "a@b.c", "vip_shoppers": False},
        context={"personas": {"computation_class": "audience", "computation_key": "vip_shoppers"}},
    )

    post_events("on", audience)
    post_events("off", audience)

    on, off = (InboundEvent.objects.get(destination__slug=slug) for slug in ("on", "off"))
    assert on.attributes == {"email": "a@b.c", "vip_shoppers": False}
    assert off.attributes == {"email": "a@b.c"}


# --- Timestamps ahead of our clock ---------------------------------------------


def test_far_future_timestamp_is_taken_as_the_time_received(destination, post_events):
    post_events("acme", identify(timestamp="2999-01-01T00:00:00Z"))

    row = InboundEvent.objects.get()
    assert abs((row.timestamp - row.received_at).total_seconds()) < 5
    assert row.payload["timestamp"] == "2999-01-01T00:00:00Z"
    assert {"attribute": "timestamp", "reason": "in the future; taken as the time received"} in (
        row.notes
    )


def test_timestamp_within_five_minutes_ahead_is_kept(destination, post_events):
    ahead = (timezone.now() + timedelta(minutes=4)).replace(microsecond=0)

    post_events("acme", identify(timestamp=ahead.isoformat()))

    row = InboundEvent.objects.get()
    assert row.timestamp == ahead
    assert row.notes == []


def test_the_five_minutes_ahead_are_counted_to_the_microsecond(destination, monkeypatch):
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    monkeypatch.setattr(timezone, "now", lambda: now)
    at_the_limit = identify(message_id="limit", timestamp="2026-03-01T12:05:00Z")
    beyond = identify(message_id="beyond", timestamp="2026-03-01T12:05:00.000001Z")

    rows = {row.message_id: row for row in ingest_service.plan(destination, [at_the_limit, beyond])}

    assert (rows["limit"].timestamp, rows["limit"].notes) == (now + timedelta(minutes=5), [])
    assert (rows["beyond"].timestamp, rows["beyond"].notes) == (now, [ingest_service.FUTURE_NOTE])
