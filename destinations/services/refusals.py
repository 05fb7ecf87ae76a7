"""Attributes Talon.One refused: remembered per destination for a while, so
that later updates leave them out without paying to find them again, and shown
to marketers, who create them in Talon.One's Campaign Manager."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.conf import settings
from django.db.models import F
from django.utils import timezone

from destinations.models import Destination, RefusedAttribute


def active(destination: Destination) -> dict[str, str]:
    """Names to leave out of updates now, with what Talon.One answered."""
    return dict(
        RefusedAttribute.objects.filter(
            destination=destination, retry_at__gt=timezone.now()
        ).values_list("name", "message")
    )


def record(
    destination: Destination,
    name: str,
    message: str,
    *,
    example_value: Any,
    example_event_id: int | None,
    events: int,
) -> None:
    """Talon.One refused the attribute just now: leave it out until the retry time."""
    now = timezone.now()
    values = {
        "message": message,
        "example_value": example_value,
        "example_event_id": example_event_id,
        "last_seen_at": now,
        "retry_at": now + settings.REFUSED_ATTRIBUTE_RETRY,
    }
    _, created = RefusedAttribute.objects.get_or_create(
        destination=destination, name=name, defaults={**values, "event_count": events}
    )
    if not created:
        RefusedAttribute.objects.filter(destination=destination, name=name).update(
            **values, event_count=F("event_count") + events
        )


def count(destination: Destination, events_by_name: dict[str, int]) -> None:
    """Events whose value was left out because the attribute is remembered as refused."""
    now = timezone.now()
    for name, events in events_by_name.items():
        RefusedAttribute.objects.filter(destination=destination, name=name).update(
            event_count=F("event_count") + events, last_seen_at=now
        )


def retry_now(destination_ids: Iterable[int]) -> None:
    """Ask Talon.One again at the next update: the attribute rows changed, or an
    operator redelivers (perhaps after creating the attributes)."""
    RefusedAttribute.objects.filter(
        destination_id__in=list(destination_ids), retry_at__gt=timezone.now()
    ).update(retry_at=timezone.now())
