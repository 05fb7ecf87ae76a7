"""Claiming: which pending rows a flush sends next, and the rows that end
without being sent (too old, or older than the profile's delivered deletion)."""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.db.models import Value
from django.db.models.functions import Concat
from django.utils import timezone

from destinations.models import Destination, InboundEvent, ProfileState
from destinations.services.handlers.deletions import SUPERSEDED
from destinations.services.outbox import finish, gave_up, lease_ttl
from destinations.services.shards import WHOLE, Shard

Status = InboundEvent.Status


def claim(destination: Destination, shard: Shard = WHOLE) -> list[InboundEvent]:
    """The shard's due profiles (at most one bulk request's worth) with all their
    pending rows, in Segment-timestamp order. A row's attempt is counted when a
    request carries it (Sender.send), not here: a claimed row that waits counts nothing.

    A profile's pending deletion takes only the rows up to its time: later ones
    wait until it is done. Rows older than a deletion already delivered are not
    sent (they would bring the profile back)."""
    now = timezone.now()
    _expire(destination, now)
    due = (
        shard.events(
            InboundEvent.objects.filter(
                destination=destination, status=Status.PENDING, next_attempt_at__lte=now
            )
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
