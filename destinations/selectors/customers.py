"""The customer view: per destination, the latest value sent to Talon.One for
each attribute of one integrationId, when, and from which event.

ProfileState already holds, per attribute, the Segment timestamp of the newest
value delivered (what delivery compares new values with). The values come from
the delivered events at those timestamps only, so the queries stay bounded
whatever the audit log's size: per destination, one ProfileState row by its
unique index and the events by event_profile (destination, user_id, status).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from destinations.models import Destination, InboundEvent, ProfileState
from destinations.services.handlers.audiences import state_key
from destinations.services.handlers.profiles import REFUSED_NOTE

AUDIENCE_PREFIX = state_key("")


@dataclass(frozen=True)
class SentValue:
    """An attribute (or audience membership) as last sent. Without its event (purged
    from the audit log after AUDIT_RETENTION_DAYS) only the time is known."""

    name: str
    timestamp: datetime  # the event's time (Segment's clock): newer values win
    event: InboundEvent | None

    @property
    def value(self) -> Any:
        if self.event is None:
            return None
        if self.event.kind == InboundEvent.Kind.AUDIENCE:
            return bool(self.event.call.get("member"))
        return self.event.attributes.get(self.name)


@dataclass
class CustomerAtDestination:
    destination: Destination
    attributes: list[SentValue] = field(default_factory=list)
    audiences: list[SentValue] = field(default_factory=list)
    deleted_at: datetime | None = None


def customer(integration_id: str) -> list[CustomerAtDestination]:
    """Every destination that delivered something for this integrationId."""
    destinations = {d.pk: d for d in Destination.objects.only("id", "name", "slug")}
    states = ProfileState.objects.filter(
        destination_id__in=list(destinations), integration_id=integration_id
    )
    found = []
    for state in states:
        if not state.attribute_timestamps and state.deleted_at is None:
            continue
        found.append(_at_destination(destinations[state.destination_id], integration_id, state))
    return sorted(found, key=lambda c: c.destination.name)


def _at_destination(
    destination: Destination, integration_id: str, state: ProfileState
) -> CustomerAtDestination:
    sent = {
        name: datetime.fromisoformat(value) for name, value in state.attribute_timestamps.items()
    }
    events = list(
        InboundEvent.objects.filter(
            destination=destination,
            user_id=integration_id,
            status=InboundEvent.Status.DELIVERED,
            kind__in=[InboundEvent.Kind.PROFILE, InboundEvent.Kind.AUDIENCE],
            timestamp__in=set(sent.values()),
        )
        .only("id", "kind", "timestamp", "attributes", "call", "notes", "delivered_at")
        .order_by("-delivered_at", "-id")
    )
    result = CustomerAtDestination(destination, deleted_at=state.deleted_at)
    for name, timestamp in sorted(sent.items()):
        if name.startswith(AUDIENCE_PREFIX):
            key = name.removeprefix(AUDIENCE_PREFIX)
            event = next((e for e in events if _changed(e, key, timestamp)), None)
            result.audiences.append(SentValue(key, timestamp, event))
        else:
            event = next((e for e in events if _carried(e, name, timestamp)), None)
            result.attributes.append(SentValue(name, timestamp, event))
    return result


def _carried(event: InboundEvent, name: str, timestamp: datetime) -> bool:
    """Whether this event's value of the attribute is what Talon.One received."""
    refused = any(
        note.get("attribute") == name and str(note.get("reason", "")).startswith(REFUSED_NOTE)
        for note in event.notes
    )
    return (
        event.kind == InboundEvent.Kind.PROFILE
        and event.timestamp == timestamp
        and name in event.attributes
        and not refused
    )


def _changed(event: InboundEvent, key: str, timestamp: datetime) -> bool:
    return (
        event.kind == InboundEvent.Kind.AUDIENCE
        and event.timestamp == timestamp
        and event.call.get("key") == key
    )
