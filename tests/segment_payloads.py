"""Requests shaped exactly as Segment sends them, from Segment's documentation:
the identify spec's example event, and Webhooks (Actions) batching, which
serialises with JavaScript's JSON.stringify (compact, non-ASCII as is) and
signs a batch over its first event only."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

from tests.conftest import SECRET


def js_json(value: Any) -> bytes:
    """JSON.stringify(value), as UTF-8."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def segment_identify(index: int, **overrides: Any) -> dict[str, Any]:
    """An identify as analytics.js sends it through Segment (about 900 bytes)."""
    event: dict[str, Any] = {
        "anonymousId": f"507f191e810c19729de860ea-{index}",
        "channel": "browser",
        "context": {
            "ip": "203.0.113.7",
            "library": {"name": "analytics.js", "version": "next-1.72.0"},
            "locale": "de-DE",
            "page": {
                "path": "/account",
                "referrer": "https://www.example.com/",
                "title": "Mein Konto \u2013 Übersicht",
                "url": "https://www.example.com/account",
            },
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        },
        "integrations": {},
        "messageId": f"ajs-next-{index:08d}-022bb90cbbac11e48dfcaa07a5b093db",
        "originalTimestamp": "2026-11-20T09:14:55.111Z",
        "receivedAt": "2026-11-20T09:14:55.387Z",
        "sentAt": "2026-11-20T09:14:55.120Z",
        "timestamp": "2026-11-20T09:14:55.378Z",
        "traits": {
            "name": "Peter Gibbons",
            "email": f"peter.{index}@example.com",
            "plan": "premium",
            "logins": 5,
            "address": {
                "street": "6th St",
                "city": "San Francisco",
                "state": "CA",
                "postalCode": "94103",
                "country": "USA",
            },
        },
        "type": "identify",
        "userId": f"97980cfea0067-{index}",
        "version": 2,
    }
    event.update(overrides)
    return event


def actions_batch(events: list[dict[str, Any]], secret: str = SECRET) -> tuple[bytes, str]:
    """A Webhooks (Actions) batch body and its X-Signature, HMAC-SHA1 of
    JSON.stringify(payload[0]) keyed by the shared secret."""
    signature = hmac.new(secret.encode(), js_json(events[0]), hashlib.sha1).hexdigest()
    return js_json(events), signature
