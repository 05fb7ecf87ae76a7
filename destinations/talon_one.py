"""The Talon.One Integration API client: URLs, headers, timeouts, and the
classification of every outcome as success, retryable or permanent.

Nothing else in the project builds Talon.One requests.
"""

from __future__ import annotations

import enum
import json
import math
import re
import time
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from django.conf import settings
from django.utils import timezone

RESPONSE_BODY_LIMIT = 4000
BULK_LIMIT = 1000  # profiles per PUT /v2/customer_profiles
MAX_RETRY_AFTER_SECONDS = 3600.0


class Outcome(enum.Enum):
    SUCCESS = "success"
    RETRY = "retry"
    PERMANENT = "permanent"


@dataclass(frozen=True)
class Result:
    """What one request did. `url` and `body` are what was sent, minus the key."""

    method: str
    url: str
    body: dict[str, Any]
    outcome: Outcome
    status: int | None
    response_body: str  # truncated for the audit log
    error: str
    duration_ms: int
    retry_after: float | None = None
    message: str = ""
    # Bulk request errors by profile index, read from the whole response.
    profile_errors: dict[int, str] = field(default_factory=dict)

    def summary(self) -> str:
        """A one-line reason for operators."""
        if self.status is None:
            return self.error
        detail = f": {self.message}" if self.message else ""
        return f"Talon.One answered {self.status}{detail}"


def read_error(text: str) -> tuple[str, dict[int, str]]:
    """Talon.One's error message and, for bulk requests, each failing profile's
    details by index (from `source.pointer` = /customerProfiles/<index>/...)."""
    try:
        data = json.loads(text)
    except ValueError:
        return "", {}
    if not isinstance(data, dict):
        return "", {}
    message = data.get("message") if isinstance(data.get("message"), str) else ""
    by_profile: dict[int, str] = {}
    for error in data.get("errors") or []:
        if not isinstance(error, dict) or not isinstance(error.get("source"), dict):
            continue
        match = _PROFILE_POINTER.match(str(error["source"].get("pointer", "")))
        if match:
            detail = error.get("details") or error.get("title") or message
            by_profile.setdefault(int(match[1]), str(detail))
    return message[:500], by_profile


_PROFILE_POINTER = re.compile(r"^/customerProfiles/(\d+)(?:/|$)")


def classify(status: int) -> Outcome:
    if 200 <= status < 300:
        return Outcome.SUCCESS
    # 409: parallel update of one profile; 429: rate limited; 5xx: their outage.
    if status in (408, 409, 425, 429) or status >= 500:
        return Outcome.RETRY
    return Outcome.PERMANENT


def parse_retry_after(value: str | None) -> float | None:
    """Seconds to wait, from delta-seconds or an HTTP date; at most an hour."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - timezone.now()).total_seconds()
        except (TypeError, ValueError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER_SECONDS)


class TalonOneClient:
    def __init__(self, base_url: str, api_key: str, session: requests.Session | None = None):
        self.base_url = base_url
        self._api_key = api_key
        self._session = session or requests.Session()

    def update_profile(
        self, integration_id: str, attributes: dict[str, Any], run_rule_engine: bool
    ) -> Result:
        path = f"/v2/customer_profiles/{quote(integration_id, safe='')}"
        query = f"?runRuleEngine={'true' if run_rule_engine else 'false'}"
        return self._put(path + query, {"attributes": attributes})

    def update_profiles(self, profiles: dict[str, dict[str, Any]]) -> Result:
        if len(profiles) > BULK_LIMIT:
            raise ValueError(f"Talon.One takes at most {BULK_LIMIT} profiles per bulk request")
        body = {
            "customerProfiles": [
                {"integrationId": integration_id, "attributes": attributes}
                for integration_id, attributes in profiles.items()
            ]
        }
        return self._put("/v2/customer_profiles?silent=yes", body)

    def _put(self, path: str, body: dict[str, Any]) -> Result:
        url = self.base_url + path
        started = time.monotonic()
        try:
            response = self._session.put(
                url,
                json=body,
                headers={"Authorization": f"ApiKey-v1 {self._api_key}"},
                timeout=(settings.TALON_CONNECT_TIMEOUT, settings.TALON_READ_TIMEOUT),
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Transport failures are retryable. The message names the kind of
            # failure only: requests' own text may quote the URL and headers.
            return Result(
                "PUT",
                url,
                body,
                Outcome.RETRY,
                None,
                "",
                _transport_error(exc),
                _elapsed_ms(started),
            )
        outcome = classify(response.status_code)
        message, profile_errors = (
            ("", {}) if outcome is Outcome.SUCCESS else read_error(response.text)
        )
        return Result(
            method="PUT",
            url=url,
            body=body,
            outcome=outcome,
            status=response.status_code,
            response_body=response.text[:RESPONSE_BODY_LIMIT],
            error="",
            duration_ms=_elapsed_ms(started),
            retry_after=parse_retry_after(response.headers.get("Retry-After")),
            message=message,
            profile_errors=profile_errors,
        )


def _elapsed_ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)


def _transport_error(exc: requests.RequestException) -> str:
    if isinstance(exc, requests.Timeout):
        return "Timed out waiting for Talon.One"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error: Talon.One's certificate could not be verified"
    if isinstance(exc, requests.ConnectionError):
        return "Could not connect to Talon.One"
    return f"Request to Talon.One failed ({type(exc).__name__})"
