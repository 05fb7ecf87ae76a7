"""Celery tasks: thin, idempotent, carrying ids only. The logic is in services."""

from __future__ import annotations

from celery import shared_task
from django.utils import timezone

from destinations.services import audit, catalog, delivery, nudge, shards

# Beyond this the sweeper (every few seconds) picks the work up anyway.
MAX_COUNTDOWN_SECONDS = 30


@shared_task(bind=True, acks_late=True, reject_on_worker_lost=True)
def flush_destination(self, destination_id: int, shard: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """Flush a destination: with several shards, a task per shard, each its own."""
    count = shards.shard_count()
    if shard is None and count > 1:
        for index in range(count):
            self.apply_async((destination_id, index))
        return
    if shard is not None and shard >= count:
        return  # queued before the shard count changed: the sweeper nudges the new ones
    index = shard or 0
    due = delivery.flush(
        destination_id, task_id=self.request.id or "", shard=shards.Shard(index, count)
    )
    if due is None:
        return
    wait = max(0.0, (due - timezone.now()).total_seconds())
    if wait <= MAX_COUNTDOWN_SECONDS:
        self.apply_async((destination_id, index), countdown=wait)


@shared_task
def sweep() -> None:
    """Nudge every destination with due work that no flusher holds (beat)."""
    for destination_id in delivery.destinations_with_due_work():
        nudge.nudge(destination_id)


@shared_task
def purge_audit_log() -> None:
    audit.purge_old_rows()


@shared_task
def purge_seen_messages() -> None:
    audit.purge_seen_messages()


@shared_task
def refresh_attribute_catalogs() -> None:
    """Read Talon.One's attribute catalog of every destination with a Management API key (beat)."""
    catalog.refresh_all()
