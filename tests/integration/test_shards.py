"""Delivery shards: a destination's profiles split among flushers, each with a
lease of its own, a profile always in one shard, and no two shard counts
flushing at once. Splitting needs PostgreSQL's hash function; the lease rules
hold on either database."""

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection, connections
from django.utils import timezone

from destinations import tasks
from destinations.models import DeliveryLease, InboundEvent
from destinations.services import delivery, shards
from destinations.services.outbox import Sender
from destinations.services.shards import WHOLE, Shard
from tests.conftest import audience_identify, identify, send
from tests.integration.test_tasks import take_queued

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="splitting by hash needs PostgreSQL"
)


@pytest.fixture(autouse=True)
def queue(broker_queue):
    return broker_queue


def users_of(shard: Shard) -> set[str]:
    return set(shard.events(InboundEvent.objects.all()).values_list("user_id", flat=True))


@postgresql_only
def test_every_profile_is_in_exactly_one_shard_with_all_its_rows(
    make_destination, post_events, no_broker
):
    make_destination()
    users = [f"user-{n}" for n in range(60)]
    send(post_events, *[identify(u, f"{u}-{k}") for u in users for k in range(2)])

    split = [users_of(Shard(index, 3)) for index in range(3)]

    assert set().union(*split) == set(users)
    assert sum(len(part) for part in split) == len(users)  # disjoint
    assert all(split), "60 profiles spread over every shard"
    for index, part in enumerate(split):
        rows = Shard(index, 3).events(InboundEvent.objects.filter(user_id__in=part))
        assert rows.count() == 2 * len(part)


def test_one_shard_is_every_row(make_destination, post_events, no_broker):
    make_destination()
    send(post_events, identify("u1", "m1"), identify("u2", "m2"))

    assert users_of(WHOLE) == {"u1", "u2"}


@postgresql_only
def test_each_shard_flusher_sends_only_its_own_profiles(
    make_destination, post_events, sandbox, no_broker
):
    destination = make_destination()
    users = [f"user-{n}" for n in range(20)]
    send(post_events, *[identify(u, f"m-{u}") for u in users])
    first, second = Shard(0, 2), Shard(1, 2)

    delivery.flush(destination.pk, shard=first)

    assert set(sandbox.profiles()) == users_of(first)
    assert InboundEvent.objects.filter(status="pending").count() == len(users_of(second))

    delivery.flush(destination.pk, shard=second)

    assert set(sandbox.profiles()) == set(users)
    assert not InboundEvent.objects.filter(status="pending").exists()


def test_shards_of_one_count_hold_their_leases_side_by_side(make_destination):
    destination = make_destination()

    assert delivery._acquire_lease(destination.pk, Shard(0, 2), "a") is not None
    assert delivery._acquire_lease(destination.pk, Shard(1, 2), "b") is not None
    assert delivery._acquire_lease(destination.pk, Shard(1, 2), "c") is None  # b holds it


def test_a_flusher_of_another_shard_count_waits_for_every_old_lease(make_destination):
    destination = make_destination()
    assert delivery._acquire_lease(destination.pk, Shard(1, 2), "old") is not None

    # Shard 0 of 3 is free, but the old count's shard 1 may be sending any profile.
    assert delivery._acquire_lease(destination.pk, Shard(0, 3), "new") is None

    DeliveryLease.objects.filter(holder="old").update(expires_at=timezone.now())
    assert delivery._acquire_lease(destination.pk, Shard(0, 3), "new") is not None
    # And now the old count waits for the new one.
    assert delivery._acquire_lease(destination.pk, Shard(0, 2), "old") is None


def test_a_released_lease_of_another_count_does_not_block(make_destination):
    destination = make_destination()
    delivery._acquire_lease(destination.pk, Shard(1, 2), "old")
    DeliveryLease.objects.filter(holder="old").update(holder="", expires_at=None)

    assert delivery._acquire_lease(destination.pk, Shard(0, 3), "new") is not None


def test_each_shard_sends_its_share_of_the_rate_limit(make_destination):
    destination = make_destination(max_requests_per_second=40)

    assert Sender(destination, "t", "h", 1).interval == pytest.approx(1 / 40)
    assert Sender(destination, "t", "h", 1, shard_count=4).interval == pytest.approx(4 / 40)


@postgresql_only
def test_the_flush_task_fans_out_one_task_per_shard(make_destination, settings):
    settings.DELIVERY_SHARDS = 3
    destination = make_destination()

    tasks.flush_destination.apply(args=(destination.pk,))

    queued = take_queued()
    assert sorted(args for _, args, _ in queued) == [[destination.pk, i] for i in range(3)]
    assert not DeliveryLease.objects.exists()  # the fan-out itself flushes nothing


@pytest.mark.parametrize(("vendor", "count"), [("postgresql", 4), ("sqlite", 1)])
def test_only_postgresql_has_the_shards_of_the_setting(settings, monkeypatch, vendor, count):
    # Whatever database the suite runs on: shard_count only asks the vendor.
    settings.DELIVERY_SHARDS = 4
    monkeypatch.setattr(shards, "connection", SimpleNamespace(vendor=vendor))

    assert shards.shard_count() == count


def test_a_shard_task_queued_before_the_count_shrank_flushes_nothing(
    make_destination, post_events, sandbox, settings
):
    settings.DELIVERY_SHARDS = 1
    destination = make_destination()
    send(post_events, identify("u1", "m1"))

    tasks.flush_destination.apply(args=(destination.pk, 2))

    assert sandbox.requests_log() == []
    assert not DeliveryLease.objects.exists()
    assert take_queued() == []


@postgresql_only
def test_a_shard_flush_requeues_itself_for_its_own_due_work(
    make_destination, post_events, sandbox, settings
):
    settings.DELIVERY_SHARDS = 2
    destination = make_destination()
    users = [f"user-{n}" for n in range(10)]
    send(post_events, *[identify(u, f"m-{u}") for u in users])
    take_queued()  # the ingest nudge
    other = Shard(1, 2)
    InboundEvent.objects.filter(
        pk__in=other.events(InboundEvent.objects.all()).values("pk")
    ).update(next_attempt_at=timezone.now() + timedelta(seconds=5))

    tasks.flush_destination.apply(args=(destination.pk, 0))

    # Shard 0 delivered; shard 1's work (due in 5 s) is not shard 0's to requeue.
    assert set(sandbox.profiles()) == users_of(Shard(0, 2))
    assert take_queued() == []


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_shards_meeting_a_new_audience_at_once_create_it_once(
    make_destination, post_events, sandbox, no_broker
):
    """An audience's first sync reaches every shard in its first claim: one
    creation in Talon.One, whose id every shard then uses (a second creation
    would get 409 and fail its shard's memberships)."""
    destination = make_destination(engage_audiences="audience")
    users = [f"user-{n}" for n in range(20)]
    send(
        post_events,
        *[audience_identify(u, f"in-{u}", "vip", computation_id="aud_1") for u in users],
    )
    sandbox.set_faults(latency_ms=300)  # both flushers are inside the creation together

    def flush(shard: Shard) -> None:
        try:
            delivery.flush(destination.pk, shard=shard)
        finally:
            connections.close_all()

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(flush, [Shard(0, 2), Shard(1, 2)]))

    assert len(sandbox.audiences()) == 1
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"delivered"}
