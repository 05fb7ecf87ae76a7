"""Segment delete calls → DELETE /v1/customer_data/{integrationId}.

Handled after every other kind in a flush, so the profile's earlier calls were
sent first; whatever of them is still pending (waiting for a retry) is not sent
after the deletion, and a later-arriving older call is not sent either
(ProfileState.deleted_at): nothing brings the profile back. A 404 (no such
customer) counts as done. Then the person's traits are scrubbed from the
audit log, leaving a tombstone that says when and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import transaction
from django.utils import timezone

from destinations.models import (
    DeliveryAttempt,
    Destination,
    InboundEvent,
    ProfileState,
    RefusedAttribute,
)
from destinations.services import outbox
from destinations.services.outbox import Outcome, Sender, Status
from destinations.talon_one import Outcome as Answer

SUPERSEDED = "not sent: the profile was deleted (Segment delete of {when})"
TOMBSTONE = "scrubbed {now}: the customer's data was deleted (Segment delete of {when})"


class Deletions:
    kind = InboundEvent.Kind.DELETION

    def deliver(self, sender: Sender, events: list[InboundEvent]) -> None:
        for integration_id, group in outbox.group_by(events, lambda e: e.user_id).items():
            result = sender.send(
                group, lambda client, i=integration_id: client.delete_customer_data(i)
            )
            if result.outcome is Answer.SUCCESS or result.status == 404:
                note = "no such customer in Talon.One" if result.status == 404 else ""
                sender.record(group, result, Outcome.SUCCESS, note, integration_id=integration_id)
                deleted(sender.destination, integration_id, group)
            elif result.outcome is Answer.PERMANENT:
                sender.record(group, result, Outcome.FAILED, integration_id=integration_id)
                outbox.finish(group, Status.FAILED, result.summary())
            else:
                outcome = sender.retry_later(group, result)
                sender.record(group, result, outcome, integration_id=integration_id)


@transaction.atomic
def deleted(destination: Destination, integration_id: str, events: list[InboundEvent]) -> None:
    """The profile is gone from Talon.One: settle, remember, scrub."""
    when = max(event.timestamp for event in events)
    outbox.delivered(events, timezone.now())
    earlier = InboundEvent.objects.filter(
        destination=destination,
        user_id=integration_id,
        status=Status.PENDING,
        timestamp__lte=when,
    ).exclude(pk__in=[event.pk for event in events])
    earlier.update(
        status=Status.SKIPPED,
        reason=SUPERSEDED.format(when=when.isoformat()),
        next_attempt_at=None,
    )
    state, _ = ProfileState.objects.select_for_update().get_or_create(
        destination=destination, integration_id=integration_id
    )
    state.attribute_timestamps = {}
    state.deleted_at = max(filter(None, [state.deleted_at, when]))
    state.save(update_fields=["attribute_timestamps", "deleted_at"])
    scrub(destination, integration_id, when)


def scrub(destination: Destination, integration_id: str, when: datetime) -> None:
    """Removes the person's traits from the audit log: the payloads, attributes and
    notes of their events up to the deletion, and their part of every request body
    and single-profile answer. Newer events (a new profile) are kept."""
    now = timezone.now().isoformat(timespec="seconds")
    tombstone = TOMBSTONE.format(now=now, when=when.isoformat())
    rows = list(
        InboundEvent.objects.filter(
            destination=destination, user_id=integration_id, timestamp__lte=when
        )
        .exclude(kind=InboundEvent.Kind.DELETION)
        .only("id", "type", "message_id")
    )
    for row in rows:
        row.payload = {
            "type": row.type,
            "messageId": row.message_id,
            "userId": integration_id,
            "scrubbed": tombstone,
        }
        row.attributes = {}
        row.call = {}
        row.notes = [{"attribute": "*", "reason": tombstone}]
    InboundEvent.objects.bulk_update(rows, ["payload", "attributes", "call", "notes"])
    attempts = DeliveryAttempt.objects.filter(events__in=rows).distinct()
    for attempt in attempts:
        if attempt.integration_id == integration_id:
            attempt.request_body = {"scrubbed": tombstone}
            attempt.response_body = ""
        else:
            attempt.request_body = _without(attempt.request_body, integration_id)
    DeliveryAttempt.objects.bulk_update(attempts, ["request_body", "response_body"])
    RefusedAttribute.objects.filter(example_event__in=rows).update(example_value=None)


def _without(body: Any, integration_id: str) -> Any:
    """A bulk request body with the person's entries replaced by a marker."""
    if not isinstance(body, dict):
        return body
    marker = {"integrationId": integration_id, "scrubbed": True}
    scrubbed = dict(body)
    if isinstance(body.get("customerProfiles"), list):
        scrubbed["customerProfiles"] = [
            marker if isinstance(p, dict) and p.get("integrationId") == integration_id else p
            for p in body["customerProfiles"]
        ]
    if isinstance(body.get("data"), list):
        scrubbed["data"] = [
            marker if isinstance(c, dict) and c.get("profileIntegrationId") == integration_id else c
            for c in body["data"]
        ]
    return scrubbed
