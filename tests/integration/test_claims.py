"""The claim: which pending rows a flush round sends next (due profiles, deletion
order, expiry, the delivered timestamps read with it). On PostgreSQL every rule is
checked twice, once through its one-statement claim and once through the portable
claim SQLite uses, so that both are held to the same rules wherever the suite runs."""

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.utils import timezone

from destinations.models import InboundEvent, ProfileState
from destinations.services import claims, outbox
from destinations.services.claims import claim
from destinations.services.handlers.deletions import SUPERSEDED
from destinations.services.outbox import lease_ttl
from destinations.services.shards import Shard

Status = InboundEvent.Status
Kind = InboundEvent.Kind
T = datetime(2026, 1, 2, 12, 0, 0, 500000, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)
PATHS = ["postgresql", "portable"] if connection.vendor == "postgresql" else ["portable"]


@pytest.fixture(params=PATHS)
def claim_path(request, monkeypatch) -> str:
    if request.param == "portable":
        # As on any other database: the dispatch to the portable claim is tested too.
        monkeypatch.setattr(claims, "connection", SimpleNamespace(vendor="sqlite"))
    return request.param


pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker", "claim_path")]


@pytest.fixture
def destination(make_destination):
    return make_destination()


def row(destination, message_id, user_id="u1", *, at=T, kind=Kind.PROFILE, due=True, **fields):
    now = timezone.now()
    values = {
        "destination": destination,
        "message_id": message_id,
        "type": "delete" if kind == Kind.DELETION else "identify",
        "kind": kind,
        "user_id": user_id,
        "payload": {},
        "timestamp": at,
        "attributes": {} if kind == Kind.DELETION else {"plan": message_id},
        "status": Status.PENDING,
        "queued_at": now,
        "next_attempt_at": now if due else now + timedelta(hours=1),
    }
    values.update(fields)
    return InboundEvent.objects.create(**values)


def test_a_claim_takes_the_due_profiles_with_all_their_pending_rows_in_time_order(destination):
    later = row(destination, "later", at=T + timedelta(minutes=1), due=False)
    first = row(destination, "first", at=T)
    other = row(destination, "other", "u2", due=False)
    row(destination, "done", status=Status.DELIVERED)

    events = claim(destination)

    assert [e.message_id for e in events] == ["first", "later"]
    assert events[0].attributes == {"plan": "first"}
    claimed_until = timezone.now() + lease_ttl()
    for event in (first, later):
        event.refresh_from_db()
        assert claimed_until - timedelta(seconds=5) < event.next_attempt_at <= claimed_until
    assert InboundEvent.objects.get(pk=other.pk).next_attempt_at == other.next_attempt_at


def test_a_claimed_row_carries_its_profiles_delivered_timestamps(destination):
    ProfileState.objects.create(
        destination=destination, integration_id="u1", attribute_timestamps={"plan": T.isoformat()}
    )
    row(destination, "m1")
    row(destination, "m2", "u2")

    events = claim(destination)

    assert {e.user_id: e.delivered for e in events} == {"u1": {"plan": T.isoformat()}, "u2": {}}


def test_a_pending_deletion_takes_only_the_rows_up_to_its_time(destination):
    row(destination, "before", at=T - timedelta(minutes=1))
    row(destination, "same time", at=T)
    row(destination, "delete", at=T, kind=Kind.DELETION)
    after = row(destination, "after", at=T + timedelta(minutes=1))

    events = claim(destination)

    assert [e.message_id for e in events] == ["before", "same time", "delete"]
    assert InboundEvent.objects.get(pk=after.pk).next_attempt_at == after.next_attempt_at


def test_a_pending_deletion_without_a_queue_time_still_holds_later_rows_back(destination):
    # Rows stored before queued_at existed have none: they are never too old.
    row(destination, "delete", kind=Kind.DELETION, attempts=2, queued_at=None)
    after = row(destination, "after", at=T + timedelta(minutes=1))

    events = claim(destination)

    assert [e.message_id for e in events] == ["delete"]
    assert InboundEvent.objects.get(pk=after.pk).next_attempt_at == after.next_attempt_at


def test_rows_older_than_a_delivered_deletion_are_skipped_newer_ones_claimed(destination):
    deleted = T
    ProfileState.objects.create(
        destination=destination, integration_id="u1", attribute_timestamps={}, deleted_at=deleted
    )
    row(destination, "older", at=T - timedelta(minutes=1))
    row(destination, "as old", at=T)
    row(destination, "newer", at=T + MICROSECOND)

    events = claim(destination)

    assert [e.message_id for e in events] == ["newer"]
    for message_id in ("older", "as old"):
        event = InboundEvent.objects.get(message_id=message_id)
        assert event.status == Status.SKIPPED
        assert event.reason == SUPERSEDED.format(when=deleted.isoformat())
        assert event.next_attempt_at is None


def test_rows_tried_beyond_the_maximum_age_fail_when_claimed_fresh_ones_are_sent(destination):
    old = timezone.now() - timedelta(days=2)
    row(destination, "tried", attempts=3, queued_at=old, reason="retrying: 503")
    row(destination, "untried", "u1", at=T + timedelta(minutes=1), queued_at=old)
    row(destination, "new", "u1", at=T + timedelta(minutes=2))

    events = claim(destination)

    assert [e.message_id for e in events] == ["untried", "new"]
    tried = InboundEvent.objects.get(message_id="tried")
    assert tried.status == Status.FAILED
    assert tried.reason == f"{outbox.gave_up()}; last: retrying: 503"
    assert tried.next_attempt_at is None


def test_an_expired_deletion_holds_no_newer_row_back(destination):
    old = timezone.now() - timedelta(days=2)
    row(destination, "delete", kind=Kind.DELETION, attempts=1, queued_at=old)
    row(destination, "after", at=T + timedelta(minutes=1))

    events = claim(destination)

    assert [e.message_id for e in events] == ["after"]
    assert InboundEvent.objects.get(message_id="delete").status == Status.FAILED


def test_a_claim_whose_due_rows_all_ended_unsent_goes_on_to_the_next_due_ones(
    destination, settings
):
    settings.DELIVERY_BATCH_SIZE = 1
    old = timezone.now() - timedelta(days=2)
    row(destination, "tried", "u1", attempts=1, queued_at=old, next_attempt_at=old)
    row(destination, "fresh", "u2")

    events = claim(destination)

    assert [e.message_id for e in events] == ["fresh"]
    assert InboundEvent.objects.get(message_id="tried").status == Status.FAILED


def test_of_two_pending_deletions_the_earlier_cuts_whatever_came_first(destination):
    row(destination, "late delete", at=T + timedelta(minutes=2), kind=Kind.DELETION)
    row(destination, "early delete", at=T, kind=Kind.DELETION)
    row(destination, "between", at=T + timedelta(minutes=1))

    assert [e.message_id for e in claim(destination)] == ["early delete"]


def test_a_claim_takes_no_row_of_another_destination(destination, make_destination):
    other = make_destination(slug="other")
    row(other, "theirs", "u1")
    ProfileState.objects.create(
        destination=other, integration_id="u1", attribute_timestamps={}, deleted_at=T
    )
    row(destination, "ours", "u1", at=T - timedelta(minutes=1))

    events = claim(destination)

    assert [e.message_id for e in events] == ["ours"]  # not skipped by their deletion
    assert events[0].delivered == {}
    assert InboundEvent.objects.get(message_id="theirs").status == Status.PENDING


def test_a_row_tried_for_the_maximum_age_to_the_microsecond_is_still_sent(
    destination, settings, monkeypatch
):
    now = timezone.now()
    monkeypatch.setattr(claims, "timezone", SimpleNamespace(now=lambda: now))
    row(
        destination,
        "limit",
        attempts=3,
        queued_at=now - settings.DELIVERY_MAX_AGE,
        next_attempt_at=now,
    )

    assert [e.message_id for e in claim(destination)] == ["limit"]


def test_a_claim_of_nothing_due_is_empty(destination):
    row(destination, "later", due=False)

    assert claim(destination) == []


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="shards split by PostgreSQL's hashtext"
)
def test_shards_claim_disjoint_profiles_that_together_are_all(destination):
    for i in range(20):
        row(destination, f"m{i}", f"u{i}")

    claimed = [{e.user_id for e in claim(destination, Shard(index, 3))} for index in range(3)]

    assert set().union(*claimed) == {f"u{i}" for i in range(20)}
    assert sum(len(profiles) for profiles in claimed) == 20
