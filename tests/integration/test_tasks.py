"""The Celery tasks, run in this process, with what they queue read back from
the real broker (the filesystem broker, or Redis when REDIS_URL is set)."""

import os
import subprocess
import sys
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from destinations import tasks
from destinations.models import InboundEvent
from integration_site.celery import app
from tests.conftest import identify
from tests.local_server import scripted_talon

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]

Status = InboundEvent.Status


def take_queued() -> list[tuple[str, list, datetime | None]]:
    """Every message in the run's queue, taken out: (task, args, eta)."""
    found = []
    with app.connection_for_write() as connection:
        channel = connection.default_channel
        while message := channel.basic_get(settings.CELERY_TASK_DEFAULT_QUEUE, no_ack=True):
            eta = message.headers.get("eta")
            found.append(
                (
                    message.headers["task"],
                    message.decode()[0],
                    datetime.fromisoformat(eta) if eta else None,
                )
            )
    return found


@pytest.fixture(autouse=True)
def queue(broker_queue):
    return broker_queue


def store(post_events, *events):
    response = post_events("acme", list(events))
    assert response.status_code == 200, response.content


def test_a_flush_that_delivered_everything_queues_nothing(make_destination, post_events, sandbox):
    destination = make_destination()
    store(post_events, identify("u1", "m1"))

    tasks.flush_destination.apply(args=(destination.pk,))

    assert InboundEvent.objects.get().status == Status.DELIVERED
    assert take_queued() == []


def test_a_flush_requeues_itself_for_work_due_soon(make_destination, post_events, settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 20  # first retry in 10 to 20 s
    with scripted_talon(lambda body: (503, {}, None)) as (url, _):
        destination = make_destination(base_url=url)
        store(post_events, identify("u1", "m1"))

        tasks.flush_destination.apply(args=(destination.pk,))

    due = InboundEvent.objects.get().next_attempt_at
    [(task, args, eta)] = take_queued()
    assert task == "destinations.tasks.flush_destination"
    assert args == [destination.pk, 0]
    assert eta is not None
    assert abs((eta - due).total_seconds()) < 1


def test_work_due_later_is_left_to_the_sweeper(make_destination, post_events, settings):
    settings.DELIVERY_BACKOFF_BASE_SECONDS = 80  # first retry in 40 to 80 s
    with scripted_talon(lambda body: (503, {}, None)) as (url, _):
        destination = make_destination(base_url=url)
        store(post_events, identify("u1", "m1"))

        tasks.flush_destination.apply(args=(destination.pk,))

    assert InboundEvent.objects.get().status == Status.PENDING
    assert take_queued() == []


def test_work_already_due_is_requeued_at_once(make_destination, post_events, monkeypatch):
    destination = make_destination()
    store(post_events, identify("u1", "m1"))
    # A flusher that left due work behind (it yielded after DELIVERY_FLUSH_SECONDS).
    monkeypatch.setattr(
        "destinations.services.delivery.flush",
        lambda destination_id, task_id, shard: timezone.now() - timedelta(minutes=5),
    )

    tasks.flush_destination.apply(args=(destination.pk,))

    [(_, args, eta)] = take_queued()
    assert args == [destination.pk, 0]
    assert eta is None  # a countdown of 0: no delay, and never an eta in the past


def test_a_task_for_a_disabled_destination_queues_nothing(make_destination, post_events):
    destination = make_destination()
    store(post_events, identify("u1", "m1"))
    destination.enabled = False
    destination.save()

    tasks.flush_destination.apply(args=(destination.pk,))

    assert InboundEvent.objects.get().status == Status.PENDING
    assert take_queued() == []


def test_sweep_nudges_each_destination_with_due_work_once(make_destination, post_events):
    make_destination("idle")  # first: each destination's id then differs from its event's
    due = make_destination("acme")
    later = make_destination("later")
    off = make_destination("off")
    for slug in ("acme", "later", "off"):
        assert post_events(slug, identify()).status_code == 200
    InboundEvent.objects.filter(destination=later).update(
        next_attempt_at=timezone.now() + timedelta(minutes=1)
    )
    off.enabled = False
    off.save()

    tasks.sweep()
    tasks.sweep()  # the flush it queued has not started: no other

    assert [args for _, args, _ in take_queued()] == [[due.pk]]


def test_sweep_with_nothing_due_queues_nothing(make_destination):
    make_destination()

    tasks.sweep()

    assert take_queued() == []


def test_a_fresh_checkout_makes_the_filesystem_brokers_folders(tmp_path):
    """No folder exists yet under VAR_DIR: publishing must still work (the
    folders are made when Celery reads its configuration, in any process)."""
    script = (
        "import django; django.setup()\n"
        "from integration_site.celery import app\n"
        "app.send_task('destinations.tasks.sweep')\n"
    )
    env = {**os.environ, "VAR_DIR": str(tmp_path), "REDIS_URL": "", "CELERY_QUEUE": "fresh"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    env.pop("DATABASE_URL", None)

    subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, check=True, timeout=60)

    assert len(list((tmp_path / "broker" / "queue").iterdir())) == 1
