"""Ingest answers even when Redis accepts connections and then never answers."""

from __future__ import annotations

import logging
import runpy
import socket
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from celery import Celery
from django.db import connections

from destinations.services import delivery
from integration_site import settings as site_settings

# The nudge runs in a thread, which sees only committed rows.
pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def stalled_redis() -> Iterator[str]:
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
    yield f"redis://127.0.0.1:{server.getsockname()[1]}/0"
    server.close()
    for peer in accepted:  # a nudge still waiting gets end-of-file, not eternity
        peer.close()


@pytest.fixture
def production_celery(stalled_redis: str, monkeypatch: pytest.MonkeyPatch) -> Celery:
    """A Celery app configured as the settings configure it for REDIS_URL."""
    monkeypatch.setenv("REDIS_URL", stalled_redis)
    settings = runpy.run_path(site_settings.__file__)  # afresh, with this environment
    app = Celery("stalled", set_as_current=False)
    app.config_from_object(SimpleNamespace(**settings), namespace="CELERY")
    monkeypatch.setattr(delivery, "celery_app", app)
    return app


def test_nudge_gives_up_on_a_stalled_redis_within_seconds(
    production_celery, make_destination, caplog
):
    destination = make_destination()
    raised: list[BaseException] = []

    def nudge() -> None:
        try:
            delivery.nudge(destination.pk)
        except BaseException as exc:
            raised.append(exc)
        finally:
            connections.close_all()

    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger=delivery.__name__):
        worker = threading.Thread(target=nudge, daemon=True)
        worker.start()
        worker.join(timeout=15)

    assert not worker.is_alive(), "nudge is still waiting for Redis"
    assert time.monotonic() - started < 10
    assert raised == []
    assert "Could not queue a flush" in caplog.text
