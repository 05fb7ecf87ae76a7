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
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from destinations.models import Destination, InboundEvent
from destinations.services import delivery
from destinations.services.mapping import (
    NOTHING_TO_SEND,
    AttributeRule,
    AttributeType,
    MappingConfig,
    map_identify,
)

MESSAGE_ID_MAX = 200
USER_ID_MAX = 1000
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


def authenticate(destination: Destination, body: bytes, headers: Mapping[str, str]) -> bool:
    """True when the request carries the destination's shared secret.

    Segment's classic webhooks sign the body (X-Signature: hex HMAC-SHA1);
    senders that set headers may send the secret as Basic user name or Bearer token.
    """
    secret = destination.shared_secret
    if not secret:
        return False
    signature = headers.get("X-Signature")
    if signature:
        expected = hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()
        return hmac.compare_digest(expected, signature.strip().lower())
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer":
        return hmac.compare_digest(credentials.strip().encode(), secret.encode())
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials.strip(), validate=True)
        except (binascii.Error, ValueError):
            return False
        user, _, _password = decoded.partition(b":")
        return hmac.compare_digest(user, secret.encode())
    return False


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """The events in a request body: one event, an array, or {"batch": [...]}."""
    if len(body) > settings.INGEST_MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"The request body is larger than {settings.INGEST_MAX_REQUEST_BYTES} bytes."
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidPayload("The body is not valid UTF-8.") from None
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise InvalidPayload(f"The body is not valid JSON: {_json_error(exc)}") from None
    if isinstance(data, dict) and "batch" in data:
        data = data["batch"]
        if not isinstance(data, list):
            raise InvalidPayload('"batch" must be an array of events.')
    events = data if isinstance(data, list) else [data]
    if not events:
        raise InvalidPayload("The body holds no events.")
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
    if not single and len(json.dumps(event)) > settings.INGEST_MAX_EVENT_BYTES:
        raise PayloadTooLarge(f"{where} is larger than {settings.INGEST_MAX_EVENT_BYTES} bytes.")
    if single and "type" not in event:
        raise InvalidPayload(
            'The body is not a Segment event: it has no "type" (expected e.g. "identify").'
        )
    _check_string(event, "type", where, required=True, max_length=50)
    _check_string(event, "messageId", where, max_length=MESSAGE_ID_MAX)
    _check_string(event, "userId", where, max_length=USER_ID_MAX)
    _check_string(event, "anonymousId", where, max_length=USER_ID_MAX)
    _check_string(event, "timestamp", where, max_length=64)
    if isinstance(event.get("timestamp"), str) and _timestamp(event) is None:
        raise InvalidPayload(f'{where}: "timestamp" is not an ISO 8601 date and time.')
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
    return parsed if timezone.is_aware(parsed) else timezone.make_aware(parsed, UTC)


def _content_id(event: dict[str, Any]) -> str:
    """Events without a messageId dedupe on their content."""
    canonical = json.dumps(event, sort_keys=True, separators=(",", ":"))
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _json_error(exc: Exception) -> str:
    if isinstance(exc, RecursionError):
        return "it is nested too deeply."
    return str(exc)
