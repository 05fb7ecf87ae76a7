"""One flush round's own rules, below the flush: the per-attribute timestamps
merged after a delivery, and what a round costs in statements (the claim has
tests/integration/test_claims.py)."""

import threading
import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from destinations.models import DeliveryAttempt, InboundEvent, ProfileState
from destinations.services import delivery, outbox
from tests.conftest import identify, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status
T = datetime(2026, 1, 2, 12, 0, 0, 500000, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


@pytest.fixture
def destination(make_destination):
    return make_destination()


def stored(destination, integration_id="u1"):
    return ProfileState.objects.get(
        destination=destination, integration_id=integration_id
    ).attribute_timestamps


def instants(timestamps):
    return {name: datetime.fromisoformat(value) for name, value in timestamps.items()}


# The delivered timestamps: per attribute the newest Segment timestamp wins. On
# PostgreSQL each merge rule is checked through its one-statement upsert and
# through the portable merge SQLite uses.

MERGES = ["postgresql", "portable"] if connection.vendor == "postgresql" else ["portable"]


@pytest.fixture(params=MERGES)
def merge_path(request, monkeypatch) -> str:
    if request.param == "portable":
        # As on any other database: the dispatch to the portable merge is tested too.
        monkeypatch.setattr(outbox, "connection", SimpleNamespace(vendor="sqlite"))
    return request.param


@pytest.mark.usefixtures("merge_path")
def test_an_older_timestamp_never_replaces_a_newer_one_attribute_by_attribute(destination):
    ProfileState.objects.create(
        destination=destination,
        integration_id="u1",
        attribute_timestamps={"plan": T.isoformat(), "email": (T - timedelta(days=1)).isoformat()},
    )

    older, newer = T - timedelta(hours=1), T + timedelta(hours=1)
    outbox.merge_timestamps(destination, {"u1": {"plan": older, "email": older, "vip": newer}})

    assert instants(stored(destination)) == {"plan": T, "email": older, "vip": newer}


@pytest.mark.usefixtures("merge_path")
def test_a_microsecond_decides_and_an_equal_timestamp_keeps_the_instant(destination):
    ProfileState.objects.create(
        destination=destination,
        integration_id="u1",
        attribute_timestamps={"a": T.isoformat(), "b": T.isoformat(), "c": T.isoformat()},
    )

    outbox.merge_timestamps(
        destination, {"u1": {"a": T + MICROSECOND, "b": T - MICROSECOND, "c": T}}
    )

    assert instants(stored(destination)) == {"a": T + MICROSECOND, "b": T, "c": T}


@pytest.mark.usefixtures("merge_path")
def test_timestamps_compare_as_instants_not_as_text(destination):
    # 12:30+01:00 is 11:30 UTC, older than 12:00 UTC though its text sorts after it;
    # 11:30-01:00 is 12:30 UTC, newer though its text sorts before.
    ProfileState.objects.create(
        destination=destination,
        integration_id="u1",
        attribute_timestamps={
            "plan": "2026-01-02T12:30:00+01:00",
            "email": "2026-01-02T11:30:00-01:00",
        },
    )
    noon = datetime(2026, 1, 2, 12, 0, tzinfo=UTC)

    outbox.merge_timestamps(destination, {"u1": {"plan": noon, "email": noon}})

    assert instants(stored(destination)) == {
        "plan": noon,
        "email": datetime(2026, 1, 2, 12, 30, tzinfo=UTC),
    }


@pytest.mark.usefixtures("merge_path")
def test_merging_creates_missing_profiles_and_keeps_their_deletion(destination, make_destination):
    other = make_destination(slug="other")
    deleted = datetime(2026, 1, 1, tzinfo=UTC)
    ProfileState.objects.create(
        destination=destination, integration_id="u1", attribute_timestamps={}, deleted_at=deleted
    )
    ProfileState.objects.create(
        destination=other, integration_id="u2", attribute_timestamps={"plan": T.isoformat()}
    )

    outbox.merge_timestamps(destination, {"u1": {"plan": T}, "u2": {"email": T}})

    assert instants(stored(destination, "u1")) == {"plan": T}
    assert instants(stored(destination, "u2")) == {"email": T}
    assert instants(stored(other, "u2")) == {"plan": T}
    assert ProfileState.objects.get(destination=destination, integration_id="u1").deleted_at == (
        deleted
    )


@pytest.mark.skipif(connection.vendor != "postgresql", reason="SQLite writes one at a time")
@pytest.mark.django_db(transaction=True)
def test_a_merge_waiting_on_another_flushers_new_profile_keeps_both_its_timestamps(destination):
    """Two flushers deliver attributes of a profile new to the destination: the
    second's merge waits for the first's uncommitted insert, then merges into
    it. (The portable merge reads before it waits, so it would overwrite.)"""
    inserted, commit = threading.Event(), threading.Event()

    def first_flusher():
        try:
            with transaction.atomic():
                outbox.merge_timestamps(destination, {"u1": {"plan": T}})
                inserted.set()
                commit.wait(10)
        finally:
            connections.close_all()

    def second_flusher():
        try:
            outbox.merge_timestamps(destination, {"u1": {"email": T}})
        finally:
            connections.close_all()

    first = threading.Thread(target=first_flusher)
    first.start()
    assert inserted.wait(10)
    second = threading.Thread(target=second_flusher)
    second.start()
    with connection.cursor() as cursor:
        for _ in range(100):
            cursor.execute("SELECT count(*) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0]:
                break
            time.sleep(0.05)
        else:
            pytest.fail("the second merge never waited for the first")
    commit.set()
    first.join(10)
    second.join(10)

    assert instants(stored(destination)) == {"plan": T, "email": T}


def test_delivered_timestamps_are_the_destinations_own(destination, make_destination):
    other = make_destination(slug="other")
    ProfileState.objects.create(
        destination=destination, integration_id="u1", attribute_timestamps={"plan": T.isoformat()}
    )
    ProfileState.objects.create(
        destination=other, integration_id="u1", attribute_timestamps={"email": T.isoformat()}
    )
    ProfileState.objects.create(
        destination=other, integration_id="u2", attribute_timestamps={"email": T.isoformat()}
    )
    ProfileState.objects.create(
        destination=destination, integration_id="u3", attribute_timestamps={"vip": T.isoformat()}
    )

    assert outbox.delivered_timestamps(destination, iter(["u1", "u2"])) == {
        "u1": {"plan": T.isoformat()}
    }


# What a round costs.


def round_queries(destination, post_events, profiles: int, first: int = 0) -> int:
    send(post_events, *(identify(f"u{i}", f"m{i}") for i in range(first, first + profiles)))
    with CaptureQueriesContext(connection) as queries:
        delivery.flush(destination.pk)
    return len(queries)


def test_a_round_costs_the_same_statements_for_one_profile_as_for_fifty(
    destination, post_events, sandbox
):
    round_queries(destination, post_events, 1)  # the lease row is created once
    assert round_queries(destination, post_events, 1, first=1) == round_queries(
        destination, post_events, 50, first=2
    )
    attempt = DeliveryAttempt.objects.first()
    assert attempt.profile_count == 50
    assert attempt.events.count() == 50
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {Status.DELIVERED}
