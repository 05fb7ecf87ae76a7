"""The nudge: ask a worker to flush a destination, at most once per window.

Ingest calls it after every commit that queued events, so it must cost the
request as little as possible; a lost nudge only delays delivery until the
sweeper (beat) nudges again.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from destinations.models import DeliveryLease
from integration_site.celery import app as celery_app

logger = logging.getLogger(__name__)

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
