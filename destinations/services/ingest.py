"""Ingest: authenticate a Segment request, validate its events, store them.

The request path does only this; everything slow happens in workers. Events
are stored, mapped and queued in one transaction, and the flush is nudged
after commit, so a worker never looks for an event that is not there yet.

A request that is not JSON, too large, or holds values no database stores is
refused (4xx), as is a single event that is invalid. In a batch, an invalid
event is stored as skipped with the reason and the others go on: Segment
never retries a 4xx, so refusing the batch would lose every event in it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
import uuid
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import JSONField, Value
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_variables

from destinations.models import Destination, InboundEvent, SeenMessage
from destinations.services import ingest_cache, nudge, secrets
from destinations.services.ingest_cache import IngestConfig
from destinations.services.mapping import (
    NOTHING_TO_SEND,
    audience_change,
    map_identify,
    map_track,
)

# The columns' sizes: longer values would fail in PostgreSQL, not with a 400.
TYPE_MAX = InboundEvent._meta.get_field("type").max_length
MESSAGE_ID_MAX = InboundEvent._meta.get_field("message_id").max_length
USER_ID_MAX = InboundEvent._meta.get_field("user_id").max_length
# userId is a key of two btree indexes (event_profile; ProfileState's unique
# integrationId), whose entries PostgreSQL caps at 2,704 bytes: 1,000 CJK
# characters are 3,000 bytes, so bytes are limited too.
USER_ID_MAX_BYTES = 2000
# Segment's Actions webhooks send at most this many events per request.
MAX_EVENTS = 4000
# Segment's HTTP Tracking API takes at most this many events per batch.
TRACKING_API_MAX_EVENTS = 2500
# Far deeper than any Segment event; the mapping notes traits beyond its own 32 levels.
MAX_NESTING = 64
# JSON numbers that every store and client here handles (PostgreSQL's bigint, float64).
MAX_INTEGER = 2**63 - 1
# NUL and unpaired surrogates are valid JSON escapes but cannot be stored (or encoded).
_UNSTORABLE_RE = re.compile(r"[\x00\ud800-\udfff]")
_ESCAPE_RE = re.compile(r"\\u(?:0000|d[89a-f])", re.IGNORECASE)
_TOO_DEEP = f"The body is nested too deeply (over {MAX_NESTING} levels)."
ANONYMOUS_REASON = "only logged-in users are supported: the event has no userId"
# What becomes a Talon.One call: identify (profile update, audience membership),
# track (custom event, when listed), delete (customer data deletion).
DELIVERED_TYPES = ("identify", "track", "delete")
TRACK_NOT_LISTED = "track event {name!r} is not listed for Talon.One; not sent"
# The message id of an identify's second row, for its audience membership.
DERIVED_SUFFIX = "#audience"
# The type stored for an invalid event whose own type is unusable.
INVALID_TYPE = "invalid"
# Segment's clock may run a little ahead of ours. A timestamp further ahead would
# win every later update of its attributes (the newest timestamp wins), forever.
CLOCK_DRIFT = timedelta(minutes=5)
FUTURE_NOTE = {"attribute": "timestamp", "reason": "in the future; taken as the time received"}


class InvalidPayload(Exception):
    """The body is not something we accept; the message says what is wrong (400)."""


class PayloadTooLarge(Exception):
    """Over Segment's own limits (413)."""


class DestinationGone(Exception):
    """The destination was deleted while its events were being stored."""


@dataclass(frozen=True)
class InvalidEvent:
    """An event of a batch that fails validation: stored as skipped, with the reason."""

    payload: Any
    reason: str


Event = dict[str, Any] | InvalidEvent


@dataclass(frozen=True)
class _Text:
    """A string field the service reads, and what its column (and index) can hold."""

    max_length: int
    max_bytes: int | None = None
    required: bool = False


_TEXT_FIELDS = {
    "type": _Text(TYPE_MAX, required=True),
    "messageId": _Text(MESSAGE_ID_MAX),
    "userId": _Text(USER_ID_MAX, max_bytes=USER_ID_MAX_BYTES),
    "anonymousId": _Text(USER_ID_MAX),
    "timestamp": _Text(64),
}


@dataclass(frozen=True)
class Limits:
    """How much one request may carry: Segment's destinations send batches of up to
    4,000 events and 4 MB (the Tracking API's own limits are in api/tracking.py)."""

    max_request_bytes: int
    max_events: int

    @classmethod
    def webhooks(cls) -> Limits:
        return cls(settings.INGEST_MAX_REQUEST_BYTES, MAX_EVENTS)


_ID_FIELDS = ("userId", "anonymousId")


@dataclass(frozen=True)
class IngestSummary:
    accepted: int
    skipped: int
    duplicates: int
    skipped_reasons: dict[str, int] = field(default_factory=dict)


@sensitive_variables()
def authenticate(destination: Destination, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the request carries one of the destination's accepted secrets
    (the current one, and the previous one during a rotation).

    Any valid credential authenticates: the secret as Bearer token or Basic user
    name (header auth, what Webhooks (Actions) users configure), or X-Signature,
    the hex HMAC-SHA1 of the body. Webhooks (Actions) signs a batch over its
    first event only; that signature counts only where the destination opts in.
    Without any secret, only a destination marked accept_unsigned takes events.
    """
    accepted = [secret.encode() for secret in secrets.accepted_secrets(destination, timezone.now())]
    if not accepted:
        return destination.accept_unsigned
    if _authorization_matches(accepted, headers.get("Authorization", "")):
        return True
    signature = headers.get("X-Signature")
    if not signature:
        return False
    signed = [body]
    if destination.accept_first_event_signature and (first := first_element(body)) is not None:
        signed.append(first)
    # Compared as bytes: header values may hold any latin-1 character, which
    # compare_digest refuses in str.
    expected = [segment_signature(s, part).encode() for s in accepted for part in signed]
    return _matches(expected, signature.strip().lower().encode())


@sensitive_variables()
def _authorization_matches(accepted: list[bytes], authorization: str) -> bool:
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer":
        return _matches(accepted, credentials.strip().encode())
    if scheme.lower() == "basic":
        user = basic_user(credentials)
        return user is not None and _matches(accepted, user)
    return False


def basic_user(credentials: str) -> bytes | None:
    """The user name of HTTP Basic credentials (base64 of "user:password")."""
    try:
        decoded = base64.b64decode(credentials.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded.partition(b":")[0]


def first_element(body: bytes) -> bytes | None:
    """The exact bytes of the first element of a JSON array body, which is what
    Webhooks (Actions) signs (JSON.stringify(payload[0])); None for other bodies."""
    try:
        text = body.decode("utf-8")
        start = len(text) - len(text.lstrip())
        if not text.startswith("[", start):
            return None
        start = len(text) - len(text[start + 1 :].lstrip())
        _, end = _DECODER.raw_decode(text, start)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None
    return text[start:end].encode()


_DECODER = json.JSONDecoder()


def segment_signature(secret: bytes, body: bytes) -> str:
    """Segment's X-Signature: hex HMAC-SHA1 of the raw body, keyed by the shared secret."""
    return hmac.new(secret, body, hashlib.sha1).hexdigest()


def _matches(candidates: list[bytes], given: bytes) -> bool:
    # A loop, not any(<generator>): a failed generator's frame forgets its
    # caller, and with it authenticate's sensitive_variables in error reports.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, given)
    return matched


def parse_events(body: bytes, limits: Limits | None = None) -> list[Event]:
    """The events in a request body: one event, an array, or {"batch": [...]}.

    Raises for the request as a whole, and for a single event that is invalid;
    an invalid event of a batch comes back as an InvalidEvent.
    """
    limits = limits or Limits.webhooks()
    return events_from(load_json(body, limits.max_request_bytes), limits.max_events)


def load_json(body: bytes, max_bytes: int) -> Any:
    """The JSON of a request body, refused whole when it is too large or holds
    values that cannot be stored. The size limit bounds the memory parsing takes."""
    if len(body) > max_bytes:
        raise PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not body:
        raise InvalidPayload(
            "The body is empty: send the events as JSON, with a Content-Length header."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InvalidPayload(f"The body is not valid UTF-8 (bad byte at {exc.start}).") from None
    try:
        data = json.loads(
            text, parse_constant=_reject_constant, parse_int=_parse_int, parse_float=_parse_float
        )
    except _UnusableNumber as exc:
        raise InvalidPayload(str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"The body is not valid JSON: {_json_error(exc)}") from None
    # Valid JSON text holds NUL or a lone surrogate only as a \u escape: without
    # any, only the nesting is left to check, not every string.
    _check_values(data, check_text=_ESCAPE_RE.search(text) is not None)
    return data


def events_from(data: Any, max_events: int) -> list[Event]:
    """The events of parsed JSON: one event, an array, or {"batch": [...]}."""
    if isinstance(data, dict) and "batch" in data:
        data = data["batch"]
        if not isinstance(data, list):
            raise InvalidPayload('"batch" must be an array of events.')
    events = data if isinstance(data, list) else [data]
    if not events:
        raise InvalidPayload("The body holds no events.")
    if len(events) > max_events:
        raise PayloadTooLarge(f"The request holds more than {max_events} events.")
    if not isinstance(data, list):
        _validate_event(data, single=True)
        return [data]
    return [_checked(event) for event in events]


def ingest(destination: Destination, events: list[Event]) -> IngestSummary:
    now = timezone.now()
    rows = _rows(events, ingest_cache.config(destination), now)
    try:
        stored = dict(_insert(destination, rows, uuid.uuid4(), now))
    except IntegrityError:
        # Only the destination's foreign key can fail (messageIds are inserted ON
        # CONFLICT): it was deleted, in another process whose change this one's
        # cache has not seen yet.
        ingest_cache.clear()
        raise DestinationGone from None
    # Counted per Segment event: a membership's second row is not an event of its own.
    inserted = [row for row in rows if row.message_id in stored and not _derived_row(row)]
    accepted = sum(1 for row in inserted if row.status == InboundEvent.Status.PENDING)
    if accepted:
        # At once when the rows are committed (PostgreSQL's insert commits itself),
        # else when the caller's transaction commits.
        transaction.on_commit(lambda: nudge.nudge(destination.pk))
    skipped = Counter(row.reason for row in inserted if row.status == InboundEvent.Status.SKIPPED)
    return IngestSummary(
        accepted=accepted,
        skipped=len(inserted) - accepted,
        duplicates=len(events) - len(inserted),
        skipped_reasons=dict(skipped),
    )


def plan(destination: Destination, events: list[Event]) -> list[InboundEvent]:
    """The rows the events become (not stored), with the destination's mapping
    rows as stored now: each with its kind and what it sends, or skipped with
    the reason. One row per messageId."""
    now = timezone.now()
    request_id = uuid.uuid4()
    return [
        _model(row, destination, request_id, now)
        for row in _rows(events, ingest_cache.load_config(destination), now)
    ]


@dataclass(slots=True)
class _Row:
    """What a row holds that differs from event to event (the rest is the
    request's: its destination, id and time, which is also when a pending row
    was queued and is first due)."""

    message_id: str
    type: str
    user_id: str
    payload: Any
    timestamp: datetime
    notes: list[dict[str, str]]
    status: str = InboundEvent.Status.SKIPPED
    reason: str = ""
    kind: str = ""
    attributes: dict[str, Any] = field(default_factory=dict)
    call: dict[str, Any] = field(default_factory=dict)
    # A membership's second row: the message id of its Segment event, with which
    # it is deduplicated. Empty for every other row.
    seen_id: str = ""


def _derived_row(row: _Row | InboundEvent) -> bool:
    return row.message_id.endswith(DERIVED_SUFFIX)


def _rows(events: list[Event], config: IngestConfig, now: datetime) -> list[_Row]:
    rows: dict[str, _Row] = {}
    for event in events:
        if isinstance(event, InvalidEvent):
            built = [_invalid_row(event, now)]
        else:
            built = _build_rows(event, config, now)
        for row in built:
            rows.setdefault(row.message_id, row)
    return list(rows.values())


def _model(
    row: _Row, destination: Destination, request_id: uuid.UUID, now: datetime
) -> InboundEvent:
    queued = now if row.status == InboundEvent.Status.PENDING else None
    model = InboundEvent(
        destination=destination,
        message_id=row.message_id,
        type=row.type,
        user_id=row.user_id,
        # JSON null, not SQL NULL, for an event that is null.
        payload=Value(None, JSONField()) if row.payload is None else row.payload,
        timestamp=row.timestamp,
        received_at=now,
        kind=row.kind,
        attributes=row.attributes,
        call=row.call,
        notes=row.notes,
        status=row.status,
        reason=row.reason,
        queued_at=queued,
        next_attempt_at=queued,
        request_id=request_id,
    )
    model.seen_id = row.seen_id or row.message_id  # type: ignore[attr-defined]
    return model


def _insert(
    destination: Destination, rows: list[_Row], request_id: uuid.UUID, now: datetime
) -> list[tuple[str, str]]:
    """Stores the rows whose messageId is new (a Segment retry, a replay after the
    audit rows were purged, or a concurrent request may have brought it first: it
    is acknowledged, not stored again); returns the messageId and status of each
    row this request stored. Every new messageId is remembered (SeenMessage)."""
    if connection.vendor == "postgresql":
        return _insert_postgresql(destination.pk, rows, request_id, now)
    with transaction.atomic():
        return _insert_sqlite(
            [_model(row, destination, request_id, now) for row in rows], request_id, now
        )


def _insert_sqlite(
    rows: list[InboundEvent], request_id: uuid.UUID, now: datetime
) -> list[tuple[str, str]]:
    """What PostgreSQL's statement does: the rows of new messages stored, and every
    new message remembered."""
    destination_id = rows[0].destination_id
    seen = set(
        SeenMessage.objects.filter(
            destination_id=destination_id, message_id__in={row.seen_id for row in rows}
        ).values_list("message_id", flat=True)
    )
    InboundEvent.objects.bulk_create(
        [row for row in rows if row.seen_id not in seen], ignore_conflicts=True
    )
    # The request's id tells which rows this request inserted itself; the unique
    # messageId lets one request only insert each.
    stored = {
        message_id: (status, received_at)
        for message_id, status, received_at in InboundEvent.objects.filter(
            destination_id=destination_id,
            message_id__in=[row.message_id for row in rows],
            request_id=request_id,
        ).values_list("message_id", "status", "received_at")
    }
    SeenMessage.objects.bulk_create(
        [
            SeenMessage(
                destination_id=destination_id,
                message_id=row.seen_id,
                first_seen_at=stored.get(row.message_id, (None, now))[1],
            )
            for row in rows
            if row.seen_id not in seen and not _derived_row(row)
        ],
        ignore_conflicts=True,
    )
    return [(message_id, status) for message_id, (status, _) in stored.items()]


# What differs per row, as one JSON parameter expanded by PostgreSQL: 20x cheaper
# than Django's bulk insert, whose text arrays psycopg escapes one by one.
_COLUMNS = {
    "message_id": "text",
    "type": "text",
    "user_id": "text",
    "payload": "jsonb",
    "timestamp": "timestamptz",
    "kind": "text",
    "attributes": "jsonb",
    "call": "jsonb",
    "notes": "jsonb",
    "status": "text",
    "reason": "text",
}
# One statement, so its own transaction: the rows are stored (and their messages
# remembered) when it returns. The new messages are remembered first: ON CONFLICT
# finds those seen before (even when their audit rows were purged) by the unique
# index, whatever the planner thinks of the table's size; in one lock order, so
# that overlapping batches do not deadlock. Then the rows of the messages this
# request remembered are stored. A pending row is queued and due at once.
# Formatted with the models' own table and column names only: the values are
# parameters.
_INSERT_SQL = """
WITH r AS (
    SELECT * FROM jsonb_to_recordset(%(rows)s::jsonb) AS r({typed}, seen_id text, remember bool)
),
remembered AS (
    INSERT INTO {seen} (destination_id, message_id, first_seen_at)
    SELECT %(destination)s::bigint, seen_id, %(now)s::timestamptz FROM r WHERE remember
    ORDER BY seen_id
    ON CONFLICT (destination_id, message_id) DO NOTHING
    RETURNING message_id
),
stored AS (
    INSERT INTO {table} (destination_id, received_at, attempts, queued_at, next_attempt_at,
                         request_id, {columns})
    SELECT %(destination)s::bigint, %(now)s::timestamptz, 0,
           CASE WHEN status = %(pending)s THEN %(now)s::timestamptz END,
           CASE WHEN status = %(pending)s THEN %(now)s::timestamptz END,
           %(request)s::uuid, {selected}
    FROM r
    WHERE seen_id IN (SELECT message_id FROM remembered)
    -- A message id ending like a membership's is never remembered (as before).
    OR NOT remember AND seen_id = message_id
    ON CONFLICT (destination_id, message_id) DO NOTHING
    RETURNING message_id, status
)
SELECT message_id, status FROM stored
""".format(  # noqa: S608
    table=InboundEvent._meta.db_table,
    seen=SeenMessage._meta.db_table,
    columns=", ".join(f'"{name}"' for name in _COLUMNS),
    # JSON null comes out of jsonb_to_recordset as SQL NULL: an event that is null.
    selected=", ".join(
        "COALESCE(payload, 'null'::jsonb)" if name == "payload" else f'"{name}"'
        for name in _COLUMNS
    ),
    typed=", ".join(f'"{name}" {kind}' for name, kind in _COLUMNS.items()),
)


def _insert_postgresql(
    destination_id: int, rows: list[_Row], request_id: uuid.UUID, now: datetime
) -> list[tuple[str, str]]:
    records = [
        {
            "message_id": row.message_id,
            "type": row.type,
            "user_id": row.user_id,
            "payload": row.payload,
            "timestamp": row.timestamp,
            "kind": row.kind,
            "attributes": row.attributes,
            "call": row.call,
            "notes": row.notes,
            "status": row.status,
            "reason": row.reason,
            "seen_id": row.seen_id or row.message_id,
            "remember": not _derived_row(row),
        }
        for row in rows
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            _INSERT_SQL,
            {
                "rows": orjson.dumps(records).decode(),
                "destination": destination_id,
                "now": now,
                "request": request_id,
                "pending": InboundEvent.Status.PENDING.value,
            },
        )
        return cursor.fetchall()


def _build_rows(event: dict[str, Any], config: IngestConfig, now: datetime) -> list[_Row]:
    """The event's row, with the Talon.One call it becomes (its kind), or skipped
    with the reason. An identify that is both a profile update and an Engage
    audience change gets a second row for the membership (DERIVED_SUFFIX)."""
    event_type = event["type"]
    user_id = event.get("userId") or ""
    timestamp, time_notes = _event_time(event, now)
    row = _Row(
        message_id=event.get("messageId") or _content_id(event),
        type=event_type,
        user_id=user_id,
        payload=event,
        timestamp=timestamp,
        notes=time_notes,
    )
    if event_type not in DELIVERED_TYPES:
        row.reason = f"{event_type} events are not delivered to Talon.One"
        return [row]
    if not user_id:
        row.reason = ANONYMOUS_REASON
        return [row]
    if event_type == "delete":
        _queue(row, InboundEvent.Kind.DELETION)
        return [row]
    if event_type == "track":
        return [_track_row(row, event, config)]
    return _identify_rows(row, event, config)


def _track_row(row: _Row, event: dict[str, Any], config: IngestConfig) -> _Row:
    name = event.get("event")
    rule = config.events.get(name) if isinstance(name, str) else None
    if rule is None:
        row.reason = TRACK_NOT_LISTED.format(name=name)
        return row
    result = map_track(event, rule.properties)
    row.attributes = result.attributes
    row.call = {"type": rule.talon_event_type}
    row.notes = [*_notes(result.notes), *row.notes]
    _queue(row, InboundEvent.Kind.EVENT)
    return row


def _identify_rows(row: _Row, event: dict[str, Any], config: IngestConfig) -> list[_Row]:
    result = map_identify(event, config.mapping)
    row.attributes = result.attributes
    row.notes = [*_notes(result.notes), *row.notes]
    change = audience_change(event) if config.audiences_as_memberships else None
    rows = []
    if result.attributes:
        _queue(row, InboundEvent.Kind.PROFILE)
        rows.append(row)
    if change is not None:
        membership = row if not rows else _derived(row)
        membership.call = {
            "key": change.key,
            "computation_id": change.computation_id,
            "member": change.member,
        }
        _queue(membership, InboundEvent.Kind.AUDIENCE)
        rows.append(membership)
    if not rows:
        row.reason = NOTHING_TO_SEND
        rows.append(row)
    return rows


def _derived(row: _Row) -> _Row:
    """A second row for the same Segment message (its membership change)."""
    message_id = row.message_id + DERIVED_SUFFIX
    if len(message_id) > MESSAGE_ID_MAX:
        message_id = "sha256:" + hashlib.sha256(message_id.encode()).hexdigest() + DERIVED_SUFFIX
    return _Row(
        message_id=message_id,
        type=row.type,
        user_id=row.user_id,
        payload=row.payload,
        timestamp=row.timestamp,
        notes=[],
        seen_id=row.message_id,
    )


def _queue(row: _Row, kind: str) -> None:
    row.kind = kind
    row.status = InboundEvent.Status.PENDING


def _notes(notes: Iterable[Any]) -> list[dict[str, str]]:
    return [{"attribute": n.attribute, "reason": n.reason} for n in notes]


def _invalid_row(event: InvalidEvent, now: datetime) -> _Row:
    """The event as received, skipped with the reason; its own fields where usable."""
    payload = event.payload
    timestamp, time_notes = _event_time(payload, now)
    return _Row(
        message_id=_usable_text(payload, "messageId") or _content_id(payload),
        type=_usable_text(payload, "type") or INVALID_TYPE,
        user_id=_usable_text(payload, "userId") or "",
        payload=payload,
        timestamp=timestamp,
        notes=time_notes,
        reason=event.reason,
    )


def _checked(event: Any) -> Event:
    """An event of a batch, or why it cannot be used."""
    try:
        _validate_event(event, single=False)
    except (InvalidPayload, PayloadTooLarge) as exc:
        return InvalidEvent(event, str(exc))
    return event


def _validate_event(event: Any, *, single: bool) -> None:
    if not isinstance(event, dict):
        raise InvalidPayload(
            'The body must be a Segment event object, an array of events, or {"batch": [...]}.'
            if single
            else "The event is not a JSON object."
        )
    _integer_ids_as_text(event)
    if _larger_than(event, settings.INGEST_MAX_EVENT_BYTES):
        raise PayloadTooLarge(f"The event is larger than {settings.INGEST_MAX_EVENT_BYTES} bytes.")
    if single and "type" not in event:
        raise InvalidPayload(
            'The body is not a Segment event: it has no "type" (expected e.g. "identify").'
        )
    for key in _TEXT_FIELDS:
        if error := _text_error(event, key):
            raise InvalidPayload(f"The event: {error}")
    if isinstance(event.get("timestamp"), str) and _timestamp(event) is None:
        raise InvalidPayload(
            'The event: "timestamp" is not an ISO 8601 date and time in the years 1 to 9999.'
        )
    for key in ("traits", "context"):
        if event.get(key) is not None and not isinstance(event[key], dict):
            raise InvalidPayload(f'The event: "{key}" must be an object.')


def _integer_ids_as_text(event: dict[str, Any]) -> None:
    """analytics.js sends a numeric userId as it is; Segment's own pipeline reads it
    as its decimal string (and Talon.One's integrationId is a string), so do we."""
    for key in _ID_FIELDS:
        value = event.get(key)
        if type(value) is int:  # not bool, which is an int to Python
            event[key] = str(value)


def _text_error(event: dict[str, Any], key: str) -> str | None:
    rule = _TEXT_FIELDS[key]
    value = event.get(key)
    if value is None:
        return f'"{key}" is required.' if rule.required else None
    if not isinstance(value, str):
        kind = "a string or an integer" if key in _ID_FIELDS else "a string"
        return f'"{key}" must be {kind}, not {_json_type(value)}.'
    if len(value) > rule.max_length:
        return f'"{key}" is longer than {rule.max_length} characters.'
    if rule.max_bytes is not None and len(value.encode()) > rule.max_bytes:
        return f'"{key}" is longer than {rule.max_bytes} bytes as UTF-8.'
    return None


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, float):
        return "a number with a fraction" if not value.is_integer() else "a decimal number"
    return {dict: "an object", list: "an array"}.get(type(value), "a number")


def _usable_text(payload: Any, key: str) -> str | None:
    """A field of an invalid event, when the field itself passes its check."""
    if not isinstance(payload, dict) or _text_error(payload, key):
        return None
    return payload.get(key)


def _event_time(payload: Any, now: datetime) -> tuple[datetime, list[dict[str, str]]]:
    """When it happened, by Segment's clock; the time received when the event does not
    say, or says a time too far ahead (then with a note: the payload keeps the original)."""
    timestamp = _timestamp(payload) if isinstance(payload, dict) else None
    if timestamp is None:
        return now, []
    if timestamp > now + CLOCK_DRIFT:
        return now, [dict(FUTURE_NOTE)]
    return timestamp, []


def _timestamp(event: dict[str, Any]) -> datetime | None:
    value = event.get("timestamp")
    if not isinstance(value, str):
        return None
    try:
        parsed = parse_datetime(value.strip())
    except ValueError:
        return None
    if parsed is None:
        return None
    if timezone.is_naive(parsed):
        return timezone.make_aware(parsed, UTC)
    try:
        return parsed.astimezone(UTC)  # stored in UTC: an offset may push it past year 9999
    except OverflowError:
        return None


def _content_id(event: Any) -> str:
    """Events without a (usable) messageId dedupe on their content."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _larger_than(event: dict[str, Any], limit: int) -> bool:
    """Whether the event is over the limit as compact JSON (json.dumps without
    ASCII escapes): whitespace and escapes do not count."""
    try:
        size = len(orjson.dumps(event))
    except orjson.JSONEncodeError:  # a guard: the parser refuses what orjson would
        return _size(event) > limit
    # orjson writes the same bytes but for floats, which json may write one byte
    # longer (1e-09 where orjson writes 1e-9). A float takes 4 bytes at least with
    # the separator before it, so json's size is at most size + size // 4: only
    # near the limit does it have to be measured.
    return size + size // 4 > limit and _size(event) > limit


def _size(event: dict[str, Any]) -> int:
    return len(json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode())


class _UnusableNumber(ValueError):
    pass


def _reject_constant(name: str) -> None:
    raise _UnusableNumber(f"The body is not valid JSON: {name} is not a JSON number.")


def _parse_int(digits: str) -> int:
    # Checked before int(): converting thousands of digits is itself the attack.
    if len(digits.lstrip("-")) > len(str(MAX_INTEGER)) or abs(int(digits)) > MAX_INTEGER:
        raise _UnusableNumber(
            f"The body is not valid JSON: an integer is too large ({len(digits)} "
            f"characters); integers must be within ±{MAX_INTEGER}."
        )
    return int(digits)


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise _UnusableNumber(f"The body is not valid JSON: the number {shown} is too large.")
    return value


def _check_values(data: Any, *, check_text: bool) -> None:
    """Nesting depth, and text that no database can store, anywhere in the body."""
    if not check_text:
        if type(data) is dict or type(data) is list:
            _check_nesting(data, 1)
        return
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            if check_text:
                _check_text(value)
            continue
        if isinstance(value, dict):
            if check_text:
                for key in value:
                    _check_text(key)
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_NESTING:
            raise InvalidPayload(_TOO_DEEP)
        stack.extend((child, depth + 1) for child in children)


def _check_nesting(container: dict[str, Any] | list[Any], depth: int) -> None:
    """The nesting of a body without text to check: its objects and arrays only."""
    for child in container.values() if type(container) is dict else container:
        if type(child) is dict or type(child) is list:
            if depth == MAX_NESTING:
                raise InvalidPayload(_TOO_DEEP)
            _check_nesting(child, depth + 1)


def _check_text(text: str) -> None:
    match = _UNSTORABLE_RE.search(text)
    if match is None:
        return
    if match.group() == "\x00":
        raise InvalidPayload("The body holds a NUL character (\\u0000), which cannot be stored.")
    raise InvalidPayload(
        f"The body holds an unpaired UTF-16 surrogate (\\u{ord(match.group()):04x}): "
        "not valid Unicode text."
    )


def _json_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply."
    return str(exc)
