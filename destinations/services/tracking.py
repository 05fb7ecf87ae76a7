"""Segment's HTTP Tracking API, so that Segment-compatible SDKs can send here
directly: /v1/identify, /v1/track, ... and /v1/batch, authenticated by a
per-destination write key, as Segment's own API is.

The events then take the same path as webhooks: ingest.ingest().
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Mapping
from typing import Any

from django.views.decorators.debug import sensitive_variables

from destinations.models import Destination
from destinations.services import ingest

SINGLE_CALLS = ("identify", "track", "page", "screen", "group", "alias")
BATCH_CALLS = ("batch", "import")
# Fields of a batch request that apply to every event that lacks its own.
_BATCH_DEFAULTS = ("context", "integrations")
MIN_WRITE_KEY_LENGTH = 16


class InvalidWriteKey(ValueError):
    pass


@sensitive_variables()
def write_key_digest(write_key: str) -> str:
    return hashlib.sha256(write_key.encode()).hexdigest()


@sensitive_variables()
def checked_digest(destination: Destination, write_key: str) -> str:
    """The digest to store for a new write key. Keys are long random strings (as
    Segment's are): a SHA-256 finds the destination by an index, unsalted."""
    if (
        len(write_key) < MIN_WRITE_KEY_LENGTH
        or not write_key.isascii()
        or not write_key.isprintable()
        or any(c.isspace() for c in write_key)
    ):
        raise InvalidWriteKey(
            f"A write key is at least {MIN_WRITE_KEY_LENGTH} printable ASCII characters, "
            "without spaces."
        )
    digest = write_key_digest(write_key)
    if Destination.objects.filter(write_key_digest=digest).exclude(pk=destination.pk).exists():
        raise InvalidWriteKey("This write key belongs to another destination.")
    return digest


@sensitive_variables()
def set_write_key(destination: Destination, write_key: str) -> None:
    destination.write_key_digest = checked_digest(destination, write_key)
    destination.save(update_fields=["write_key_digest", "updated_at"])


@sensitive_variables()
def destination_for(headers: Mapping[str, str], data: Any) -> Destination | None:
    """The enabled destination whose write key the request carries: as the Basic
    user name (Segment's SDKs) or as "writeKey" in the body."""
    write_key: str | None = None
    scheme, _, credentials = headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "basic":
        user = ingest.basic_user(credentials)
        if user:
            write_key = user.decode("utf-8", errors="replace")
    if not write_key and isinstance(data, dict) and isinstance(data.get("writeKey"), str):
        write_key = data["writeKey"]
    if not write_key:
        return None
    return Destination.objects.filter(
        write_key_digest=write_key_digest(write_key), enabled=True
    ).first()


def decompress(body: bytes, encoding: str, max_bytes: int) -> bytes:
    """The body as sent before Content-Encoding; at most max_bytes of it are ever
    inflated, so a small bomb cannot fill the memory."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ingest.InvalidPayload(
            f"Content-Encoding {encoding[:40]!r} is not supported: send gzip or plain JSON."
        )
    inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        inflated = inflater.decompress(body, max_bytes + 1)
    except zlib.error:
        raise ingest.InvalidPayload("The body is not valid gzip.") from None
    if len(inflated) > max_bytes:
        raise ingest.PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")
    if not inflater.eof:
        raise ingest.InvalidPayload("The gzip body is cut short.")
    return inflated


def events(call: str, data: Any, max_events: int) -> list[ingest.Event]:
    """The events of a Tracking API request: one event whose type is the call's,
    or a batch whose context and integrations apply to events without their own."""
    if call in SINGLE_CALLS:
        if not isinstance(data, dict):
            raise ingest.InvalidPayload(f"The body of /v1/{call} must be one event object.")
        data = {**data, "type": call}
        data.pop("writeKey", None)
        return ingest.events_from(data, max_events)
    if not isinstance(data, dict) or not isinstance(data.get("batch"), list):
        raise ingest.InvalidPayload(f'The body of /v1/{call} must be {{"batch": [...]}}.')
    defaults = {key: data[key] for key in _BATCH_DEFAULTS if isinstance(data.get(key), dict)}
    batch = [
        {**defaults, **event} if defaults and isinstance(event, dict) else event
        for event in data["batch"]
    ]
    return ingest.events_from(batch, max_events)
