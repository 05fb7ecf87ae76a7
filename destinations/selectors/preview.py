"""Reads of the mapping preview: received events to pick from."""

from __future__ import annotations

from django.db.models import QuerySet

from destinations.models import Destination, InboundEvent
from destinations.services.ingest import DERIVED_SUFFIX

RECENT = 10


def recent_events(destination: Destination, limit: int = RECENT) -> QuerySet[InboundEvent]:
    """The destination's newest events (newest id first: served by the primary key
    backwards), without their payloads; an identify's membership row is left out."""
    return (
        InboundEvent.objects.filter(destination=destination)
        .exclude(message_id__endswith=DERIVED_SUFFIX)
        .only("id", "type", "user_id", "received_at", "status")
        .order_by("-id")[:limit]
    )


def received_event(destination: Destination, event_id: int) -> InboundEvent | None:
    return InboundEvent.objects.filter(destination=destination, pk=event_id).only("payload").first()
