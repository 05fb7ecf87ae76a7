"""Retention of the audit log: old rows go, pending events never do."""

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations import tasks
from destinations.models import DeliveryAttempt, InboundEvent
from destinations.services import audit

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status


def event(destination, message_id: str, status: str, age: timedelta) -> InboundEvent:
    row = InboundEvent.objects.create(
        destination=destination,
        message_id=message_id,
        type="identify",
        kind=InboundEvent.Kind.PROFILE,
        user_id="u1",
        payload={},
        timestamp=timezone.now(),
        status=status,
    )
    # received_at is set on insert (auto_now_add): age the row afterwards.
    InboundEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - age)
    return row


def attempt(destination, age: timedelta) -> DeliveryAttempt:
    row = DeliveryAttempt.objects.create(
        destination=destination,
        profile_count=1,
        method="PUT",
        url="https://acme.talon.one/v2/customer_profiles",
        request_body={},
        duration_ms=1,
        attempt_number=1,
        outcome=DeliveryAttempt.Outcome.SUCCESS,
    )
    DeliveryAttempt.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)
    return row


@pytest.fixture
def rows(make_destination, settings):
    settings.AUDIT_RETENTION_DAYS = 30
    destination = make_destination()
    old, recent = timedelta(days=31), timedelta(days=29)
    for status in (Status.DELIVERED, Status.FAILED, Status.SKIPPED, Status.PENDING):
        event(destination, f"old-{status}", status, old)
        event(destination, f"recent-{status}", status, recent)
    attempt(destination, old)
    kept_attempt = attempt(destination, recent)
    return kept_attempt


def remaining() -> set[str]:
    return set(InboundEvent.objects.values_list("message_id", flat=True))


def test_purge_deletes_finished_events_and_attempts_past_retention(rows):
    assert audit.purge_old_rows() == (1, 3)

    assert remaining() == {
        "old-pending",
        "recent-delivered",
        "recent-failed",
        "recent-skipped",
        "recent-pending",
    }
    assert list(DeliveryAttempt.objects.all()) == [rows]


def test_pending_events_are_kept_whatever_their_age(make_destination, settings):
    settings.AUDIT_RETENTION_DAYS = 1
    event(make_destination(), "ancient", Status.PENDING, timedelta(days=3650))

    audit.purge_old_rows()

    assert remaining() == {"ancient"}


def test_retention_follows_the_setting(rows, settings):
    settings.AUDIT_RETENTION_DAYS = 60

    assert audit.purge_old_rows() == (0, 0)
    assert len(remaining()) == 8


def test_the_hourly_task_purges(rows):
    tasks.purge_audit_log()

    assert "old-delivered" not in remaining()
    assert "old-pending" in remaining()
