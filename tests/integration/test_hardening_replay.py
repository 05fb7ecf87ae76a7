"""Issue #10 item 7: duplicate detection used the event rows themselves, so once
AUDIT_RETENTION_DAYS purged them, a captured signed request was accepted again
and could bring an older value back. The messageIds seen are now kept apart
(SeenMessage), longer than the audit rows, and purged on their own schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations import tasks
from destinations.models import InboundEvent, SeenMessage
from destinations.services import audit, delivery
from tests.conftest import identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

AUDIENCE = "vip_customers"


@pytest.fixture
def retention(settings):
    settings.AUDIT_RETENTION_DAYS = 30
    settings.DEDUPE_RETENTION_DAYS = 90
    return settings


def age_everything(days: int) -> None:
    then = timezone.now() - timedelta(days=days)
    InboundEvent.objects.update(received_at=then)
    SeenMessage.objects.update(first_seen_at=then)


def test_a_request_replayed_after_the_audit_purge_is_a_duplicate(
    make_destination, post_events, sandbox, retention
):
    destination = make_destination()
    old_value = identify("u1", "m-old", timestamp="2026-01-01T00:00:00Z", traits={"plan": "old"})
    assert post_events("acme", old_value).json()["accepted"] == 1
    delivery.flush(destination.pk)
    age_everything(days=31)
    audit.purge_old_rows()
    assert not InboundEvent.objects.exists()
    post_events("acme", identify("u1", "m-new", traits={"plan": "new"}))
    delivery.flush(destination.pk)

    replayed = post_events("acme", old_value)  # the captured request, signature and all

    assert replayed.status_code == 200
    assert replayed.json() == {"accepted": 0, "skipped": 0, "duplicates": 1}
    assert not InboundEvent.objects.filter(message_id="m-old").exists()
    delivery.flush(destination.pk)
    assert sandbox.profile("u1")["attributes"]["plan"] == "new"
    assert len(sandbox.requests_log()) == 2


def test_an_identify_and_its_membership_row_are_one_message(
    make_destination, post_events, retention
):
    make_destination(engage_audiences="both")
    call = identify(
        "u1",
        "m1",
        traits={"plan": "gold", AUDIENCE: True},
        context={"personas": {"computation_class": "audience", "computation_key": AUDIENCE}},
    )
    assert post_events("acme", call).json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert InboundEvent.objects.count() == 2  # the update and the membership
    assert list(SeenMessage.objects.values_list("message_id", flat=True)) == ["m1"]
    InboundEvent.objects.update(status=InboundEvent.Status.DELIVERED)
    age_everything(days=31)
    audit.purge_old_rows()

    assert post_events("acme", [call]).json() == {"accepted": 0, "skipped": 0, "duplicates": 1}
    assert not InboundEvent.objects.exists()


def test_seen_messages_are_kept_past_the_audit_retention_then_purged(
    make_destination, post_events, retention
):
    make_destination()
    post_events("acme", [identify("u1", "kept"), identify("u1", "forgotten")])
    SeenMessage.objects.filter(message_id="kept").update(
        first_seen_at=timezone.now() - timedelta(days=89)
    )
    SeenMessage.objects.filter(message_id="forgotten").update(
        first_seen_at=timezone.now() - timedelta(days=91)
    )

    tasks.purge_seen_messages()

    assert list(SeenMessage.objects.values_list("message_id", flat=True)) == ["kept"]


def test_the_seen_messages_purge_has_its_own_schedule():
    from django.conf import settings

    schedule = {entry["task"] for entry in settings.CELERY_BEAT_SCHEDULE.values()}

    assert "destinations.tasks.purge_seen_messages" in schedule
