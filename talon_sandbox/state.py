"""The sandbox's in-memory state: profiles, configuration, faults, request log and stats.

One lock guards everything mutable. The catalogue, API keys and faults are replaced
wholesale (never mutated), so request handlers read them without the lock; changes to
the faults (including consuming `fail_next`) are made under the lock.
"""

import random
import threading
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any

from .responses import Request
from .validation import MembershipChange, NewAudience, ProfileUpdate, Rules, TrackedEvent

ACCOUNT_ID = 1  # the one Talon.One account the sandbox pretends to be
_ERROR_STATUSES = frozenset(status.value for status in HTTPStatus if status >= 400)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ProfileBusy(Exception):
    """Another request is updating one of these profiles (Talon.One answers 409)."""


@dataclass(frozen=True)
class Faults:
    """What `PUT /sandbox/faults` can switch on.

    An Integration API request (to a known endpoint) gets an injected error before
    authentication and validation from the first of these that applies:
    - `down`: 503 to every request (`fail_next` is not consumed meanwhile);
    - `fail_next`: error statuses such as `[500, 503, 409]`, answered one per request,
      in order, then gone: faults that certainly happen, unlike
    - `error_rate`: the chance of each status per request, e.g. `{"500": 0.2}`.
    `retry_after` adds a Retry-After header to injected 429s and 503s; `latency_ms` is
    how long an update holds its profiles (a parallel request for one of them gets a
    real 409); updates of `reject_profiles` fail validation (400).
    """

    down: bool = False
    latency_ms: int = 0
    fail_next: tuple[int, ...] = ()
    error_rate: Mapping[int, float] = field(default_factory=dict)
    retry_after: int | None = None
    reject_profiles: frozenset[str] = frozenset()

    def merged(self, changes: Any) -> "Faults":
        """Apply a `PUT /sandbox/faults` body; raise ValueError on a bad one."""
        if not isinstance(changes, Mapping):
            raise ValueError("faults must be a JSON object")
        unknown = set(changes) - set(_FAULT_PARSERS)
        if unknown:
            raise ValueError(f"unknown faults: {', '.join(sorted(unknown))}")
        return replace(
            self,
            **{name: _FAULT_PARSERS[name](name, value) for name, value in changes.items()},
        )

    def draw_error(self) -> int | None:
        """Pick an injected error status for this request, or None."""
        roll = random.random()
        cumulative = 0.0
        for status, rate in self.error_rate.items():
            cumulative += rate
            if roll < cumulative:
                return status
        return None

    def to_json(self) -> dict[str, Any]:
        return {
            "down": self.down,
            "latency_ms": self.latency_ms,
            "fail_next": list(self.fail_next),
            "error_rate": {str(status): rate for status, rate in self.error_rate.items()},
            "retry_after": self.retry_after,
            "reject_profiles": sorted(self.reject_profiles),
        }


def _parse_bool(name: str, value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{name} must be a boolean")
    return value


def _parse_non_negative_int(name: str, value: Any) -> int:
    if type(value) is not int or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _parse_optional_non_negative_int(name: str, value: Any) -> int | None:
    return None if value is None else _parse_non_negative_int(name, value)


def _parse_statuses(name: str, value: Any) -> tuple[int, ...]:
    if type(value) is not list or not all(
        type(status) is int and status in _ERROR_STATUSES for status in value
    ):
        raise ValueError(f"{name} must be an array of HTTP error statuses like [500, 409]")
    return tuple(value)


def _parse_error_rate(name: str, value: Any) -> dict[int, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f'{name} must be an object like {{"500": 0.1}}')
    rates: dict[int, float] = {}
    for status, rate in value.items():
        if not str(status).isdigit() or int(status) not in _ERROR_STATUSES:
            raise ValueError(f"{name}: {status!r} is not an HTTP error status")
        if type(rate) not in (int, float) or not 0 <= rate <= 1:
            raise ValueError(f"{name}: rate for {status} must be between 0 and 1")
        rates[int(status)] = float(rate)
    return rates


def _parse_string_set(name: str, value: Any) -> frozenset[str]:
    if type(value) is not list or not all(type(item) is str for item in value):
        raise ValueError(f"{name} must be an array of strings")
    return frozenset(value)


_FAULT_PARSERS: dict[str, Callable[[str, Any], Any]] = {
    "down": _parse_bool,
    "latency_ms": _parse_non_negative_int,
    "fail_next": _parse_statuses,
    "error_rate": _parse_error_rate,
    "retry_after": _parse_optional_non_negative_int,
    "reject_profiles": _parse_string_set,
}


@dataclass
class Profile:
    id: int
    integration_id: str
    created: str
    last_activity: str
    attributes: dict[str, Any] = field(default_factory=dict)
    audiences: set[int] = field(default_factory=set)
    events: list[dict[str, Any]] = field(default_factory=list)
    updates: int = 0

    def apply(self, update: ProfileUpdate) -> None:
        for name, value in update.attributes.items():
            if value is None:
                self.attributes.pop(name, None)
            else:
                self.attributes[name] = value
        self.audiences.update(update.audience_adds)
        self.audiences.difference_update(update.audience_deletes)

    def copy(self) -> "Profile":
        return replace(self, attributes=dict(self.attributes), audiences=set(self.audiences))

    def to_talon(self) -> dict[str, Any]:
        """Talon.One's CustomerProfile schema (with its required fields)."""
        return {
            "id": self.id,
            "created": self.created,
            "integrationId": self.integration_id,
            "attributes": dict(self.attributes),
            "accountId": ACCOUNT_ID,
            "closedSessions": 0,
            "totalSales": 0.0,
            "audienceMemberships": [
                {"id": audience, "name": f"Audience {audience}"}
                for audience in sorted(self.audiences)
            ],
            "lastActivity": self.last_activity,
            "sandbox": False,
        }

    def to_control(self) -> dict[str, Any]:
        return {
            "attributes": dict(self.attributes),
            "updates": self.updates,
            "audiences": sorted(self.audiences),
            "events": list(self.events),
            "created": self.created,
        }


class SandboxState:
    def __init__(
        self,
        *,
        catalogue: Mapping[str, str],
        api_keys: Iterable[str],
        faults: Faults,
        log_limit: int,
    ) -> None:
        self._lock = threading.Lock()
        self.catalogue: Mapping[str, str] = dict(catalogue)
        self.api_keys: frozenset[str] = frozenset(api_keys)
        self._initial_faults = faults  # what reset() restores (e.g. --latency-ms)
        self.faults = faults
        self._profiles: dict[str, Profile] = {}
        self._held: set[str] = set()  # profiles that a request is updating
        self._next_id = 1
        self._log: deque[dict[str, Any]] = deque(maxlen=log_limit)
        self._request_count = 0
        self._by_status: Counter[int] = Counter()
        self._profiles_updated = 0
        self._parallel_conflicts = 0
        self._in_flight = 0  # a gauge of requests being handled, so reset() leaves it
        self._audiences: dict[int, dict[str, Any]] = {}

    def rules(self) -> Rules:
        return Rules(self.catalogue, self.faults.reject_profiles)

    def update_faults(self, changes: Any) -> Faults:
        with self._lock:
            self.faults = self.faults.merged(changes)
            return self.faults

    def injected_error(self) -> int | None:
        """The status to inject into this request (down aside): the next of
        `fail_next`, consumed, else a draw from `error_rate`; None for no fault."""
        with self._lock:
            faults = self.faults
            if not faults.fail_next:
                return faults.draw_error()
            self.faults = replace(faults, fail_next=faults.fail_next[1:])
            return faults.fail_next[0]

    def reset(
        self,
        *,
        catalogue: Mapping[str, str] | None = None,
        api_keys: Iterable[str] | None = None,
    ) -> None:
        with self._lock:
            self._profiles.clear()
            self._audiences.clear()
            self._next_id = 1
            self._log.clear()
            self._request_count = 0
            self._by_status.clear()
            self._profiles_updated = 0
            self._parallel_conflicts = 0
            self.faults = self._initial_faults
            if catalogue is not None:
                self.catalogue = dict(catalogue)
            if api_keys is not None:
                self.api_keys = frozenset(api_keys)

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Count one Integration API request as in flight until it is logged."""
        with self._lock:
            self._in_flight += 1
        try:
            yield
        finally:
            with self._lock:
                self._in_flight -= 1

    @contextmanager
    def hold_profiles(self, integration_ids: set[str]) -> Iterator[None]:
        """Hold profiles for the duration of one request; ProfileBusy (counted as a
        real parallel conflict, unlike an injected 409) if one is already held."""
        with self._lock:
            if not self._held.isdisjoint(integration_ids):
                self._parallel_conflicts += 1
                raise ProfileBusy
            self._held.update(integration_ids)
        try:
            yield
        finally:
            with self._lock:
                self._held.difference_update(integration_ids)

    def apply(
        self,
        updates: list[ProfileUpdate],
        *,
        dry: bool,
        touch_activity: bool,
        want_states: bool,
    ) -> list[dict[str, Any]]:
        """Commit updates in order (unless dry); return CustomerProfiles if wanted."""
        states: list[dict[str, Any]] = []
        with self._lock:
            for update in updates:
                profile = self._profile_for(update.integration_id, dry=dry)
                profile.apply(update)
                if touch_activity:
                    profile.last_activity = utc_now()
                if not dry:
                    profile.updates += 1
                    self._profiles_updated += 1
                if want_states:
                    states.append(profile.to_talon())
        return states

    def track(self, event: TrackedEvent) -> None:
        """Store an event on its profile (created if missing, as Talon.One does)."""
        with self._lock:
            profile = self._profile_for(event.profile_id, dry=False)
            profile.events.append({"type": event.type, "attributes": dict(event.attributes)})

    def create_audience(self, audience: NewAudience) -> dict[str, Any] | None:
        """The new audience (Talon.One's Audience schema), or None when one with
        this integrationId exists already (Talon.One answers 409)."""
        with self._lock:
            if audience.integration_id and any(
                a["integrationId"] == audience.integration_id for a in self._audiences.values()
            ):
                return None
            audience_id = len(self._audiences) + 1
            self._audiences[audience_id] = {
                "id": audience_id,
                "accountId": ACCOUNT_ID,
                "created": utc_now(),
                "name": audience.name,
                "integration": audience.integration,
                "integrationId": audience.integration_id,
            }
            return dict(self._audiences[audience_id])

    def change_memberships(self, changes: list[MembershipChange]) -> int | None:
        """Apply all changes, or none: returns an unknown audience id (404) if any."""
        with self._lock:
            for change in changes:
                if change.audience_id not in self._audiences:
                    return change.audience_id
            for change in changes:
                if change.add:
                    self._profile_for(change.integration_id, dry=False).audiences.add(
                        change.audience_id
                    )
                elif (profile := self._profiles.get(change.integration_id)) is not None:
                    profile.audiences.discard(change.audience_id)
            return None

    def delete_customer(self, integration_id: str) -> bool:
        """Forget the customer; False when there was none (Talon.One answers 404)."""
        with self._lock:
            return self._profiles.pop(integration_id, None) is not None

    def audiences_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(audience) for audience in self._audiences.values()]

    def _profile_for(self, integration_id: str, *, dry: bool) -> Profile:
        """The stored profile (created if missing), or a throwaway copy when dry."""
        profile = self._profiles.get(integration_id)
        if profile is not None:
            return profile.copy() if dry else profile
        now = utc_now()
        profile = Profile(self._next_id, integration_id, created=now, last_activity=now)
        if not dry:
            self._profiles[integration_id] = profile
            self._next_id += 1
        return profile

    def record(self, request: Request, body: Any, status: int, profile_count: int) -> None:
        entry = {
            "method": request.method,
            "path": request.path,
            "query": dict(request.query),
            "body": body,
            "status": status,
            "profiles": profile_count,
            "at": utc_now(),
        }
        with self._lock:
            self._log.append(entry)
            self._request_count += 1
            self._by_status[status] += 1

    def profiles_json(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {key: profile.to_control() for key, profile in self._profiles.items()}

    def profile_json(self, integration_id: str) -> dict[str, Any] | None:
        with self._lock:
            profile = self._profiles.get(integration_id)
            return None if profile is None else profile.to_control()

    def requests_json(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._log)

    def stats_json(self) -> dict[str, Any]:
        """Counts since the last reset: Integration API requests (by status), profile
        updates committed, profiles stored, and `parallel_conflicts`: the 409s for a
        profile another request was updating (injected 409s are not counted there).
        `in_flight`: requests being handled right now (all logged when it is 0)."""
        with self._lock:
            return {
                "requests": self._request_count,
                "by_status": {
                    str(status): count for status, count in sorted(self._by_status.items())
                },
                "profiles_updated": self._profiles_updated,
                "profiles": len(self._profiles),
                "parallel_conflicts": self._parallel_conflicts,
                "in_flight": self._in_flight,
            }
