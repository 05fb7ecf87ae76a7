"""Retention of the audit log, and of the duplicate detection that outlives it."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent, SeenMessage


def purge_old_rows() -> tuple[int, int]:
    """Delete attempts and finished events older than AUDIT_RETENTION_DAYS.

    Pending events are kept whatever their age: they are still owed to Talon.One.
    """
    cutoff = timezone.now() - timedelta(days=settings.AUDIT_RETENTION_DAYS)
    attempts, _ = DeliveryAttempt.objects.filter(created_at__lt=cutoff).delete()
    events, _ = (
        InboundEvent.objects.filter(received_at__lt=cutoff)
        .exclude(status=InboundEvent.Status.PENDING)
        .delete()
    )
    return attempts, events


def purge_seen_messages() -> int:
    """Forget messageIds first seen more than DEDUPE_RETENTION_DAYS ago: longer than
    the audit rows are kept, so a replay of a purged event is still a duplicate."""
    cutoff = timezone.now() - timedelta(days=settings.DEDUPE_RETENTION_DAYS)
    deleted, _ = SeenMessage.objects.filter(first_seen_at__lt=cutoff).delete()
    return deleted
