"""Delivery: from the outbox (pending InboundEvents) to Talon.One.

One flusher per destination at a time (a lease row in the database), so no
profile ever has two requests in flight. A flush claims the profiles that
are due, coalesces each profile's pending events attribute by attribute
(newest Segment timestamp wins, and never a value older than one already
delivered), sends them in bulk (or one request per profile when the rule
engine runs), records every attempt, and marks the events delivered,
rescheduled with backoff, or failed with the reason.

The database is the only memory of what is due: a lost task or a killed
worker delays delivery until the lease expires and the sweeper nudges again.
"""

from __future__ import annotations

import logging
import random
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from destinations.models import (
    DeliveryAttempt,
    DeliveryLease,
    Destination,
    InboundEvent,
    ProfileState,
)
from destinations.services import refusals
from destinations.talon_one import BULK_LIMIT, Outcome, Result, TalonOneClient
from integration_site.celery import app as celery_app

logger = logging.getLogger(__name__)

Status = InboundEvent.Status
RETRY = DeliveryAttempt.Outcome.RETRY
FLUSH_TASK = "destinations.tasks.flush_destination"
NUDGE_WINDOW = timedelta(seconds=10)
STALE_REASON = "not sent: a newer value was already delivered for {names}"
ALL_STALE_REASON = "nothing sent: every attribute is older than a value already delivered"
ALL_REFUSED_REASON = "nothing sent: Talon.One refused every attribute: {details}"
REFUSED_NOTE = "refused by Talon.One (create it there, or stop forwarding it)"
FINDING_REFUSED = "finding what Talon.One refuses"


def lease_ttl() -> timedelta:
    # Longer than the slowest single request, so a live flusher never loses it;
    # also how long a destination waits when its flusher died mid-request.
    return timedelta(
        seconds=settings.TALON_CONNECT_TIMEOUT
        + settings.TALON_READ_TIMEOUT
        + settings.DELIVERY_LEASE_MARGIN_SECONDS
    )


def nudge(destination_id: int) -> None:
    """Ask a worker to flush, unless one will anyway: a flusher holds the
    destination (it looks again for due work after releasing its lease), or a
    flush task is queued and has not started (it will see everything committed
    before now). A queued task that was lost is replaced after NUDGE_WINDOW."""
    now = timezone.now()
    lease = (
        DeliveryLease.objects.filter(destination_id=destination_id)
        .values("expires_at", "nudged_at")
        .first()
    )
    if lease and lease["expires_at"] and lease["expires_at"] > now:
        return
    if lease and lease["nudged_at"] and lease["nudged_at"] > now - NUDGE_WINDOW:
        return
    if lease is None:
        DeliveryLease.objects.get_or_create(destination_id=destination_id)
    # Of concurrent requests, one wins the right to queue the task.
    won = DeliveryLease.objects.filter(
        Q(nudged_at__isnull=True) | Q(nudged_at__lte=now - NUDGE_WINDOW),
        destination_id=destination_id,
    ).update(nudged_at=now)
    if not won:
        return
    try:
        celery_app.send_task(FLUSH_TASK, args=[destination_id])
    except Exception:  # the broker is down: the sweeper will find the work in the database
        # nudged_at stays set: requests in the next NUDGE_WINDOW do not wait on the broker.
        logger.warning(
            "Could not queue a flush of destination %s; the sweeper will", destination_id
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


@dataclass
class Entry:
    """What one profile gets in one request, and the events it came from."""

    integration_id: str
    events: list[InboundEvent] = field(default_factory=list)
    attributes: dict[str, Any] = field(default_factory=dict)
    timestamps: dict[str, datetime] = field(default_factory=dict)
    stale: dict[int, list[str]] = field(default_factory=dict)
    delivered: dict[str, str] = field(default_factory=dict)  # attribute → ISO timestamp
    refused: dict[str, str] = field(default_factory=dict)  # attribute → Talon.One's answer

    @property
    def attempt(self) -> int:
        return max(event.attempts for event in self.events)


class LeaseLost(Exception):
    """Another flusher took over the destination: send nothing more."""


def flush(destination_id: int, task_id: str = "") -> datetime | None:
    """Deliver what is due for one destination.

    Returns when pending work is next due (a time in the past means now),
    or None when nothing is pending or another flusher holds the lease.
    """
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:  # deleted or disabled since the task was queued
        return None
    holder = f"{task_id or 'direct'}:{uuid.uuid4().hex[:8]}"
    if not _acquire_lease(destination_id, holder):
        return None
    try:
        sender = _Sender(destination, task_id, holder)
        deadline = time.monotonic() + settings.DELIVERY_FLUSH_SECONDS
        while time.monotonic() < deadline:
            entries = claim(destination)
            if not entries:
                break
            sender.send(entries)
        # Keep the lease until the rate limit allows the next request, so the
        # next flusher (maybe on another worker) cannot send too early.
        sender.wait_for_rate_limit()
    except LeaseLost:
        logger.warning("Flusher of destination %s lost its lease; stopped", destination_id)
    finally:
        DeliveryLease.objects.filter(destination_id=destination_id, holder=holder).update(
            holder="", expires_at=None
        )
    return next_due(destination_id)


def next_due(destination_id: int) -> datetime | None:
    return InboundEvent.objects.filter(
        destination_id=destination_id, status=Status.PENDING
    ).aggregate(due=Min("next_attempt_at"))["due"]


def claim(destination: Destination) -> list[Entry]:
    """The due profiles (at most one bulk request's worth) with all their
    pending events, coalesced. Counts the attempt before anything is sent."""
    now = timezone.now()
    _expire(destination, now)
    due = (
        InboundEvent.objects.filter(
            destination=destination, status=Status.PENDING, next_attempt_at__lte=now
        )
        .order_by("next_attempt_at", "id")
        .values_list("user_id", flat=True)[: settings.DELIVERY_BATCH_SIZE]
    )
    integration_ids = list(dict.fromkeys(due))
    if not integration_ids:
        return []
    with transaction.atomic():
        events = list(
            InboundEvent.objects.filter(
                destination=destination, status=Status.PENDING, user_id__in=integration_ids
            )
            .defer("payload", "notes")
            .order_by("timestamp", "id")
        )
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            attempts=F("attempts") + 1, next_attempt_at=now + lease_ttl()
        )
    for event in events:
        event.attempts += 1
    delivered = _delivered_timestamps(destination, integration_ids)
    return _coalesce(events, delivered)


def _expire(destination: Destination, now: datetime) -> None:
    """Events tried for longer than the maximum age end as failed, whatever
    stopped them being settled (a worker dying mid-request every time, say)."""
    InboundEvent.objects.filter(
        destination=destination,
        status=Status.PENDING,
        attempts__gt=0,
        queued_at__lt=now - settings.DELIVERY_MAX_AGE,
    ).update(
        status=Status.FAILED,
        next_attempt_at=None,
        reason=Concat(Value(f"{_gave_up()}; last: "), "reason"),
    )


def _delivered_timestamps(
    destination: Destination, integration_ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    return dict(
        ProfileState.objects.filter(
            destination=destination, integration_id__in=list(integration_ids)
        ).values_list("integration_id", "attribute_timestamps")
    )


def _coalesce(events: list[InboundEvent], delivered: dict[str, dict[str, str]]) -> list[Entry]:
    """Events in Segment-timestamp order; per attribute the newest wins, and a
    value older than one already delivered is left out."""
    entries: dict[str, Entry] = {}
    for event in events:
        entry = entries.get(event.user_id)
        if entry is None:
            entry = entries[event.user_id] = Entry(
                event.user_id, delivered=delivered.get(event.user_id, {})
            )
        entry.events.append(event)
        for name, value in event.attributes.items():
            sent_at = entry.delivered.get(name)
            if sent_at and event.timestamp < datetime.fromisoformat(sent_at):
                entry.stale.setdefault(event.pk, []).append(name)
                continue
            entry.attributes[name] = value
            entry.timestamps[name] = event.timestamp
    return list(entries.values())


class _Sender:
    def __init__(self, destination: Destination, task_id: str, holder: str):
        self.destination = destination
        self.task_id = task_id
        self.holder = holder
        self.client = TalonOneClient(destination.base_url, destination.api_key)
        self.interval = 1.0 / destination.max_requests_per_second
        self.last_request = 0.0
        self.refused = refusals.active(destination)
        # With the rule engine, one request per profile; otherwise bulk requests.
        self.group_size = 1 if destination.run_rule_engine else BULK_LIMIT

    def wait_for_rate_limit(self) -> None:
        """Space requests by the destination's rate limit. Only the lease holder
        sends, so this spacing holds for all workers together."""
        wait = self.last_request + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request = time.monotonic()

    def send(self, entries: list[Entry]) -> None:
        """Talon.One refuses a whole update for one bad attribute or profile, and
        its error's format is not documented: a refused bulk is halved down to
        single profiles, and a refused profile's attributes are halved down to
        the ones it refuses. Everything else is delivered."""
        _finish(_events(e for e in entries if not e.attributes), Status.SKIPPED, ALL_STALE_REASON)
        queue = _chunks([entry for entry in entries if entry.attributes], self.group_size)
        while queue:
            group = self._leave_out_refused(queue.pop(0))
            if not group:
                continue
            result = self._update({e.integration_id: e.attributes for e in group})
            if result.outcome is Outcome.PERMANENT and result.status in (400, 413):
                if len(group) > 1:
                    self._record(group, result, RETRY, "split in halves, resent")
                    half = len(group) // 2
                    queue[:0] = [group[:half], group[half:]]
                    continue
                if result.status == 400:
                    if self._isolate(group[0], result):
                        # The rest now leaves those attributes out: regroup into full requests.
                        queue = _chunks([e for g in queue for e in g], self.group_size)
                    continue
            self._settle(group, result)

    def _update(self, profiles: dict[str, dict[str, Any]]) -> Result:
        self._request()
        if self.destination.run_rule_engine:
            ((integration_id, attributes),) = profiles.items()
            return self.client.update_profile(integration_id, attributes, run_rule_engine=True)
        return self.client.update_profiles(profiles)

    def _leave_out_refused(self, group: list[Entry]) -> list[Entry]:
        """Leaves out the attributes Talon.One refused recently; a profile left
        with nothing to send fails with the reason."""
        counts: dict[str, int] = {}
        kept, emptied = [], []
        for entry in group:
            names = [name for name in entry.attributes if name in self.refused]
            for name in names:
                entry.refused[name] = self.refused[name]
                del entry.attributes[name]
                entry.timestamps.pop(name, None)
                counts[name] = counts.get(name, 0) + _carrying(entry, name)
            (kept if entry.attributes else emptied).append(entry)
        if counts:
            refusals.count(self.destination, counts)
        _fail_refused(emptied)
        return kept

    def _isolate(self, entry: Entry, first: Result) -> bool:
        """One profile's update was refused (400): send halves of its attributes
        until each refused one is alone, delivering the rest. Returns whether
        attributes were found refused (then remembered for the destination)."""
        self._record([entry], first, DeliveryAttempt.Outcome.RETRY, FINDING_REFUSED)
        names = sorted(entry.attributes)
        refused: dict[str, str] = {}
        accepted: list[str] = []
        if len(names) == 1:
            refused[names[0]] = first.summary()
        else:
            stack = [names[len(names) // 2 :], names[: len(names) // 2]]
            while stack:
                subset = stack.pop()
                result = self._update(
                    {entry.integration_id: {name: entry.attributes[name] for name in subset}}
                )
                if result.outcome is Outcome.SUCCESS:
                    note = f"{len(subset)} of {len(names)} attributes accepted"
                    self._record([entry], result, DeliveryAttempt.Outcome.SUCCESS, note)
                    accepted.extend(subset)
                elif result.outcome is Outcome.PERMANENT and result.status == 400:
                    if len(subset) > 1:
                        self._record([entry], result, RETRY, FINDING_REFUSED)
                        stack.extend([subset[len(subset) // 2 :], subset[: len(subset) // 2]])
                    else:
                        note = f"attribute {subset[0]} refused"
                        self._record([entry], result, DeliveryAttempt.Outcome.FAILED, note)
                        refused[subset[0]] = result.summary()
                else:
                    self._settle([entry], result)
                    return False
        if not accepted and not self._profile_accepted(entry, first):
            return False
        for name, message in refused.items():
            carrying = [e for e in entry.events if name in e.attributes]
            refusals.record(
                self.destination,
                name,
                message,
                example_value=entry.attributes[name],
                example_event_id=carrying[-1].pk if carrying else None,
                events=len(carrying),
            )
            entry.refused[name] = message
            del entry.attributes[name]
            entry.timestamps.pop(name, None)
        self.refused.update(refused)
        if entry.attributes:
            _mark_delivered(self.destination, [entry], timezone.now())
        else:
            _fail_refused([entry])
        return True

    def _profile_accepted(self, entry: Entry, first: Result) -> bool:
        """Every attribute was refused: is it the profile itself? An update with no
        attributes tells, so that one bad profile never marks good attributes refused."""
        result = self._update({entry.integration_id: {}})
        if result.outcome is Outcome.SUCCESS:
            note = "the profile itself is accepted: the attributes are refused"
            self._record([entry], result, DeliveryAttempt.Outcome.SUCCESS, note)
            return True
        if result.outcome is Outcome.PERMANENT:
            note = "the profile itself is refused"
            self._record([entry], result, DeliveryAttempt.Outcome.FAILED, note)
            _finish(entry.events, Status.FAILED, first.summary())
        else:
            self._settle([entry], result)
        return False

    def _request(self) -> None:
        """Before each request: still the holder, and within the rate limit."""
        renewed = DeliveryLease.objects.filter(
            destination_id=self.destination.pk, holder=self.holder
        ).update(expires_at=timezone.now() + lease_ttl())
        if not renewed:
            raise LeaseLost
        self.wait_for_rate_limit()

    def _settle(self, entries: list[Entry], result: Result) -> None:
        try:
            self._apply(entries, result)
        except Exception:
            # Whatever went wrong here, the events must not stay claimed in
            # silence: retry them (the request may have succeeded: upserts repeat safely).
            logger.exception("Could not settle a delivery of destination %s", self.destination.pk)
            _reschedule(
                _events(entries),
                timezone.now() + backoff(max(e.attempt for e in entries)),
                f"retrying: internal error after {result.summary() or 'the request'}",
            )

    def _apply(self, entries: list[Entry], result: Result) -> None:
        now = timezone.now()
        events = _events(entries)
        if result.outcome is Outcome.SUCCESS:
            self._record(entries, result, DeliveryAttempt.Outcome.SUCCESS)
            _mark_delivered(self.destination, entries, now)
            return
        if result.outcome is Outcome.PERMANENT:
            self._record(entries, result, DeliveryAttempt.Outcome.FAILED)
            _finish(events, Status.FAILED, result.summary())
            return
        # Each event has its own maximum age, counted from when it was queued.
        oldest = now - settings.DELIVERY_MAX_AGE
        expired = [e for e in events if (e.queued_at or e.received_at) < oldest]
        retrying = [e for e in events if (e.queued_at or e.received_at) >= oldest]
        outcome = DeliveryAttempt.Outcome.RETRY if retrying else DeliveryAttempt.Outcome.FAILED
        self._record(entries, result, outcome)
        _finish(expired, Status.FAILED, f"{_gave_up()}; last: {result.summary()}")
        delay = backoff(max(e.attempt for e in entries), result.retry_after)
        _reschedule(retrying, now + delay, f"retrying: {result.summary()}")

    def _record(self, entries: list[Entry], result: Result, outcome: str, note: str = "") -> None:
        attempt = DeliveryAttempt.objects.create(
            destination=self.destination,
            integration_id=entries[0].integration_id if len(entries) == 1 else "",
            profile_count=len(entries),
            method=result.method,
            url=result.url,
            request_body=result.body,
            response_status=result.status,
            response_body=result.response_body,
            error="; ".join(filter(None, [result.error, note])),
            duration_ms=result.duration_ms,
            attempt_number=max(e.attempt for e in entries),
            outcome=outcome,
            task_id=self.task_id,
        )
        through = DeliveryAttempt.events.through
        through.objects.bulk_create(
            [through(deliveryattempt_id=attempt.pk, inboundevent_id=e.pk) for e in _events(entries)]
        )


def _gave_up() -> str:
    return f"gave up after {settings.DELIVERY_MAX_AGE} of retries"


def _events(entries: Iterable[Entry]) -> list[InboundEvent]:
    return [event for entry in entries for event in entry.events]


def _mark_delivered(destination: Destination, entries: list[Entry], now: datetime) -> None:
    with transaction.atomic():
        InboundEvent.objects.filter(pk__in=[e.pk for e in _events(entries)]).update(
            status=Status.DELIVERED, delivered_at=now, reason="", next_attempt_at=None
        )
        stale: dict[str, list[int]] = {}
        for entry in entries:
            for event_id, names in entry.stale.items():
                reason = STALE_REASON.format(names=", ".join(sorted(names)))
                stale.setdefault(reason, []).append(event_id)
        for reason, event_ids in stale.items():
            InboundEvent.objects.filter(pk__in=event_ids).update(reason=reason)
        _note_refused(entries)
        # Read again under lock and keep the newer timestamp per attribute: the
        # state is right even if another flusher delivered meanwhile.
        current = dict(
            ProfileState.objects.select_for_update()
            .filter(destination=destination, integration_id__in=[e.integration_id for e in entries])
            .values_list("integration_id", "attribute_timestamps")
        )
        states = []
        for entry in entries:
            merged = dict(current.get(entry.integration_id, {}))
            for name, timestamp in entry.timestamps.items():
                known = merged.get(name)
                if known is None or datetime.fromisoformat(known) <= timestamp:
                    merged[name] = timestamp.isoformat()
            states.append(
                ProfileState(
                    destination=destination,
                    integration_id=entry.integration_id,
                    attribute_timestamps=merged,
                )
            )
        ProfileState.objects.bulk_create(
            states,
            update_conflicts=True,
            unique_fields=["destination", "integration_id"],
            update_fields=["attribute_timestamps"],
        )


def _fail_refused(entries: list[Entry]) -> None:
    """Profiles whose every attribute Talon.One refused: failed, with its answers."""
    by_reason: dict[str, list[InboundEvent]] = {}
    for entry in entries:
        details = "; ".join(f"{name} ({entry.refused[name]})" for name in sorted(entry.refused))
        by_reason.setdefault(ALL_REFUSED_REASON.format(details=details), []).extend(entry.events)
    for reason, events in by_reason.items():
        _finish(events, Status.FAILED, reason[:2000])
    _note_refused(entries)


def _note_refused(entries: list[Entry]) -> None:
    """On each event, a note for every attribute of its own that Talon.One refused."""
    notes: dict[int, list[dict[str, str]]] = {}
    for entry in entries:
        for event in entry.events:
            for name in sorted(set(event.attributes) & set(entry.refused)):
                reason = f"{REFUSED_NOTE}: {entry.refused[name]}"
                notes.setdefault(event.pk, []).append({"attribute": name, "reason": reason})
    if not notes:
        return
    rows = list(InboundEvent.objects.filter(pk__in=notes).only("id", "notes"))
    for row in rows:
        row.notes = [*row.notes, *(n for n in notes[row.pk] if n not in row.notes)]
    InboundEvent.objects.bulk_update(rows, ["notes"])


def _carrying(entry: Entry, name: str) -> int:
    return sum(1 for event in entry.events if name in event.attributes)


def _chunks(entries: list[Entry], size: int) -> list[list[Entry]]:
    return [entries[i : i + size] for i in range(0, len(entries), size)]


def _finish(events: list[InboundEvent], status: str, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=status, reason=reason, next_attempt_at=None
        )


def _reschedule(events: list[InboundEvent], when: datetime, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            next_attempt_at=when, reason=reason
        )


def _acquire_lease(destination_id: int, holder: str) -> bool:
    now = timezone.now()
    DeliveryLease.objects.get_or_create(destination_id=destination_id)
    # Starting consumes the queued nudge: work arriving from now on needs a new one.
    taken = DeliveryLease.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lte=now), destination_id=destination_id
    ).update(holder=holder, expires_at=now + lease_ttl(), nudged_at=None)
    return taken == 1


def redeliver(events: Iterable[InboundEvent]) -> int:
    """Queue failed (or any chosen) identify events again, as new."""
    ids = [e.pk for e in events if e.type == "identify" and e.user_id and e.attributes]
    now = timezone.now()
    count = (
        InboundEvent.objects.filter(pk__in=ids)
        .exclude(status=Status.PENDING)
        .update(
            status=Status.PENDING,
            attempts=0,
            queued_at=now,
            next_attempt_at=now,
            reason="redelivery requested",
        )
    )
    destination_ids = set(
        InboundEvent.objects.filter(pk__in=ids).values_list("destination_id", flat=True)
    )
    # Asked to try again, perhaps after creating the attributes in Talon.One.
    refusals.retry_now(destination_ids)
    for destination_id in destination_ids:
        transaction.on_commit(lambda d=destination_id: nudge(d))
    return count


def destinations_with_due_work() -> list[int]:
    return list(
        InboundEvent.objects.filter(
            status=Status.PENDING,
            next_attempt_at__lte=timezone.now(),
            destination__enabled=True,
        )
        .values_list("destination_id", flat=True)
        .distinct()
    )
