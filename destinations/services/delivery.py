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
from django.db.models import F, Min, Q
from django.utils import timezone

from destinations.models import DeliveryLease, Destination, InboundEvent
from destinations.services import nudge, refusals
from destinations.services.claims import claim
from destinations.services.handlers import HANDLERS
from destinations.services.outbox import LeaseLost, Sender, lease_ttl
from destinations.services.shards import WHOLE, Shard

logger = logging.getLogger(__name__)

Status = InboundEvent.Status


def flush(destination_id: int, task_id: str = "", shard: Shard = WHOLE) -> datetime | None:
    """Deliver what is due for one shard of a destination.

    Returns when the shard's pending work is next due (a time in the past means
    now), or None when nothing is pending or another flusher holds the shard.
    """
    destination = Destination.objects.filter(pk=destination_id, enabled=True).first()
    if destination is None:  # deleted or disabled since the task was queued
        return None
    holder = f"{task_id or 'direct'}:{uuid.uuid4().hex[:8]}"
    generation = _acquire_lease(destination_id, shard, holder)
    if generation is None:
        return None
    try:
        sender = Sender(destination, task_id, holder, generation, shard.count)
        deadline = timezone.now() + timedelta(seconds=settings.DELIVERY_FLUSH_SECONDS)
        while timezone.now() < deadline:
            events = claim(destination, shard)
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
        logger.warning(
            "Flusher of destination %s (shard %s of %s) lost its lease; stopped",
            destination_id,
            shard.index,
            shard.count,
        )
    finally:
        DeliveryLease.objects.filter(destination_id=destination_id, holder=holder).update(
            holder="", expires_at=None
        )
        nudge.clear(destination_id)
    return next_due(destination_id, shard)


def next_due(destination_id: int, shard: Shard = WHOLE) -> datetime | None:
    return shard.events(
        InboundEvent.objects.filter(destination_id=destination_id, status=Status.PENDING)
    ).aggregate(due=Min("next_attempt_at"))["due"]


def _acquire_lease(destination_id: int, shard: Shard, holder: str) -> int | None:
    """The shard lease's new generation (the fencing token of this flusher), or
    None when another flusher holds it, or holds a lease of another shard count
    (the count changed: the profiles of one shard then were in another's now)."""
    now = timezone.now()
    live = Q(expires_at__gt=now)
    with transaction.atomic():
        # Acquisitions of one destination's shards, one at a time: two counts never
        # both see the other's leases free. (No key lock: ingest's inserts go on.)
        destinations = Destination.objects.select_for_update(no_key=True)
        if not destinations.filter(pk=destination_id).exists():
            return None
        DeliveryLease.objects.get_or_create(destination_id=destination_id, shard=shard.index)
        other_count = DeliveryLease.objects.filter(live, destination_id=destination_id).exclude(
            shard_count=shard.count
        )
        if other_count.exists():
            return None
        taken = (
            DeliveryLease.objects.filter(destination_id=destination_id, shard=shard.index)
            .exclude(live)
            .update(
                holder=holder,
                expires_at=now + lease_ttl(),
                shard_count=shard.count,
                generation=F("generation") + 1,
            )
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
        transaction.on_commit(lambda d=destination_id: nudge.nudge(d))
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
