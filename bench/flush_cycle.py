"""Flush cycle: what one claim-send-settle round of 1,000 profiles costs, per
phase, with a large backlog of pending profile updates.

In-process: Django on a PostgreSQL database of its own beside the one
DATABASE_URL names (--database, default flush_bench; dropped and created again,
dropped after unless --keep), the Talon.One sandbox as a child process. Fills
--profiles pending identify rows (one profile each, burst-shaped attributes)
with INSERT ... SELECT over generate_series, then runs the worker's own flush
(services/delivery.flush) until nothing is pending, timing each phase of each
round by wrapping the functions that do it:

  claim    claims.claim: the due profiles' rows (expiry and deletion rules included)
  prepare  the profile handler's coalescing (per attribute the newest value)
  fence    Sender.send without the request: lease check and attempt count
  http     the bulk request to the sandbox (loopback)
  merge    outbox.merge_timestamps: the per-attribute delivered timestamps
  mark     profiles.mark_delivered without merge: the rows marked delivered
  record   Sender.record: the attempt row and its event links
  cycle    one whole round, claim to claim

Medians (and the slowest) in ms per round of 1,000 profiles, over the rounds
while at least half the backlog was still pending, and over all rounds. Not part
of `make test`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.flush_cycle
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import requests

from bench.stack import on_server, recreate_database

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "bench-api-key"
PHASES = ("claim", "prepare", "fence", "http", "merge", "mark", "record", "cycle")

EVENTS_SQL = """
INSERT INTO destinations_inboundevent (
    destination_id, message_id, type, user_id, payload, timestamp, received_at, kind,
    attributes, "call", notes, status, reason, attempts, queued_at, next_attempt_at,
    delivered_at, request_id
)
SELECT
    %(destination)s, 'bench-' || i, 'identify', 'member-' || i,
    jsonb_build_object('type', 'identify', 'messageId', 'bench-' || i, 'userId', 'member-' || i),
    t, t, 'profile',
    jsonb_build_object('email', 'member-' || i || '@example.com', 'plan', 'gold', 'vip', true,
                       'address_city', 'Berlin', 'bench_audience', true),
    '{}'::jsonb, '[]'::jsonb, 'pending', '', 0, t, t, NULL, gen_random_uuid()
FROM (
    -- 1,000 rows a millisecond apart, as batches of ingest store them.
    SELECT i, now() - interval '1 hour' + (i / 1000) * interval '1 millisecond' AS t
    FROM generate_series(1, %(profiles)s) AS i
) AS s
"""


def configure(database_url: str) -> None:
    from cryptography.fernet import Fernet

    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "integration_site.settings",
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
            "FIELD_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "TALON_HTTP_ALLOWED_HOSTS": "127.0.0.1",
            "DELIVERY_FLUSH_SECONDS": "3600",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


@contextmanager
def sandbox() -> Any:
    """The sandbox in a process of its own, as Talon.One is: its work is not the flusher's."""
    code = (
        "import sys\n"
        "from talon_sandbox.server import make_server\n"
        f"server = make_server(api_keys=[{API_KEY!r}], attributes={{'email': 'string', "
        "'plan': 'string', 'vip': 'boolean', 'address_city': 'string', "
        "'bench_audience': 'boolean'}, log_limit=10)\n"
        "print(server.url, flush=True)\n"
        "server.serve_forever()\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.wait(timeout=10)


class Timings:
    """Per round, the seconds spent in each phase."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, float]] = []
        self.round_started = 0.0

    def add(self, phase: str, seconds: float) -> None:
        if self.rounds:
            self.rounds[-1][phase] = self.rounds[-1].get(phase, 0.0) + seconds

    def wrap(self, phase: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(phase, time.perf_counter() - started)

        return timed

    def claim(self, function: Callable[..., Any]) -> Callable[..., Any]:
        """Claiming starts a round (and ends the one before)."""

        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            if self.rounds:
                self.rounds[-1]["cycle"] = started - self.round_started
            self.round_started = started
            self.rounds.append({})
            events = function(*args, **kwargs)
            self.add("claim", time.perf_counter() - started)
            if not events:
                self.rounds.pop()
            return events

        return timed


def instrument(timings: Timings) -> None:
    from destinations.services import delivery, outbox
    from destinations.services.handlers import profiles
    from destinations.talon_one import TalonOneClient

    delivery.claim = timings.claim(delivery.claim)
    profiles.coalesce = timings.wrap("prepare", profiles.coalesce)
    TalonOneClient.update_profiles = timings.wrap("http", TalonOneClient.update_profiles)
    outbox.merge_timestamps = timings.wrap("merge", outbox.merge_timestamps)
    profiles.mark_delivered = timings.wrap("mark", profiles.mark_delivered)
    outbox.Sender.send = timings.wrap("fence", outbox.Sender.send)
    outbox.Sender.record = timings.wrap("record", outbox.Sender.record)


def net(round_: dict[str, float]) -> dict[str, float]:
    """Phases without the ones nested in them (http in fence, merge in mark)."""
    shown = dict(round_)
    shown["fence"] = shown.get("fence", 0.0) - shown.get("http", 0.0)
    shown["mark"] = shown.get("mark", 0.0) - shown.get("merge", 0.0)
    return shown


def table(title: str, rounds: list[dict[str, float]]) -> None:
    print(f"\n{title} ({len(rounds)} rounds): ms per round of 1,000 profiles, median (slowest)")
    for phase in PHASES:
        values = [net(r).get(phase, 0.0) * 1000 for r in rounds if phase in r or phase != "cycle"]
        if values:
            print(f"  {phase:<8} {statistics.median(values):8.1f} ({max(values):.1f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", type=int, default=100_000)
    parser.add_argument("--database", default="flush_bench")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    options = parser.parse_args()

    server_url = os.environ.get("DATABASE_URL", "")
    database_url = recreate_database(server_url, options.database)
    try:
        configure(database_url)
        run(options.profiles)
    finally:
        from django.db import connections

        connections.close_all()
        if not options.keep:
            on_server(server_url, f'DROP DATABASE IF EXISTS "{options.database}"')


def run(profiles: int) -> None:
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    from destinations.models import Destination, InboundEvent
    from destinations.services import delivery

    call_command("migrate", "--noinput", verbosity=0)
    with sandbox() as sandbox_url:
        destination = Destination.objects.create(
            name="Bench",
            slug="bench",
            base_url=sandbox_url,
            api_key=API_KEY,
            shared_secret="bench-secret",  # noqa: S106 (the benchmark's own)
            max_requests_per_second=1000,  # the rounds' own cost, not the rate limit
        )
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(EVENTS_SQL, {"destination": destination.pk, "profiles": profiles})
            cursor.execute("VACUUM ANALYZE destinations_inboundevent")
        print(f"{profiles:,} pending rows stored in {time.perf_counter() - started:.1f} s")

        timings = Timings()
        instrument(timings)
        started = time.perf_counter()
        due = delivery.flush(destination.pk)
        while due is not None and due <= timezone.now():
            due = delivery.flush(destination.pk)
        elapsed = time.perf_counter() - started
        stats = requests.get(f"{sandbox_url}/sandbox/stats", timeout=5).json()

    pending = InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).count()
    print(
        f"flushed in {elapsed:.1f} s: {stats['requests']} requests, "
        f"{stats['profiles']:,} profiles in the sandbox, {pending} rows still pending"
    )
    rounds = timings.rounds
    table("backlog of at least half", rounds[: max(1, len(rounds) // 2)])
    table("all", rounds)


if __name__ == "__main__":
    main()
