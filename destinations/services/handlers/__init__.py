"""One handler per kind of Talon.One call. The delivery loop knows none of
them: it hands each kind's claimed rows to the handler registered for it, in
the order of HANDLERS (profile updates first, deletions last, so a deletion
follows every earlier call of its profile)."""

from __future__ import annotations

from typing import Protocol

from destinations.models import InboundEvent
from destinations.services.handlers.audiences import AudienceMemberships
from destinations.services.handlers.deletions import Deletions
from destinations.services.handlers.events import TrackEvents
from destinations.services.handlers.profiles import ProfileUpdates
from destinations.services.outbox import Sender


class Handler(Protocol):
    kind: str

    def deliver(self, sender: Sender, events: list[InboundEvent]) -> None:
        """Send the claimed rows of this kind and settle each one: delivered,
        failed with a reason, or rescheduled."""


HANDLERS: tuple[Handler, ...] = (
    ProfileUpdates(),
    AudienceMemberships(),
    TrackEvents(),
    Deletions(),
)
