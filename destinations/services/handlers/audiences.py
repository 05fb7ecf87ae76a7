"""Engage audiences as Talon.One audiences: each created once with
POST /v2/audiences (its id remembered), memberships added and removed with
POST /v2/customer_audiences, up to 1,000 changes a request. Per profile and
audience the newest entry or exit (by Segment timestamp) wins, also against
one already delivered."""

from __future__ import annotations

from datetime import datetime

from django.db import transaction
from django.db.models import F
from django.utils import timezone

from destinations.models import InboundEvent, TalonAudience
from destinations.services import outbox
from destinations.services.outbox import Outcome, Sender, Status
from destinations.talon_one import BULK_LIMIT, Result
from destinations.talon_one import Outcome as Answer

STALE_REASON = "not sent: a newer entry or exit of this audience was already delivered"
CREATE_FAILED = "could not create the audience {key} in Talon.One: {reason}"
ALREADY_EXISTS = (
    "Talon.One already has an audience with this integrationId ({integration_id}), not "
    "created by this destination: set its Talon.One id on the audience in the admin"
)


def state_key(audience_key: str) -> str:
    """The audience's key among a profile's delivered timestamps."""
    return f"audience:{audience_key}"


class AudienceMemberships:
    kind = InboundEvent.Kind.AUDIENCE

    def deliver(self, sender: Sender, events: list[InboundEvent]) -> None:
        ready = []
        for key, group in outbox.group_by(events, lambda e: e.call["key"]).items():
            audience = self._audience(sender, key, group)
            if audience is not None:
                ready.extend((event, audience) for event in group)
        self._send_changes(sender, ready)

    def _audience(
        self, sender: Sender, key: str, events: list[InboundEvent]
    ) -> TalonAudience | None:
        """The audience with its Talon.One id, created there on first sight."""
        audience, _ = TalonAudience.objects.get_or_create(
            destination=sender.destination,
            key=key,
            defaults={"computation_id": events[-1].call.get("computation_id", "")},
        )
        if audience.talon_id is not None:
            return audience
        # Every shard's flusher meets a new audience in its first claim: one creates
        # it while the others wait on its row, then use its id (a second creation
        # would get 409).
        with transaction.atomic():
            audience = TalonAudience.objects.select_for_update().get(pk=audience.pk)
            if audience.talon_id is not None:
                return audience
            return self._create(sender, audience, events)

    def _create(
        self, sender: Sender, audience: TalonAudience, events: list[InboundEvent]
    ) -> TalonAudience | None:
        key = audience.key
        integration_id = creation_id(audience)
        result = sender.send(events, lambda client: client.create_audience(key, integration_id))
        talon_id = result.data.get("id") if isinstance(result.data, dict) else None
        if result.outcome is Answer.SUCCESS and type(talon_id) is int:
            audience.talon_id = talon_id
            audience.save(update_fields=["talon_id"])
            sender.record(events, result, Outcome.SUCCESS, f"audience {key} created")
            return audience
        # A 409 is retried elsewhere (a parallel update); here it says the
        # integrationId is taken, which no retry changes.
        if result.outcome is Answer.RETRY and result.status != 409:
            sender.record(events, result, sender.retry_later(events, result))
            return None
        if result.status == 409:
            reason = ALREADY_EXISTS.format(integration_id=integration_id)
        elif result.outcome is Answer.SUCCESS:
            reason = "no audience id in the answer"
        else:
            reason = result.summary()
        sender.record(events, result, Outcome.FAILED)
        outbox.finish(events, Status.FAILED, CREATE_FAILED.format(key=key, reason=reason))
        return None

    def _send_changes(
        self, sender: Sender, ready: list[tuple[InboundEvent, TalonAudience]]
    ) -> None:
        latest: dict[tuple[str, str], _Change] = {}
        stale = []
        for event, audience in ready:  # claimed in Segment-timestamp order
            # The claim read each row's profile's delivered timestamps with it.
            sent_at = event.delivered.get(state_key(audience.key))
            if sent_at and event.timestamp < datetime.fromisoformat(sent_at):
                stale.append(event)
                continue
            change = latest.setdefault((event.user_id, audience.key), _Change(audience))
            change.events.append(event)
        outbox.delivered(stale, timezone.now())
        InboundEvent.objects.filter(pk__in=[e.pk for e in stale]).update(reason=STALE_REASON)
        changes = list(latest.values())
        queue = [changes[i : i + BULK_LIMIT] for i in range(0, len(changes), BULK_LIMIT)]
        while queue:
            group = queue.pop(0)
            result = sender.send(
                [event for change in group for event in change.events],
                lambda client, group=group: client.update_audiences([c.body() for c in group]),
            )
            if (
                result.outcome is Answer.PERMANENT
                and result.status in (400, 413)
                and len(group) > 1
            ):
                _record(sender, group, result, Outcome.RETRY, "split in halves, resent")
                half = len(group) // 2
                queue[:0] = [group[:half], group[half:]]
            else:
                self._settle(sender, group, result)

    def _settle(self, sender: Sender, group: list[_Change], result: Result) -> None:
        events = [event for change in group for event in change.events]
        if result.outcome is Answer.SUCCESS:
            _record(sender, group, result, Outcome.SUCCESS)
            counts: dict[tuple[int, str], int] = {}
            for change in group:
                counter = "members_added" if change.member else "members_removed"
                counts[(change.audience.pk, counter)] = (
                    counts.get((change.audience.pk, counter), 0) + 1
                )
            with transaction.atomic():
                for (audience_id, counter), count in counts.items():
                    TalonAudience.objects.filter(pk=audience_id).update(
                        **{counter: F(counter) + count}
                    )
                outbox.merge_timestamps(sender.destination, _timestamps(group))
                outbox.delivered(events, timezone.now())
        elif result.outcome is Answer.PERMANENT:
            _record(sender, group, result, Outcome.FAILED)
            outbox.finish(events, Status.FAILED, result.summary())
        else:
            _record(sender, group, result, sender.retry_later(events, result))


class _Change:
    """One profile's newest entry or exit of one audience, and the events it stands for."""

    def __init__(self, audience: TalonAudience):
        self.audience = audience
        self.events: list[InboundEvent] = []

    @property
    def newest(self) -> InboundEvent:
        return self.events[-1]

    @property
    def member(self) -> bool:
        return bool(self.newest.call["member"])

    def body(self) -> dict[str, object]:
        return change_body(self.audience, self.newest)


def creation_id(audience: TalonAudience) -> str:
    """The integrationId an audience is created with in Talon.One."""
    return audience.computation_id or audience.key


def change_body(audience: TalonAudience, event: InboundEvent) -> dict[str, object]:
    """One membership change of a POST /v2/customer_audiences (also shown by the preview)."""
    return {
        "action": "add" if event.call["member"] else "delete",
        "profileIntegrationId": event.user_id,
        "audienceId": audience.talon_id,
    }


def _timestamps(group: list[_Change]) -> dict[str, dict[str, datetime]]:
    timestamps: dict[str, dict[str, datetime]] = {}
    for change in group:
        timestamps.setdefault(change.newest.user_id, {})[state_key(change.audience.key)] = (
            change.newest.timestamp
        )
    return timestamps


def _record(
    sender: Sender, group: list[_Change], result: Result, outcome: str, note: str = ""
) -> None:
    events = [event for change in group for event in change.events]
    profiles = {change.newest.user_id for change in group}
    sender.record(
        events,
        result,
        outcome,
        note,
        integration_id=next(iter(profiles)) if len(profiles) == 1 else "",
        profiles=len(profiles),
    )
