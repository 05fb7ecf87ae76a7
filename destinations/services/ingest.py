"""Ingest: authenticate a Segment request, validate its events, store them.

The request path does only this; everything slow happens in workers. Events
are stored, mapped and queued in one transaction, and the flush is nudged
after commit, so a worker never looks for an event that is not there yet.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.views.decorators.debug import sensitive_variables

from destinations.models import Destination, InboundEvent
from destinations.services import delivery, secrets
from destinations.services.mapping import (
    NOTHING_TO_SEND,
    AttributeRule,
    AttributeType,
    MappingConfig,
    map_identify,
)

# The columns' sizes: longer values would fail in PostgreSQL, not with a 400.
TYPE_MAX = InboundEvent._meta.get_field("type").max_length
MESSAGE_ID_MAX = InboundEvent._meta.get_field("message_id").max_length
USER_ID_MAX = InboundEvent._meta.get_field("user_id").max_length
# Segment's Actions webhooks send at most this many events per request.
MAX_EVENTS = 4000
# Far deeper than any Segment event; the mapping notes traits beyond its own 32 levels.
MAX_NESTING = 64
# JSON numbers that every store and client here handles (PostgreSQL's bigint, float64).
MAX_INTEGER = 2**63 - 1
# NUL and unpaired surrogates are valid JSON escapes but cannot be stored (or encoded).
_UNSTORABLE_RE = re.compile(r"[\x00\ud800-\udfff]")
ANONYMOUS_REASON = "only logged-in users are supported: the event has no userId"


class InvalidPayload(Exception):
    """The body is not something we accept; the message says what is wrong (400)."""


class PayloadTooLarge(Exception):
    """Over Segment's own limits (413)."""


@dataclass(frozen=True)
class IngestSummary:
    accepted: int
    skipped: int
    duplicates: int


@sensitive_variables()
def authenticate(destination: Destination, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the request carries one of the destination's accepted secrets
    (the current one, and the previous one during a rotation).

    Segment's classic webhooks sign the body (X-Signature: hex HMAC-SHA1);
    senders that set headers may send the secret as Basic user name or Bearer token.
    Without any secret, only a destination marked accept_unsigned takes events.
    """
    accepted = [secret.encode() for secret in secrets.accepted_secrets(destination, timezone.now())]
    if not accepted:
        return destination.accept_unsigned
    # Compared as bytes: header values may hold any latin-1 character, which
    # compare_digest refuses in str.
    signature = headers.get("X-Signature")
    if signature:
        expected = [hmac.new(s, body, hashlib.sha1).hexdigest().encode() for s in accepted]
        return _matches(expected, signature.strip().lower().encode())
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return _matches(accepted, credentials.strip().encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, _password = decoded.partition(b":")
        return _matches(accepted, user)
    return False


def _matches(candidates: list[bytes], given: bytes) -> bool:
    # A loop, not any(<generator>): a failed generator's frame forgets its
    # caller, and with it authenticate's sensitive_variables in error reports.
    matched = False
    for candidate in candidates:
        matched |= hmac.compare_digest(candidate, given)
    return matched


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events in a request body: one event, an array, or {"batch": [...]}."""
    if len(body) > settings.INGEST_MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"The request body is larger than {settings.INGEST_MAX_REQUEST_BYTES} bytes."
        )
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
    _check_values(data)
    if isinstance(data, dict) and "batch" in data:
        data = data["batch"]
        if not isinstance(data, list):
            raise InvalidPayload('"batch" must be an array of events.')
    events = data if isinstance(data, list) else [data]
    if not events:
        raise InvalidPayload("The body holds no events.")
    if len(events) > MAX_EVENTS:
        raise PayloadTooLarge(f"The request holds more than {MAX_EVENTS} events.")
    single = not isinstance(data, list)
    for index, event in enumerate(events):
        _validate_event(event, "The event" if single else f"Event {index}", single)
    return events


def ingest(destination: Destination, events: list[dict[str, Any]]) -> IngestSummary:
    config = mapping_config(destination)
    now = timezone.now()
    rows: dict[str, InboundEvent] = {}
    for event in events:
        row = _build_row(destination, event, config, now)
        rows.setdefault(row.message_id, row)
    with transaction.atomic():
        known = set(
            InboundEvent.objects.filter(
                destination=destination, message_id__in=list(rows)
            ).values_list("message_id", flat=True)
        )
        new = [row for message_id, row in rows.items() if message_id not in known]
        # ignore_conflicts: a concurrent request with the same messageId already
        # stored it; acknowledging it again is what Segment expects.
        InboundEvent.objects.bulk_create(new, ignore_conflicts=True)
        accepted = sum(row.status == InboundEvent.Status.PENDING for row in new)
        if accepted:
            transaction.on_commit(lambda: delivery.nudge(destination.pk))
    return IngestSummary(
        accepted=accepted, skipped=len(new) - accepted, duplicates=len(events) - len(new)
    )


def mapping_config(destination: Destination) -> MappingConfig:
    rules = tuple(
        AttributeRule(name=row.name, type=AttributeType(row.type))
        for row in destination.attributes.all()
    )
    return MappingConfig(rules=rules, forward_engage=destination.forward_engage)


def _build_row(
    destination: Destination, event: dict[str, Any], config: MappingConfig, now: datetime
) -> InboundEvent:
    event_type = event["type"]
    user_id = event.get("userId") or ""
    row = InboundEvent(
        destination=destination,
        message_id=event.get("messageId") or _content_id(event),
        type=event_type,
        user_id=user_id,
        payload=event,
        timestamp=_timestamp(event) or now,
        status=InboundEvent.Status.SKIPPED,
    )
    if event_type != "identify":
        row.reason = f"{event_type} events are not delivered to Talon.One (only identify is)"
    elif not user_id:
        row.reason = ANONYMOUS_REASON
    else:
        result = map_identify(event, config)
        row.attributes = result.attributes
        row.notes = [{"attribute": n.attribute, "reason": n.reason} for n in result.notes]
        if result.attributes:
            row.status = InboundEvent.Status.PENDING
            row.queued_at = row.next_attempt_at = now
        else:
            row.reason = NOTHING_TO_SEND
    return row


def _validate_event(event: Any, where: str, single: bool) -> None:
    if not isinstance(event, dict):
        raise InvalidPayload(
            'The body must be a Segment event object, an array of events, or {"batch": [...]}.'
            if single
            else f"{where} is not a JSON object."
        )
    if _size(event) > settings.INGEST_MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"{where} is larger than {settings.INGEST_MAX_EVENT_BYTES} bytes.")
    if single and "type" not in event:
        raise InvalidPayload(
            'The body is not a Segment event: it has no "type" (expected e.g. "identify").'
        )
    _check_string(event, "type", where, required=True, max_length=TYPE_MAX)
    _check_string(event, "messageId", where, max_length=MESSAGE_ID_MAX)
    _check_string(event, "userId", where, max_length=USER_ID_MAX)
    _check_string(event, "anonymousId", where, max_length=USER_ID_MAX)
    _check_string(event, "timestamp", where, max_length=64)
    if isinstance(event.get("timestamp"), str) and _timestamp(event) is None:
        raise InvalidPayload(
            f'{where}: "timestamp" is not an ISO 8601 date and time in the years 1 to 9999.'
        )
    for key in ("traits", "context"):
        if event.get(key) is not None and not isinstance(event[key], dict):
            raise InvalidPayload(f'{where}: "{key}" must be an object.')


def _check_string(
    event: dict[str, Any], key: str, where: str, *, max_length: int, required: bool = False
) -> None:
    value = event.get(key)
    if value is None:
        if required:
            raise InvalidPayload(f'{where}: "{key}" is required.')
        return
    if not isinstance(value, str):
        raise InvalidPayload(f'{where}: "{key}" must be a string.')
    if len(value) > max_length:
        raise InvalidPayload(f'{where}: "{key}" is longer than {max_length} characters.')


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


def _content_id(event: dict[str, Any]) -> str:
    """Events without a messageId dedupe on their content."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _size(event: dict[str, Any]) -> int:
    """Bytes of the event as compact JSON: whitespace and escapes do not count."""
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


def _check_values(data: Any) -> None:
    """Nesting depth, and text that no database can store, anywhere in the body."""
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
            continue
        if isinstance(value, dict):
            for key in value:
                _check_text(key)
            children: Iterable[Any] = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        if depth > MAX_NESTING:
            raise InvalidPayload(f"The body is nested too deeply (over {MAX_NESTING} levels).")
        stack.extend((child, depth + 1) for child in children)


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
