"""How many flush tasks ingest queues, counted in the real broker (the
filesystem broker, or Redis when REDIS_URL is set); no worker consumes them.
The flag "a flush is queued" lives in Redis or, without it, in a marker file."""

import logging
import os
import stat
import threading
import time
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext

from destinations.services import delivery, nudge
from integration_site.celery import app
from tests.conftest import identify

pytestmark = pytest.mark.django_db(transaction=True)  # nudges go out after commit

WINDOW = nudge.NUDGE_WINDOW.total_seconds()


@pytest.fixture
def destination(make_destination):
    return make_destination()


def expire(destination_id: int) -> None:
    """What NUDGE_WINDOW's end does to the flag (tested below for each store)."""
    store = nudge.flags()
    if isinstance(store, nudge.RedisFlags):
        store.client.delete(f"{store.prefix}{destination_id}")
    else:
        path = store.directory / f"{store.prefix}{destination_id}"
        os.utime(path, (time.time() - WINDOW - 1,) * 2)


def test_a_burst_with_no_worker_queues_one_flush_task(destination, post_events, broker_queue):
    for i in range(30):
        assert post_events("acme", identify(f"u{i}", f"m{i}")).status_code == 200

    assert broker_queue() == 1


def test_a_started_flush_lets_the_next_event_queue_another(
    destination, post_events, sandbox, broker_queue
):
    post_events("acme", identify("u1", "m1"))
    delivery.flush(destination.pk)  # a worker took the queued task and finished

    post_events("acme", identify("u2", "m2"))

    assert broker_queue() == 2


def test_a_flush_that_found_the_destination_held_leaves_the_flag(
    destination, post_events, broker_queue, monkeypatch
):
    # The holder clears it when it is done, and looks again.
    post_events("acme", identify("u1", "m1"))
    monkeypatch.setattr(delivery, "_acquire_lease", lambda *args: None)
    delivery.flush(destination.pk)

    post_events("acme", identify("u2", "m2"))

    assert broker_queue() == 1


def test_a_queued_task_that_never_started_is_replaced_after_the_window(
    destination, post_events, broker_queue
):
    post_events("acme", identify("u1", "m1"))
    expire(destination.pk)

    post_events("acme", identify("u2", "m2"))

    assert broker_queue() == 2


def test_the_queued_task_is_a_flush_of_that_destination(destination, broker_queue):
    nudge.nudge(destination.pk)

    assert broker_queue() == 1
    with app.connection_for_write() as connection:
        message = connection.SimpleQueue(settings.CELERY_TASK_DEFAULT_QUEUE).get(timeout=5)
        message.ack()
    args, kwargs, _ = message.decode()
    assert (message.headers["task"], args, kwargs) == (
        "destinations.tasks.flush_destination",
        [destination.pk],
        {},
    )


def test_a_nudge_runs_no_database_statement(destination, broker_queue):
    with CaptureQueriesContext(db_connection) as queries:
        nudge.nudge(destination.pk)
        nudge.nudge(destination.pk)

    assert [q["sql"] for q in queries] == []
    assert broker_queue() == 1


def test_a_cleared_flag_lets_the_next_nudge_queue_again(destination, broker_queue):
    nudge.nudge(destination.pk)
    nudge.clear(destination.pk)

    nudge.nudge(destination.pk)

    assert broker_queue() == 2


def test_a_nudge_leaves_other_destinations_flags_alone(destination, make_destination, broker_queue):
    other = make_destination("other")

    nudge.nudge(destination.pk)
    nudge.nudge(other.pk)
    nudge.clear(other.pk)
    nudge.nudge(destination.pk)

    assert broker_queue() == 2


class Unreachable:
    def __init__(self) -> None:
        self.calls = 0

    def set_if_absent(self, destination_id: int) -> bool:
        self.calls += 1
        raise ConnectionError("no answer")

    def delete(self, destination_id: int) -> None:
        raise ConnectionError("no answer")


@pytest.fixture
def unreachable(monkeypatch) -> Unreachable:
    store = Unreachable()
    monkeypatch.setattr(nudge, "flags", lambda: store)
    monkeypatch.setattr(nudge, "_unreachable_until", 0.0)
    return store


def test_after_the_flags_failed_the_process_tries_again_only_after_the_window(
    destination, unreachable, broker_queue, caplog
):
    with caplog.at_level(logging.WARNING, logger=nudge.__name__):
        nudge.nudge(destination.pk)
        nudge.nudge(destination.pk)
    assert unreachable.calls == 1
    assert [r.getMessage() for r in caplog.records] == [
        f"Could not queue a flush of destination {destination.pk}; the sweeper will"
    ]

    nudge._unreachable_until = time.monotonic() - 1  # the window has passed
    nudge.nudge(destination.pk)

    assert unreachable.calls == 2
    assert broker_queue() == 0


def test_a_flag_that_cannot_be_cleared_is_left_to_expire(destination, unreachable, caplog):
    with caplog.at_level(logging.WARNING, logger=nudge.__name__):
        nudge.clear(destination.pk)

    assert [r.getMessage() for r in caplog.records] == [
        f"Could not clear the queued flush of destination {destination.pk}"
    ]


@pytest.fixture
def file_flags(tmp_path) -> nudge.FileFlags:
    # The broker's folder may not exist yet either.
    return nudge.FileFlags(tmp_path / "broker" / "nudges", "q.")


@pytest.fixture
def frozen_clock(monkeypatch) -> float:
    now = time.time()
    monkeypatch.setattr(nudge, "time", SimpleNamespace(time=lambda: now))
    return now


def age(store: nudge.FileFlags, destination_id: int, mtime: float) -> None:
    os.utime(store.directory / f"{store.prefix}{destination_id}", (mtime, mtime))


def test_a_marker_file_counts_for_the_window_and_not_a_moment_longer(file_flags, frozen_clock):
    assert file_flags.set_if_absent(1) is True
    assert file_flags.set_if_absent(1) is False

    age(file_flags, 1, frozen_clock - WINDOW + 0.01)
    assert file_flags.set_if_absent(1) is False

    age(file_flags, 1, frozen_clock - WINDOW)
    assert file_flags.set_if_absent(1) is True
    assert file_flags.set_if_absent(1) is False  # replaced by a fresh one


def test_a_marker_file_is_named_by_prefix_and_destination_and_private(file_flags):
    file_flags.set_if_absent(7)

    marker = file_flags.directory / "q.7"
    assert [path.name for path in file_flags.directory.iterdir()] == ["q.7"]
    assert stat.S_IMODE(marker.stat().st_mode) == 0o600


def test_a_fresh_marker_file_is_answered_without_the_lock(file_flags):
    # The lock is for replacing an expired marker: a burst's nudges never wait on it.
    file_flags.set_if_absent(1)
    assert file_flags.set_if_absent(1) is False

    assert not (file_flags.directory / ".lock").exists()


def test_a_marker_file_cleared_between_the_tries_is_set_again(file_flags, monkeypatch):
    # It existed when this process tried to create it, and was gone when it looked
    # at its age: the flusher cleared it meanwhile.
    real_create = nudge._create
    tries: list[object] = []

    def cleared_meanwhile(path):
        tries.append(path)
        return False if len(tries) == 1 else real_create(path)

    monkeypatch.setattr(nudge, "_create", cleared_meanwhile)

    assert file_flags.set_if_absent(1) is True
    assert (file_flags.directory / "q.1").exists()
    assert len(tries) == 2


def test_a_deleted_marker_file_is_set_again_and_others_stay(file_flags):
    file_flags.set_if_absent(1)
    file_flags.set_if_absent(2)

    file_flags.delete(1)
    file_flags.delete(3)  # none: nothing happens

    assert (file_flags.set_if_absent(1), file_flags.set_if_absent(2)) == (True, False)


def test_of_processes_finding_an_expired_marker_one_replaces_it(file_flags, monkeypatch):
    # The rival finds it expired too, and replaces it first: right before this
    # process takes the lock.
    file_flags.set_if_absent(1)
    age(file_flags, 1, time.time() - WINDOW - 1)
    real_flock = nudge.fcntl.flock
    rival: list[bool] = []

    def rival_first(fd, operation):
        if not rival:
            rival.append(False)
            rival[0] = file_flags.set_if_absent(1)
        return real_flock(fd, operation)

    monkeypatch.setattr(nudge.fcntl, "flock", rival_first)

    assert file_flags.set_if_absent(1) is False
    assert rival == [True]


def test_of_threads_setting_at_once_one_wins(file_flags):
    start = threading.Barrier(8)
    won: list[bool] = []

    def contend() -> None:
        start.wait()
        won.append(file_flags.set_if_absent(1))

    threads = [threading.Thread(target=contend) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(won) == [False] * 7 + [True]


@pytest.fixture
def redis_flags() -> nudge.RedisFlags:
    if not settings.REDIS_URL:
        pytest.skip("the Redis flags need REDIS_URL")
    store = nudge.RedisFlags(settings.REDIS_URL, f"{settings.CELERY_TASK_DEFAULT_QUEUE}.test.", {})
    yield store
    store.client.delete(*(f"{store.prefix}{i}" for i in (1, 2)))


def test_a_redis_flag_is_set_once_and_expires_after_the_window(redis_flags):
    assert redis_flags.set_if_absent(1) is True
    assert redis_flags.set_if_absent(1) is False
    assert redis_flags.set_if_absent(2) is True

    ttl = redis_flags.client.pttl(f"{settings.CELERY_TASK_DEFAULT_QUEUE}.test.1")
    assert WINDOW * 1000 / 2 < ttl <= WINDOW * 1000

    redis_flags.delete(1)
    assert redis_flags.set_if_absent(1) is True
