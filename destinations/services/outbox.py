"""The kind-agnostic half of delivery: what every handler uses to send.

A Sender holds the destination's lease and rate limit and records every
request; finish, retry_later and the backoff decide what becomes of the rows
(InboundEvents) a request was for. Handlers (services/handlers/) own what is
sent and how Talon.One's answer is read; the loop (services/delivery.py)
claims due rows and hands each kind to its handler.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from destinations.models import (
    DeliveryAttempt,
    DeliveryLease,
    Destination,
    InboundEvent,
    ProfileState,
)
from destinations.talon_one import Result, TalonOneClient

Status = InboundEvent.Status
Outcome = DeliveryAttempt.Outcome


class LeaseLost(Exception):
    """Another flusher took over the destination: send nothing more."""


def lease_ttl() -> timedelta:
    # Longer than the slowest single request, so a live flusher never loses it;
    # also how long a destination waits when its flusher died mid-request.
    return timedelta(
        seconds=settings.TALON_CONNECT_TIMEOUT
        + settings.TALON_READ_TIMEOUT
        + settings.DELIVERY_LEASE_MARGIN_SECONDS
    )


def backoff(attempt: int, retry_after: float | None = None) -> timedelta:
    """Exponential with jitter, at least what Talon.One asked for in Retry-After."""
    ceiling = min(
        settings.DELIVERY_BACKOFF_MAX_SECONDS,
        # The exponent is capped: 2**1024 is no float.
        settings.DELIVERY_BACKOFF_BASE_SECONDS * 2 ** min(max(0, attempt - 1), 30),
    )
    seconds = random.uniform(ceiling / 2, ceiling)
    return timedelta(seconds=max(seconds, retry_after or 0))


def gave_up() -> str:
    return f"gave up after {settings.DELIVERY_MAX_AGE} of retries"


def attempt_number(events: Iterable[InboundEvent]) -> int:
    return max(event.attempts for event in events)


class Sender:
    """Sends for one destination while holding its lease, within its rate limit,
    and records every request as a DeliveryAttempt."""

    def __init__(self, destination: Destination, task_id: str, holder: str):
        self.destination = destination
        self.task_id = task_id
        self.holder = holder
        self.client = TalonOneClient(destination.base_url, destination.api_key)
        self.interval = 1.0 / destination.max_requests_per_second
        self.last_request = 0.0

    def wait_for_rate_limit(self) -> None:
        """Space requests by the destination's rate limit. Only the lease holder
        sends, so this spacing holds for all workers together."""
        wait = self.last_request + self.interval - time.monotonic()
        if wait > 0:
            time.sleep(wait)
        self.last_request = time.monotonic()

    def send(self, request: Callable[[TalonOneClient], Result]) -> Result:
        """One request, if this flusher still holds the destination."""
        renewed = DeliveryLease.objects.filter(
            destination_id=self.destination.pk, holder=self.holder
        ).update(expires_at=timezone.now() + lease_ttl())
        if not renewed:
            raise LeaseLost
        self.wait_for_rate_limit()
        return request(self.client)

    def record(
        self,
        events: list[InboundEvent],
        result: Result,
        outcome: str,
        note: str = "",
        *,
        integration_id: str = "",
        profiles: int = 1,
    ) -> None:
        attempt = DeliveryAttempt.objects.create(
            destination=self.destination,
            integration_id=integration_id,
            profile_count=profiles,
            method=result.method,
            url=result.url,
            request_body=result.body,
            response_status=result.status,
            response_body=result.response_body,
            error="; ".join(filter(None, [result.error, note])),
            duration_ms=result.duration_ms,
            attempt_number=attempt_number(events),
            outcome=outcome,
            task_id=self.task_id,
        )
        through = DeliveryAttempt.events.through
        through.objects.bulk_create(
            [through(deliveryattempt_id=attempt.pk, inboundevent_id=e.pk) for e in events]
        )

    def retry_later(self, events: list[InboundEvent], result: Result) -> str:
        """Reschedules what Talon.One may take later (timeouts, 409, 429, 5xx) with
        backoff; each event gives up at its own maximum age. Returns the attempt's
        outcome."""
        now = timezone.now()
        oldest = now - settings.DELIVERY_MAX_AGE
        expired = [e for e in events if (e.queued_at or e.received_at) < oldest]
        retrying = [e for e in events if (e.queued_at or e.received_at) >= oldest]
        finish(expired, Status.FAILED, f"{gave_up()}; last: {result.summary()}")
        delay = backoff(attempt_number(events), result.retry_after)
        reschedule(retrying, now + delay, f"retrying: {result.summary()}")
        return Outcome.RETRY if retrying else Outcome.FAILED


def finish(events: list[InboundEvent], status: str, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=status, reason=reason, next_attempt_at=None
        )


def delivered(events: list[InboundEvent], now: datetime) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            status=Status.DELIVERED, delivered_at=now, reason="", next_attempt_at=None
        )


def reschedule(events: list[InboundEvent], when: datetime, reason: str) -> None:
    if events:
        InboundEvent.objects.filter(pk__in=[e.pk for e in events]).update(
            next_attempt_at=when, reason=reason
        )


def delivered_timestamps(
    destination: Destination, integration_ids: Iterable[str]
) -> dict[str, dict[str, str]]:
    """Per profile, the Segment timestamp of the newest value delivered per key
    (attribute names; audience memberships as "audience:<key>")."""
    return dict(
        ProfileState.objects.filter(
            destination=destination, integration_id__in=list(integration_ids)
        ).values_list("integration_id", "attribute_timestamps")
    )


def merge_timestamps(destination: Destination, timestamps: dict[str, dict[str, datetime]]) -> None:
    """Keeps the newer timestamp per key. Read again under lock: the state is right
    even if another flusher delivered meanwhile."""
    if not timestamps:
        return
    with transaction.atomic():
        current = dict(
            ProfileState.objects.select_for_update()
            .filter(destination=destination, integration_id__in=list(timestamps))
            .values_list("integration_id", "attribute_timestamps")
        )
        states = []
        for integration_id, sent in timestamps.items():
            merged = dict(current.get(integration_id, {}))
            for name, timestamp in sent.items():
                known = merged.get(name)
                if known is None or datetime.fromisoformat(known) <= timestamp:
                    merged[name] = timestamp.isoformat()
            states.append(
                ProfileState(
                    destination=destination,
                    integration_id=integration_id,
                    attribute_timestamps=merged,
                )
            )
        ProfileState.objects.bulk_create(
            states,
            update_conflicts=True,
            unique_fields=["destination", "integration_id"],
            update_fields=["attribute_timestamps"],
        )
