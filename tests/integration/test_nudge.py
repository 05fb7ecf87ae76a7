"""How many flush tasks ingest queues, counted in the real broker (the
filesystem broker, or Redis when REDIS_URL is set); no worker consumes them."""

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection as db_connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import DeliveryLease
from destinations.services import delivery, nudge
from integration_site.celery import app
from tests.conftest import identify

pytestmark = pytest.mark.django_db(transaction=True)  # nudges go out after commit


@pytest.fixture
def destination(make_destination):
    return make_destination()


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


def test_a_queued_task_that_never_started_is_replaced_after_the_window(
    destination, post_events, broker_queue
):
    post_events("acme", identify("u1", "m1"))
    DeliveryLease.objects.update(nudged_at=timezone.now() - timedelta(seconds=11))

    post_events("acme", identify("u2", "m2"))

    assert broker_queue() == 2


@pytest.fixture
def fixed_now(monkeypatch):
    """The clock stands still: a boundary of the window can be hit exactly."""
    now = timezone.now()
    monkeypatch.setattr(timezone, "now", lambda: now)
    return now


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


def test_a_lease_running_out_this_instant_no_longer_stands_for_a_flusher(
    destination, broker_queue, fixed_now
):
    DeliveryLease.objects.create(destination=destination, holder="gone", expires_at=fixed_now)

    nudge.nudge(destination.pk)

    assert broker_queue() == 1


def test_the_window_of_a_queued_task_ends_exactly_after_nudge_window(
    destination, broker_queue, fixed_now
):
    DeliveryLease.objects.create(destination=destination, nudged_at=fixed_now - nudge.NUDGE_WINDOW)

    nudge.nudge(destination.pk)

    assert broker_queue() == 1
    assert DeliveryLease.objects.get().nudged_at == fixed_now


def test_within_the_window_a_nudge_only_reads_the_lease(destination, broker_queue):
    nudge.nudge(destination.pk)

    with CaptureQueriesContext(db_connection) as queries:
        nudge.nudge(destination.pk)

    assert [q["sql"].split()[0] for q in queries] == ["SELECT"]
    assert broker_queue() == 1


def test_a_nudge_leaves_other_destinations_windows_alone(
    destination, make_destination, broker_queue
):
    other = make_destination("other")
    DeliveryLease.objects.create(destination=other)

    nudge.nudge(destination.pk)
    nudge.nudge(other.pk)

    assert broker_queue() == 2
    assert DeliveryLease.objects.filter(nudged_at__isnull=False).count() == 2


def test_of_two_requests_nudging_at_once_one_queues_the_task(destination, broker_queue):
    # The rival reads the lease too, and queues first: it runs right after this
    # request's read, before its update.
    DeliveryLease.objects.create(destination=destination)
    rival: list[int] = []

    def rival_after_the_read(execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if not rival and sql.startswith("SELECT"):
            rival.append(destination.pk)
            nudge.nudge(destination.pk)
        return result

    with db_connection.execute_wrapper(rival_after_the_read):
        nudge.nudge(destination.pk)

    assert rival == [destination.pk]
    assert broker_queue() == 1
