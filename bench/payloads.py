"""What the benchmark sends: Segment's calls as the scenarios need them, signed as
Segment signs them (HMAC-SHA1 of the body in X-Signature, or an Authorization
header for Webhooks (Actions) batches), each with a messageId of its own."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

SECRET = "bench-shared-secret"  # noqa: S105 (the benchmark's own)
API_KEY = "bench-api-key"
SLUG = "bench"
INGEST_PATH = f"/api/v1/segment/{SLUG}/"
BARE_PATH = "/bench/bare/"  # bench/urls.py
# The destination's forwarded traits, and the sandbox's catalogue (the Engage
# audience's trait passes through as an attribute of its own).
ATTRIBUTES = ["email", "plan", "vip:boolean", "address_city"]
CATALOGUE = ["email:string", "plan:string", "vip:boolean", "address_city:string",
             "bench_audience:boolean"]  # fmt: skip


def signature(raw: bytes) -> str:
    return hmac.new(SECRET.encode(), raw, hashlib.sha1).hexdigest()


def audience_identify(user: str) -> dict[str, Any]:
    """An Engage audience's identify for one member: bench/burst.py's shape."""
    return {
        "type": "identify",
        "messageId": f"bench-{user}",
        "userId": f"member-{user}",
        "timestamp": "2026-01-01T00:00:00Z",
        "traits": {"email": f"member-{user}@example.com", "plan": "gold", "vip": True,
                   "address": {"city": "Berlin"}, "notForwarded": 7, "bench_audience": True},
        "context": {"personas": {"computation_class": "audience",
                                 "computation_key": "bench_audience"}},
    }  # fmt: skip


def signed_single(user: str) -> bytes:
    """One identify as Segment's classic Webhooks destination sends it, as a request."""
    raw = json.dumps({
        "type": "identify", "messageId": f"single-{user}", "userId": f"user-{user}",
        "timestamp": "2026-01-01T00:00:00Z",
        "traits": {"email": f"{user}@example.com", "plan": "gold"},
    }).encode()  # fmt: skip
    return post(INGEST_PATH, raw, {"X-Signature": signature(raw)})


def actions_identify(user: str) -> dict[str, Any]:
    """An identify as analytics.js sends it through Segment (bench/actions_batch.py's)."""
    return {
        "anonymousId": f"507f191e810c19729de860ea-{user}",
        "channel": "browser",
        "context": {
            "ip": "203.0.113.7",
            "library": {"name": "analytics.js", "version": "next-1.72.0"},
            "locale": "de-DE",
            "page": {"path": "/account", "title": "Mein Konto", "url": "https://example.com/a"},
            "userAgent": "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        },
        "integrations": {},
        "messageId": f"ajs-next-{user}-022bb90cbbac11e48dfcaa07a5b093db",
        "originalTimestamp": "2026-11-20T09:14:55.111Z",
        "receivedAt": "2026-11-20T09:14:55.387Z",
        "sentAt": "2026-11-20T09:14:55.120Z",
        "timestamp": "2026-11-20T09:14:55.378Z",
        "traits": {
            "name": "Peter Gibbons",
            "email": f"peter.{user}@example.com",
            "plan": "premium",
            "logins": 5,
            "address": {"street": "6th St", "city": "San Francisco", "postalCode": "94103"},
        },
        "type": "identify",
        "userId": f"97980cfea0067-{user}",
        "version": 2,
    }


def post(path: str, raw: bytes, headers: dict[str, str]) -> bytes:
    """A whole HTTP/1.1 request; the connection closes after the answer (as gunicorn's
    sync workers do anyway)."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Content-Type: application/json",
             f"Content-Length: {len(raw)}", "Connection: close",
             *(f"{name}: {value}" for name, value in headers.items())]  # fmt: skip
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + raw


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()


def signed_batch(events: list[dict[str, Any]]) -> bytes:
    """A batch of events signed over the whole body, as a request."""
    raw = json.dumps(events).encode()
    return post(INGEST_PATH, raw, {"X-Signature": signature(raw)})


def actions_batch(events: list[dict[str, Any]]) -> bytes:
    """A Webhooks (Actions) batch as a request: authenticated by the Authorization
    header, X-Signature over the first event beside it (as Segment sends it)."""
    raw = json.dumps(events, separators=(",", ":"), ensure_ascii=False).encode()
    first = json.dumps(events[0], separators=(",", ":"), ensure_ascii=False).encode()
    headers = {"Authorization": f"Bearer {SECRET}", "X-Signature": signature(first)}
    return post(INGEST_PATH.rstrip("/"), raw, headers)
