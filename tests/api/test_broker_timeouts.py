"""Ingest answers even when Redis accepts connections and then never answers."""

from __future__ import annotations

import logging
import runpy
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import SimpleNamespace

import pytest
from celery import Celery
from django.db import connections
from pytest_django.fixtures import SettingsWrapper

from destinations.services import nudge
from integration_site import settings as site_settings

# The nudge runs in a thread, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@dataclass
class StalledRedis:
    url: str
    accepted: list[socket.socket]


@pytest.fixture
def stalled_redis() -> Iterator[StalledRedis]:
    """A TCP server that accepts every connection and never sends a byte."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                accepted.append(server.accept()[0])
            except OSError:  # the server was closed
                return

    threading.Thread(target=accept, daemon=True).start()
    yield StalledRedis(f"redis://127.0.0.1:{server.getsockname()[1]}/0", accepted)
    server.close()
    for peer in accepted:  # a nudge still waiting gets end-of-file, not eternity
        peer.close()


@pytest.fixture
def production_celery(
    stalled_redis: StalledRedis, monkeypatch: pytest.MonkeyPatch, settings: SettingsWrapper
) -> Celery:
    """A Celery app, and the nudge's broker options, as the settings configure them
    for REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", stalled_redis.url)
    production = runpy.run_path(site_settings.__file__)  # afresh, with this environment
    app = Celery("stalled", set_as_current=False)
    app.config_from_object(SimpleNamespace(**production), namespace="CELERY")
    monkeypatch.setattr(nudge, "celery_app", app)
    monkeypatch.setattr(nudge, "_unreachable_until", 0.0)
    settings.NUDGE_BROKER_TRANSPORT_OPTIONS = production["NUDGE_BROKER_TRANSPORT_OPTIONS"]
    return app


@pytest.fixture
def stalled_flags(
    production_celery: Celery,
    stalled_redis: StalledRedis,
    monkeypatch: pytest.MonkeyPatch,
    settings: SettingsWrapper,
) -> nudge.RedisFlags:
    """The queued-flush flags in the stalled Redis too, as with REDIS_URL."""
    store = nudge.RedisFlags(stalled_redis.url, "stalled.", settings.NUDGE_BROKER_TRANSPORT_OPTIONS)
    monkeypatch.setattr(nudge, "flags", lambda: store)
    return store


@pytest.fixture
def file_flags(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The flags answer; only the broker is stalled."""
    store = nudge.FileFlags(tmp_path, "stalled.")
    monkeypatch.setattr(nudge, "flags", lambda: store)


def nudge_in_thread(destination_id: int) -> None:
    raised: list[BaseException] = []

    def send_nudge() -> None:
        try:
            nudge.nudge(destination_id)
        except BaseException as exc:
            raised.append(exc)
        finally:
            connections.close_all()

    started = time.monotonic()
    worker = threading.Thread(target=send_nudge, daemon=True)
    worker.start()
    worker.join(timeout=15)

    assert not worker.is_alive(), "nudge is still waiting for Redis"
    # The nudge's own short timeouts (0.5 s), not the worker's (5 s), and no retry.
    assert time.monotonic() - started < 3
    assert raised == []


@pytest.mark.usefixtures("production_celery", "file_flags")
def test_nudge_gives_up_on_a_stalled_redis_at_once_and_says_so(
    stalled_redis, make_destination, caplog
):
    destination = make_destination()

    with caplog.at_level(logging.WARNING, logger=nudge.__name__):
        nudge_in_thread(destination.pk)

    assert len(stalled_redis.accepted) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == nudge.__name__]
    assert warnings == [
        f"Could not queue a flush of destination {destination.pk}; the sweeper will"
    ]


@pytest.mark.usefixtures("stalled_flags")
def test_flags_in_a_stalled_redis_cost_one_nudge_its_timeout_per_window(
    stalled_redis, make_destination, caplog
):
    destination = make_destination()

    with caplog.at_level(logging.WARNING, logger=nudge.__name__):
        nudge_in_thread(destination.pk)
        nudge_in_thread(destination.pk)  # within the window: Redis is not asked again

    assert len(stalled_redis.accepted) == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == nudge.__name__]
    assert warnings == [
        f"Could not queue a flush of destination {destination.pk}; the sweeper will"
    ]
