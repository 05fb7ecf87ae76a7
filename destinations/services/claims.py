"""Claiming: which pending rows a flush sends next, and the rows that end
without being sent (too old, or older than the profile's delivered deletion)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import connection, transaction
from django.db.models import QuerySet, Value
from django.db.models.functions import Concat
from django.utils import timezone

from destinations.models import Destination, InboundEvent, ProfileState
from destinations.services.handlers.deletions import SUPERSEDED
from destinations.services.outbox import finish, gave_up, lease_ttl
from destinations.services.shards import WHOLE, Shard

Status = InboundEvent.Status

# What delivery reads of a row (not the payload, nor the notes).
COLUMNS = (
    "id",
    "destination_id",
    "message_id",
    "user_id",
    "kind",
    "timestamp",
    "attributes",
    "call",
    "attempts",
    "queued_at",
    "received_at",
)


@dataclass(frozen=True)
class _Claimed:
    """A claimed row, whether it is past the maximum age, and its profile's state."""

    event: InboundEvent
    expired: bool
    deleted_at: datetime | None


def claim(destination: Destination, shard: Shard = WHOLE) -> list[InboundEvent]:
    """The shard's due profiles (at most one bulk request's worth) with all their
    pending rows, in Segment-timestamp order, each with `delivered`: its profile's
    delivered timestamps (ProfileState), read in the same statement. A row's
    attempt is counted when a request carries it (Sender.send), not here: a
    claimed row that waits counts nothing.

    A profile's pending deletion takes only the rows up to its time: later ones
    wait until it is done. Rows older than a deletion already delivered are not
    sent (they would bring the profile back). Rows tried for longer than the
    maximum age fail when claimed, whatever stopped them being settled (a worker
    dying mid-request every time, say). When every row claimed ended so, the
    next due rows are claimed."""
    while True:
        now = timezone.now()
        with transaction.atomic():
            claimed = (
                _claim_postgresql(destination, shard, now)
                if connection.vendor == "postgresql"
                else _claim_portable(destination, shard, now)
            )
            if not claimed:
                return []
            _expire([c.event for c in claimed if c.expired])
            events = _after_deletions([c for c in claimed if not c.expired])
        if events:
            return sorted(events, key=lambda e: (e.timestamp, e.pk))


# One statement: the due profiles (the shard's queryset), their pending rows up to
# a pending deletion, marked claimed, with the profile's state. The state is looked
# up per row (its unique index): a join would let the planner hash every state of
# the destination, however few profiles a claim has.
_CLAIM_SQL = """
WITH due AS ({due}),
pending AS (
    SELECT e.id, e.user_id, e.timestamp, e.kind,
           e.attempts > 0 AND coalesce(e.queued_at < %s, false) AS expired
    FROM {events} e
    WHERE e.destination_id = %s AND e.status = %s AND e.user_id IN (SELECT user_id FROM due)
),
cut AS (
    SELECT user_id, min(timestamp) AS until FROM pending
    WHERE kind = %s AND NOT expired GROUP BY user_id
),
taken AS (
    SELECT p.id, p.user_id, p.expired FROM pending p LEFT JOIN cut ON cut.user_id = p.user_id
    WHERE cut.until IS NULL OR p.timestamp <= cut.until
)
UPDATE {events} e SET next_attempt_at = %s
FROM taken
WHERE e.id = taken.id
RETURNING {columns}, taken.expired,
    (SELECT s.deleted_at FROM {states} s {state}) AS deleted_at,
    (SELECT s.attribute_timestamps FROM {states} s {state}) AS delivered
"""


def _due(destination: Destination, shard: Shard, now: datetime) -> QuerySet[InboundEvent, str]:
    return (
        shard.events(
            InboundEvent.objects.filter(
                destination=destination, status=Status.PENDING, next_attempt_at__lte=now
            )
        )
        .order_by("next_attempt_at", "id")
        .values_list("user_id", flat=True)[: settings.DELIVERY_BATCH_SIZE]
    )


def _claim_postgresql(destination: Destination, shard: Shard, now: datetime) -> list[_Claimed]:
    due_sql, due_params = _due(destination, shard, now).query.sql_with_params()
    sql = _CLAIM_SQL.format(
        due=due_sql,
        events=InboundEvent._meta.db_table,
        states=ProfileState._meta.db_table,
        columns=", ".join(f'e."{column}"' for column in COLUMNS),
        state="WHERE s.destination_id = e.destination_id AND s.integration_id = e.user_id",
    )
    params = [
        *due_params,
        now - settings.DELIVERY_MAX_AGE,
        destination.pk,
        Status.PENDING,
        InboundEvent.Kind.DELETION,
        now + lease_ttl(),
    ]
    claimed = []
    for event in InboundEvent.objects.raw(sql, params):
        # raw() converts the model's columns; the state's timestamps come as text.
        event.delivered = json.loads(event.delivered) if event.delivered else {}
        claimed.append(_Claimed(event, event.expired, event.deleted_at))
    return claimed


def _claim_portable(destination: Destination, shard: Shard, now: datetime) -> list[_Claimed]:
    """The same claim in a few ORM statements (SQLite)."""
    integration_ids = list(dict.fromkeys(_due(destination, shard, now)))
    if not integration_ids:
        return []
    pending = list(
        InboundEvent.objects.filter(
            destination=destination, status=Status.PENDING, user_id__in=integration_ids
        )
        .only(*COLUMNS)
        .order_by("timestamp", "id")
    )
    oldest = now - settings.DELIVERY_MAX_AGE
    expired = {e.pk for e in pending if e.attempts > 0 and (e.queued_at or now) < oldest}
    cut: dict[str, datetime] = {}
    for event in pending:
        if event.kind == InboundEvent.Kind.DELETION and event.pk not in expired:
            cut.setdefault(event.user_id, event.timestamp)
    taken = [e for e in pending if e.user_id not in cut or e.timestamp <= cut[e.user_id]]
    states = {
        integration_id: (deleted_at, timestamps)
        for integration_id, deleted_at, timestamps in ProfileState.objects.filter(
            destination=destination, integration_id__in=integration_ids
        ).values_list("integration_id", "deleted_at", "attribute_timestamps")
    }
    InboundEvent.objects.filter(pk__in=[e.pk for e in taken]).update(
        next_attempt_at=now + lease_ttl()
    )
    claimed = []
    for event in taken:
        deleted_at, event.delivered = states.get(event.user_id, (None, {}))
        claimed.append(_Claimed(event, event.pk in expired, deleted_at))
    return claimed


def _after_deletions(claimed: list[_Claimed]) -> list[InboundEvent]:
    """Skips (with the reason) the rows older than their profile's delivered deletion."""
    older: dict[datetime, list[InboundEvent]] = {}
    for row in claimed:
        if row.deleted_at and row.event.timestamp <= row.deleted_at:
            older.setdefault(row.deleted_at, []).append(row.event)
    for when, events in older.items():
        finish(events, Status.SKIPPED, SUPERSEDED.format(when=when.isoformat()))
    skipped = {event.pk for events in older.values() for event in events}
    return [row.event for row in claimed if row.event.pk not in skipped]


def _expire(events: list[InboundEvent]) -> None:
    """Claimed rows tried for longer than the maximum age end as failed."""
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=Status.FAILED,
            next_attempt_at=None,
            reason=Concat(Value(f"{gave_up()}; last: "), "reason"),
        )
