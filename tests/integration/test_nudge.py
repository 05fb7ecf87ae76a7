"""How many flush tasks ingest queues, counted in the real broker (the
filesystem broker, or Redis when REDIS_URL is set); no worker consumes them."""

from datetime import timedelta

import pytest
from django.utils import timezone

from destinations.models import DeliveryLease
from destinations.services import delivery
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
