"""Retention of the audit log."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from destinations.models import DeliveryAttempt, InboundEvent


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
