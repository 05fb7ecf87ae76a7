"""Track events → Talon.One custom events: POST /v2/events, one request an
event, each profile's events in Segment-timestamp order. When one waits for a
retry, the profile's later events wait behind it. The failed request counts as
an attempt of theirs too, and the profile waits by the fewest attempts among
them: an event that arrived since the last failure restarts the backoff. An
event settled is progress: the count of those behind it starts again, so the
backoff follows the profile's consecutive failures, not the length of its queue."""

from __future__ import annotations

from django.utils import timezone

from destinations.models import InboundEvent
from destinations.services import outbox
from destinations.services.outbox import Outcome, Sender, Status
from destinations.talon_one import Outcome as Answer
from destinations.talon_one import Result, TalonOneClient

WAITING = "waiting: an earlier event of this profile is retried first"


class TrackEvents:
    kind = InboundEvent.Kind.EVENT

    def deliver(self, sender: Sender, events: list[InboundEvent]) -> None:
        # Claimed in Segment-timestamp order, which each profile's group keeps.
        by_profile = outbox.group_by(events, lambda e: e.user_id)
        for integration_id, profile_events in by_profile.items():
            for index, event in enumerate(profile_events):
                result = sender.send([event], lambda client, event=event: track(client, event))
                later = profile_events[index + 1 :]
                if result.outcome is Answer.SUCCESS:
                    sender.record([event], result, Outcome.SUCCESS, integration_id=integration_id)
                    outbox.delivered([event], timezone.now())
                    _start_count_again(later)
                    continue
                if result.outcome is Answer.PERMANENT:
                    sender.record([event], result, Outcome.FAILED, integration_id=integration_id)
                    outbox.finish([event], Status.FAILED, result.summary())
                    _start_count_again(later)
                    continue
                outcome = sender.retry_later([event], result, later, WAITING)
                sender.record([event], result, outcome, integration_id=integration_id)
                break


def track(client: TalonOneClient, event: InboundEvent) -> Result:
    """The custom event a row becomes (also what the mapping preview shows)."""
    return client.track_event(event.user_id, event.call["type"], event.attributes)


def _start_count_again(events: list[InboundEvent]) -> None:
    """The rows behind a settled one: the failures they waited through are over."""
    counted = [event for event in events if event.attempts]
    if counted:
        InboundEvent.objects.filter(pk__in=[e.pk for e in counted]).update(attempts=0)
        for event in counted:
            event.attempts = 0
