"""Delivery: from the outbox (pending InboundEvents) to Talon.One.

One flusher per destination at a time (a lease row in the database), so no
profile ever has two requests in flight. A flush claims the profiles that are
due with all their pending rows, and hands each kind of row to its handler
(services/handlers/): profile updates, audience memberships, custom events,
deletions, in that order. The loop knows no kind: a new kind is a handler and
its registration. Handlers send through the outbox's Sender (lease, rate
limit, an attempt row per request) and settle every row.

The database is the only memory of what is due: a lost task or a killed
worker delays delivery until the lease expires and the sweeper nudges again.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Min, Q, Value
from django.db.models.functions import Concat
from django.utils import timezone

from destinations.models import DeliveryLease, Destination, InboundEvent, ProfileState
from destinations.services import refusals
from destinations.services.handlers import HANDLERS
from destinations.services.handlers.deletions import SUPERSEDED
from destinations.services.outbox import LeaseLost, Sender, finish, gave_up, lease_ttl
from integration_site.celery import app as celery_app

logger = logging.getLogger(__name__)

Status = InboundEvent.Status
FLUSH_TASK = "destinations.tasks.flush_destination"
NUDGE_WINDOW = timedelta(seconds=10)


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
        # A connection of its own, short timeouts, no retry: a broker that does not
        # answer (frozen, not down) must not hold up ingest's answer.
        with celery_app.connection_for_write(
            transport_options=settings.NUDGE_BROKER_TRANSPORT_OPTIONS
        ) as connection:
            celery_app.send_task(
                FLUSH_TASK, args=[destination_id], connection=connection, retry=False
            )
    except Exception:  # the broker is down: the sweeper will find the work in the database
        # nudged_at stays set: requests in the next NUDGE_WINDOW do not wait on the broker.
        logger.warning(
            "Could not queue a flush of destination %s; the sweeper will", destination_id
        )


def flush(destination_id: int, task_id: str = "") -> datetime | None:
    """Deliver what is due for one destination.

    Returns when pending work is next due (a time in the past means now),
    or None when nothing is pending or another flusher holds the lease.
    """
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:  # deleted or disabled since the task was queued
        return None
    holder = f"{task_id or 'direct'}:{uuid.uuid4().hex[:8]}"
    generation = _acquire_lease(destination_id, holder)
    if generation is None:
        return None
    try:
        sender = Sender(destination, task_id, holder, generation)
        deadline = timezone.now() + timedelta(seconds=settings.DELIVERY_FLUSH_SECONDS)
        while timezone.now() < deadline:
            events = claim(destination)
            if not events:
                break
            sender.new_round()
            for handler in HANDLERS:
                mine = [event for event in events if event.kind == handler.kind]
                if mine:
                    handler.deliver(sender, mine)
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


def claim(destination: Destination) -> list[InboundEvent]:
    """The due profiles (at most one bulk request's worth) with all their pending
    rows, in Segment-timestamp order. A row's attempt is counted when a request
    carries it (Sender.send), not here: a claimed row that waits counts nothing.

    A profile's pending deletion takes only the rows up to its time: later ones
    wait until it is done. Rows older than a deletion already delivered are not
    sent (they would bring the profile back)."""
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
        pending = list(
            InboundEvent.objects.filter(
                destination=destination, status=Status.PENDING, user_id__in=integration_ids
            )
            .defer("payload", "notes")
            .order_by("timestamp", "id")
        )
        deletions: dict[str, datetime] = {}
        for event in pending:
            if event.kind == InboundEvent.Kind.DELETION:
                deletions.setdefault(event.user_id, event.timestamp)
        events = [
            e for e in pending if e.user_id not in deletions or e.timestamp <= deletions[e.user_id]
        ]
        events = _after_deletions(destination, events)
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            next_attempt_at=now + lease_ttl()
        )
    return events


def _after_deletions(destination: Destination, events: list[InboundEvent]) -> list[InboundEvent]:
    """Skips (with the reason) the rows older than their profile's delivered deletion."""
    deleted = dict(
        ProfileState.objects.filter(
            destination=destination,
            integration_id__in={e.user_id for e in events},
            deleted_at__isnull=False,
        ).values_list("integration_id", "deleted_at")
    )
    if not deleted:
        return events
    older = [e for e in events if e.user_id in deleted and e.timestamp <= deleted[e.user_id]]
    for integration_id, when in deleted.items():
        finish(
            [e for e in older if e.user_id == integration_id],
            Status.SKIPPED,
            SUPERSEDED.format(when=when.isoformat()),
        )
    return [e for e in events if e not in older]


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
        reason=Concat(Value(f"{gave_up()}; last: "), "reason"),
    )


def _acquire_lease(destination_id: int, holder: str) -> int | None:
    """The lease's new generation (the fencing token of this flusher), or None
    when another flusher holds it."""
    now = timezone.now()
    DeliveryLease.objects.get_or_create(destination_id=destination_id)
    # Starting consumes the queued nudge: work arriving from now on needs a new one.
    taken = DeliveryLease.objects.filter(
        Q(expires_at__isnull=True) | Q(expires_at__lte=now), destination_id=destination_id
    ).update(
        holder=holder,
        expires_at=now + lease_ttl(),
        nudged_at=None,
        generation=F("generation") + 1,
    )
    if not taken:
        return None
    return (
        DeliveryLease.objects.filter(destination_id=destination_id, holder=holder)
        .values_list("generation", flat=True)
        .first()
    )


def redeliver(events: Iterable[InboundEvent]) -> int:
    """Queue failed (or any chosen) events again, as new: those that become a
    Talon.One call (a scrubbed profile update has nothing left to send)."""
    ids = [
        e.pk
        for e in events
        if e.kind and e.user_id and (e.kind != InboundEvent.Kind.PROFILE or e.attributes)
    ]
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
