"""Reads."""

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from destinations.models import Destination, RefusedAttribute

RECENTLY_REFUSED = timedelta(days=7)


def enabled_destination(slug: str) -> Destination | None:
    return Destination.objects.filter(slug=slug, enabled=True).first()


def recently_refused(destination: Destination | None = None) -> QuerySet[RefusedAttribute]:
    """The attributes Talon.One refused in the last week, newest first: what
    marketers need to create in Talon.One (or stop forwarding)."""
    rows = RefusedAttribute.objects.filter(last_seen_at__gte=timezone.now() - RECENTLY_REFUSED)
    if destination is not None:
        rows = rows.filter(destination=destination)
    return rows.select_related("destination").order_by("-last_seen_at")
