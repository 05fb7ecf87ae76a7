"""The kind-agnostic half of delivery: what every handler uses to send.

A Sender holds the destination's lease and rate limit and records every
request; finish, retry_later and the backoff decide what becomes of the rows
(InboundEvents) a request was for. Handlers (services/handlers/) own what is
sent and how Talon.One's answer is read; the loop (services/delivery.py)
claims due rows and hands each kind to its handler.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F
from django.db.models.sql import InsertQuery
from django.utils import timezone

from destinations.models import (
    DeliveryAttempt,
    DeliveryLease,
    Destination,
    InboundEvent,
    ProfileState,
)
from destinations.talon_one import Result, TalonOneClient

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome


class LeaseLost(Exception):
    """Another flusher took over the destination: send nothing more."""


def lease_ttl() -> timedelta:
    # Longer than the slowest single request, so a live flusher never loses it;
    # also how long a destination waits when its flusher died mid-request.
    return timedelta(
        seconds=settings.TALON_CONNECT_TIMEOUT
        + settings.TALON_READ_TIMEOUT
        + settings.DELIVERY_LEASE_MARGIN_SECONDS
    )


def backoff(attempt: int, retry_after: float | None = None) -> timedelta:
    """Exponential with jitter, at least what Talon.One asked for in Retry-After."""
    ceiling = min(
        settings.DELIVERY_BACKOFF_MAX_SECONDS,
        # The exponent is capped: 2**1024 is no float.
        settings.DELIVERY_BACKOFF_BASE_SECONDS * 2 ** min(max(0, attempt - 1), 30),
    )
    seconds = random.uniform(ceiling / 2, ceiling)
    return timedelta(seconds=max(seconds, retry_after or 0))


def group_by(
    events: Iterable[InboundEvent], key: Callable[[InboundEvent], str]
) -> dict[str, list[InboundEvent]]:
    """Events by key (a profile, an audience), each group in the claimed order."""
    groups: dict[str, list[InboundEvent]] = {}
    for event in events:
        groups.setdefault(key(event), []).append(event)
    return groups


def gave_up() -> str:
    return f"gave up after {settings.DELIVERY_MAX_AGE} of retries"


def profile_attempts(events: Iterable[InboundEvent]) -> dict[str, int]:
    """Per profile, the attempt its send is: the fewest attempts among its rows. A
    row that arrived since the last failure starts the count again; it never
    inherits the count (and the backoff) of an older row it is sent with."""
    fewest: dict[str, int] = {}
    for event in events:
        fewest[event.user_id] = min(fewest.get(event.user_id, event.attempts), event.attempts)
    return fewest


def _answer_error(result: Result) -> str:
    """The transport error, or Talon.One's status and message for any answer that
    is not a 2xx: the audit log shows it for 400, 401 and 503 alike."""
    if result.status is not None and 200 <= result.status < 300:
        return result.error
    return result.summary()


def attempt_number(events: Iterable[InboundEvent]) -> int:
    """A request's attempt number: the highest of its profiles' attempts."""
    return max(profile_attempts(events).values())


def back_off(events: Sequence[InboundEvent], reason: str, retry_after: float | None = None) -> None:
    """Reschedules each profile's rows by its own attempt (profile_attempts)."""
    now = timezone.now()
    delays: dict[int, timedelta] = {}
    when = {
        integration_id: now + delays.setdefault(attempt, backoff(attempt, retry_after))
        for integration_id, attempt in profile_attempts(events).items()
    }
    by_time: dict[datetime, list[InboundEvent]] = {}
    for event in events:
        by_time.setdefault(when[event.user_id], []).append(event)
    for at, group in by_time.items():
        reschedule(group, at, reason)


def count_attempt(events: Sequence[InboundEvent]) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            attempts=F("attempts") + 1
        )
        for event in events:
            event.attempts += 1


class Sender:
    """Sends for one destination while holding its lease, within its rate limit,
    and records every request as a DeliveryAttempt."""

    def __init__(
        self,
        destination: Destination,
        task_id: str,
        holder: str,
        generation: int,
        shard_count: int = 1,
    ):
        self.destination = destination
        self.task_id = task_id
        self.holder = holder
        self.generation = generation
        self.client = TalonOneClient(destination.base_url, destination.api_key)
        # Each shard's flusher sends its share of the destination's rate limit.
        self.interval = shard_count / destination.max_requests_per_second
        self.last_request = 0.0
        # Rows whose attempt this round of the flush already counted: the halvings
        # that find a refused attribute are one attempt, not one each.
        self.counted: set[int] = set()

    def new_round(self) -> None:
        """Freshly claimed rows: their next send is a new attempt."""
        self.counted.clear()

    def wait_for_rate_limit(self) -> None:
        """Space requests by the destination's rate limit. Only the lease holder
        sends, so this spacing holds for all workers together."""
        wait = self.last_request + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request = time.monotonic()

    def send(
        self, events: Sequence[InboundEvent], request: Callable[[TalonOneClient], Result]
    ) -> Result:
        """One request for these rows, if this flusher still holds the destination.

        Any wait comes first; then, with nothing between it and the request, the
        lease is renewed only if it still has this holder and generation (a worker
        paused past its lease meanwhile finds another generation and sends
        nothing), in the transaction that counts the rows' attempt."""
        self.wait_for_rate_limit()
        uncounted = [event for event in events if event.pk not in self.counted]
        if not self._renew_and_count(uncounted):
            raise LeaseLost
        self.counted.update(event.pk for event in uncounted)
        return request(self.client)

    def _renew_and_count(self, events: list[InboundEvent]) -> bool:
        """Renews the lease if this flusher still holds it and then, atomically
        with it, counts the rows' attempt. Returns whether it held the lease."""
        expires_at = timezone.now() + lease_ttl()
        if connection.vendor != "postgresql":
            with transaction.atomic():
                renewed = DeliveryLease.objects.filter(
                    destination_id=self.destination.pk,
                    holder=self.holder,
                    generation=self.generation,
                ).update(expires_at=expires_at)
                if renewed:
                    count_attempt(events)
            return bool(renewed)
        with connection.cursor() as cursor:
            cursor.execute(
                _RENEW_AND_COUNT_SQL.format(
                    leases=DeliveryLease._meta.db_table, events=InboundEvent._meta.db_table
                ),
                [
                    expires_at,
                    self.destination.pk,
                    self.holder,
                    self.generation,
                    [event.pk for event in events],
                ],
            )
            (renewed,) = cursor.fetchone()
        if renewed:
            for event in events:
                event.attempts += 1
        return bool(renewed)

    def record(
        self,
        events: list[InboundEvent],
        result: Result,
        outcome: str,
        note: str = "",
        *,
        integration_id: str = "",
        profiles: int = 1,
    ) -> None:
        attempt = DeliveryAttempt(
            destination=self.destination,
            integration_id=integration_id,
            profile_count=profiles,
            method=result.method,
            url=result.url,
            request_body=result.body,
            response_status=result.status,
            response_body=result.response_body,
            error="; ".join(filter(None, [_answer_error(result), note])),
            duration_ms=result.duration_ms,
            attempt_number=attempt_number(events),
            outcome=outcome,
            task_id=self.task_id,
        )
        _insert_attempt(attempt, [event.pk for event in events])

    def retry_later(
        self,
        events: list[InboundEvent],
        result: Result,
        waiting: Sequence[InboundEvent] = (),
        waiting_reason: str = "",
    ) -> str:
        """Reschedules what Talon.One may take later (timeouts, 409, 429, 5xx) with
        each profile's backoff; each event gives up at its own maximum age. Rows
        waiting behind the request (a profile's later custom events) count it as an
        attempt of theirs and wait with their profile, which waits by its fewest
        attempts: a row that arrived since the last failure restarts the backoff.
        Returns the attempt's outcome."""
        oldest = timezone.now() - settings.DELIVERY_MAX_AGE
        expired = [e for e in events if (e.queued_at or e.received_at) < oldest]
        retrying = [e for e in events if (e.queued_at or e.received_at) >= oldest]
        finish(expired, Status.FAILED, f"{gave_up()}; last: {result.summary()}")
        count_attempt(waiting)
        back_off([*retrying, *waiting], f"retrying: {result.summary()}", result.retry_after)
        if waiting:
            InboundEvent.objects.filter(pk__in=[e.pk for e in waiting]).update(
                reason=waiting_reason
            )
        return Outcome.RETRY if retrying else Outcome.FAILED


# The lease renewed and the attempt counted in one statement: the count's update
# runs only if the lease's found this flusher (its holder and generation).
_RENEW_AND_COUNT_SQL = """
WITH lease AS (
    UPDATE {leases} SET expires_at = %s
    WHERE destination_id = %s AND holder = %s AND generation = %s
    RETURNING 1
), counted AS (
    UPDATE {events} SET attempts = attempts + 1
    WHERE id = ANY(%s) AND EXISTS (SELECT FROM lease)
)
SELECT count(*) FROM lease
"""


def _insert_attempt(attempt: DeliveryAttempt, event_ids: list[int]) -> None:
    """The attempt row and its links to the events: one statement on PostgreSQL,
    two elsewhere, never a model instance per link."""
    links = DeliveryAttempt.events.through._meta.db_table
    if connection.vendor != "postgresql":
        attempt.save(force_insert=True)
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {links} (deliveryattempt_id, inboundevent_id) "  # noqa: S608
                "SELECT %s, value FROM json_each(%s)",
                [attempt.pk, json.dumps(event_ids)],
            )
        return
    query = InsertQuery(DeliveryAttempt)
    query.insert_values(
        [field for field in DeliveryAttempt._meta.concrete_fields if not field.primary_key],
        [attempt],
    )
    [(insert, params)] = query.get_compiler(connection=connection).as_sql()
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH attempt AS ({insert} RETURNING id) "  # noqa: S608
            f"INSERT INTO {links} (deliveryattempt_id, inboundevent_id) "
            "SELECT attempt.id, unnest(%s::bigint[]) FROM attempt",
            [*params, event_ids],
        )


def finish(events: list[InboundEvent], status: str, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=status, reason=reason, next_attempt_at=None
        )


def delivered(events: list[InboundEvent], now: datetime) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=Status.DELIVERED, delivered_at=now, reason="", next_attempt_at=None
        )


def reschedule(events: list[InboundEvent], when: datetime, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            next_attempt_at=when, reason=reason
        )


def delivered_timestamps(
    destination: Destination, integration_ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Per profile, the Segment timestamp of the newest value delivered per key
    (attribute names; audience memberships as "audience:<key>")."""
    return dict(
        ProfileState.objects.filter(
            destination=destination, integration_id__in=list(integration_ids)
        ).values_list("integration_id", "attribute_timestamps")
    )


def merge_timestamps(destination: Destination, timestamps: dict[str, dict[str, datetime]]) -> None:
    """Keeps the newer timestamp per key, compared as instants: atomic against
    another flusher delivering the same profile meanwhile (newest wins)."""
    if not timestamps:
        return
    if connection.vendor == "postgresql":
        _merge_timestamps_postgresql(destination, timestamps)
    else:
        _merge_timestamps_portable(destination, timestamps)


def _merge_timestamps_portable(
    destination: Destination, timestamps: dict[str, dict[str, datetime]]
) -> None:
    """The same merge in a few ORM statements (SQLite)."""
    with transaction.atomic():
        current = dict(
            ProfileState.objects.select_for_update()
            .filter(destination=destination, integration_id__in=list(timestamps))
            .values_list("integration_id", "attribute_timestamps")
        )
        states = []
        for integration_id, sent in timestamps.items():
            merged = dict(current.get(integration_id, {}))
            for name, timestamp in sent.items():
                known = merged.get(name)
                if known is None or datetime.fromisoformat(known) <= timestamp:
                    merged[name] = timestamp.isoformat()
            states.append(
                ProfileState(
                    destination=destination,
                    integration_id=integration_id,
                    attribute_timestamps=merged,
                )
            )
        ProfileState.objects.bulk_create(
            states,
            update_conflicts=True,
            unique_fields=["destination", "integration_id"],
            update_fields=["attribute_timestamps"],
        )


# One upsert: per profile of the JSON parameter, per key the newer of the stored
# and the sent timestamp (the sent one on a tie). ON CONFLICT DO UPDATE works on
# the row's newest version under its lock, so concurrent merges lose nothing.
_MERGE_SQL = """
INSERT INTO {states} AS s (destination_id, integration_id, attribute_timestamps)
SELECT %s, sent.key, sent.value FROM jsonb_each(%s::jsonb) AS sent
ON CONFLICT (destination_id, integration_id) DO UPDATE SET attribute_timestamps = (
    SELECT coalesce(jsonb_object_agg(
        key,
        CASE WHEN old.value IS NULL THEN new.value
             WHEN new.value IS NULL THEN old.value
             WHEN (new.value #>> '{{}}')::timestamptz >= (old.value #>> '{{}}')::timestamptz
             THEN new.value
             ELSE old.value END
    ), '{{}}'::jsonb)
    FROM jsonb_each(s.attribute_timestamps) AS old
    FULL JOIN jsonb_each(excluded.attribute_timestamps) AS new USING (key)
)
"""


def _merge_timestamps_postgresql(
    destination: Destination, timestamps: dict[str, dict[str, datetime]]
) -> None:
    sent = {
        integration_id: {name: at.isoformat() for name, at in keys.items()}
        for integration_id, keys in timestamps.items()
    }
    with connection.cursor() as cursor:
        cursor.execute(
            _MERGE_SQL.format(states=ProfileState._meta.db_table),
            [destination.pk, json.dumps(sent)],
        )
