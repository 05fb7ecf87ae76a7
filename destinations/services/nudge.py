"""The nudge: ask a worker to flush a destination, at most once per window.

Ingest calls it after every commit that queued events, so it costs the request
no database statement: one atomic set-if-absent of a flag "a flush is queued for
destination D" that expires after NUDGE_WINDOW, in Redis (REDIS_URL) or, on the
embedded defaults (one machine, the filesystem broker), as a marker file beside
the broker's. Whoever sets the flag queues the flush task. The flusher clears it
(clear()) right after releasing its lease, before it looks for due work again:
an event committed before that look is seen by it, one committed after it finds
no flag and queues another flush. A task lost on its way, or a broker that does
not answer, delays delivery until the flag has expired and the next nudge (or the
sweeper's) queues again.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Protocol

import redis
from django.conf import settings

from integration_site.celery import app as celery_app

logger = logging.getLogger(__name__)

FLUSH_TASK = "destinations.tasks.flush_destination"
NUDGE_WINDOW = timedelta(seconds=10)
_WINDOW_SECONDS = NUDGE_WINDOW.total_seconds()

# After the flag store failed to answer, this process nudges nobody until then
# (time.monotonic()): a frozen Redis costs one request its short timeout per
# window, not every request.
_unreachable_until = 0.0


class Flags(Protocol):
    def set_if_absent(self, destination_id: int) -> bool:
        """Set the destination's flag; True when it was not set (or had expired)."""

    def delete(self, destination_id: int) -> None: ...


class RedisFlags:
    """SET key 1 NX PX window: one round trip, atomic across every process."""

    def __init__(self, url: str, prefix: str, timeouts: dict[str, object]) -> None:
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=timeouts.get("socket_connect_timeout"),
            socket_timeout=timeouts.get("socket_timeout"),
        )
        self.prefix = prefix

    def set_if_absent(self, destination_id: int) -> bool:
        key = f"{self.prefix}{destination_id}"
        return bool(self.client.set(key, 1, nx=True, px=int(_WINDOW_SECONDS * 1000)))

    def delete(self, destination_id: int) -> None:
        self.client.delete(f"{self.prefix}{destination_id}")


class FileFlags:
    """A marker file created with O_EXCL; older than the window by its mtime, it
    no longer counts. For the embedded defaults: every process on one machine."""

    def __init__(self, directory: Path, prefix: str) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.prefix = prefix

    def set_if_absent(self, destination_id: int) -> bool:
        path = self.directory / f"{self.prefix}{destination_id}"
        if _create(path):
            return True
        try:
            if time.time() - path.stat().st_mtime < _WINDOW_SECONDS:
                return False
        except FileNotFoundError:  # cleared meanwhile
            return _create(path)
        return self._replace_expired(path)

    def _replace_expired(self, path: Path) -> bool:
        # Under a lock, so that of two processes finding it expired one replaces it.
        with (self.directory / ".lock").open("a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                if time.time() - path.stat().st_mtime < _WINDOW_SECONDS:
                    return False
                path.unlink()
            except FileNotFoundError:
                pass
            return _create(path)

    def delete(self, destination_id: int) -> None:
        (self.directory / f"{self.prefix}{destination_id}").unlink(missing_ok=True)


def _create(path: Path) -> bool:
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        return False
    return True


@cache
def flags() -> Flags:
    """The flag store of this process; flags are per queue, like the tasks."""
    prefix = f"{settings.CELERY_TASK_DEFAULT_QUEUE}.flush-queued."
    if settings.REDIS_URL:
        return RedisFlags(settings.REDIS_URL, prefix, settings.NUDGE_BROKER_TRANSPORT_OPTIONS)
    return FileFlags(Path(settings.BROKER_DIR) / "nudges", prefix)


def nudge(destination_id: int) -> None:
    """Queue a flush of the destination, unless one is queued already (and has
    not started), or the broker did not answer within the last NUDGE_WINDOW."""
    global _unreachable_until
    if time.monotonic() < _unreachable_until:
        return
    try:
        if not flags().set_if_absent(destination_id):
            return
        # A connection of its own, short timeouts, no retry: a broker that does not
        # answer (frozen, not down) must not hold up ingest's answer.
        with celery_app.connection_for_write(
            transport_options=settings.NUDGE_BROKER_TRANSPORT_OPTIONS
        ) as connection:
            celery_app.send_task(
                FLUSH_TASK, args=[destination_id], connection=connection, retry=False
            )
    except Exception:  # the broker is down: the sweeper will find the work in the database
        _unreachable_until = time.monotonic() + _WINDOW_SECONDS
        logger.warning(
            "Could not queue a flush of destination %s; the sweeper will", destination_id
        )


def clear(destination_id: int) -> None:
    """The queued flush has run: the next nudge queues another. The flusher calls
    it right after releasing its lease, before it looks for due work again."""
    try:
        flags().delete(destination_id)
    except Exception:  # the flag expires by itself after NUDGE_WINDOW
        logger.warning("Could not clear the queued flush of destination %s", destination_id)
