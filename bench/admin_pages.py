"""Audit-log pages at scale: each admin page's time and query count with
1,000,000 events and 2,000 attempts in PostgreSQL, then again right after
300,000 recent events changed status (dead rows, stale visibility map).

Needs DATABASE_URL pointing at a PostgreSQL server; the script creates (and
drops first) a database of its own beside it (--database, default
admin_bench), migrates it and fills it with INSERT ... SELECT over
generate_series (a few minutes). Pages are requested through Django's test
client as a superuser: every admin view, middleware and template, no network.
Each page is requested once to warm the caches, then --repeat times; the
median is reported next to the 100 ms target. Not part of `make test`.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python -m bench.admin_pages
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

from bench.stack import recreate_database

ROOT = Path(__file__).resolve().parent.parent
TARGET_MS = 100.0


# The benchmark's own key, so that a filled database can be looked at again.
BENCH_FERNET_KEY = "YmVuY2gtYWRtaW4tcGFnZXMta2V5LTMyLWJ5dGVzISE="


def configure(database_url: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "integration_site.settings",
            "DATABASE_URL": database_url,
            "DJANGO_SECRET_KEY": "bench-" + "x" * 50,
            "FIELD_ENCRYPTION_KEYS": BENCH_FERNET_KEY,
            "DJANGO_ALLOWED_HOSTS": "testserver",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


# Identify calls with a handful of traits: about 600 bytes of payload a row.
# The newest `updates` events start pending (a backlog), the rest are settled.
EVENTS_SQL = """
INSERT INTO destinations_inboundevent (
    destination_id, message_id, type, user_id, payload, timestamp, received_at, kind,
    attributes, "call", notes, status, reason, attempts, queued_at, next_attempt_at,
    delivered_at, request_id
)
SELECT
    CASE WHEN i %% 20 = 0 THEN %(legacy)s WHEN i %% 5 = 0 THEN %(app)s ELSE %(shop)s END,
    'msg-' || i,
    CASE WHEN i %% 10 = 0 THEN 'track' ELSE 'identify' END,
    'user-' || (i %% 200000),
    jsonb_build_object(
        'type', 'identify', 'userId', 'user-' || (i %% 200000), 'messageId', 'msg-' || i,
        'timestamp', to_char(t, 'YYYY-MM-DD"T"HH24:MI:SS"Z"'),
        'traits', jsonb_build_object(
            'email', 'user-' || (i %% 200000) || '@example.com', 'plan', 'gold',
            'firstName', 'Ada', 'age', CASE WHEN i %% 200 = 0 THEN to_jsonb('old'::text)
                                            ELSE to_jsonb(i %% 90) END,
            'address', jsonb_build_object('city', 'Berlin', 'zip', '10115')),
        'context', jsonb_build_object('library', jsonb_build_object(
            'name', 'analytics.js', 'version', '5.2.0'), 'ip', '203.0.113.7',
            'userAgent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36')),
    t, t, 'profile',
    jsonb_build_object('email', 'user-' || (i %% 200000) || '@example.com', 'plan', 'gold'),
    '{}'::jsonb,
    CASE WHEN i %% 200 = 0 THEN jsonb_build_array(
             jsonb_build_object('attribute', 'age', 'reason',
                 'cannot be sent as number: the string is not a decimal number; dropped'),
             jsonb_build_object('attribute', 'firstName', 'reason', 'not listed; not sent'))
         WHEN i %% 3 = 0 THEN jsonb_build_array(
             jsonb_build_object('attribute', 'firstName', 'reason', 'not listed; not sent'))
         ELSE '[]'::jsonb END,
    CASE WHEN i > %(n)s - %(updates)s THEN 'pending'
         WHEN i %% 97 = 0 THEN 'failed'
         WHEN i %% 10 = 0 THEN 'skipped'
         ELSE 'delivered' END,
    CASE WHEN i > %(n)s - %(updates)s THEN ''
         WHEN i %% 97 = 0 THEN 'Talon.One answered 400: customer profile rejected'
         WHEN i %% 10 = 0 THEN 'not forwarded: no event mapping for this track call'
         ELSE '' END,
    1, t, CASE WHEN i > %(n)s - %(updates)s THEN t END,
    CASE WHEN i <= %(n)s - %(updates)s AND i %% 97 <> 0 AND i %% 10 <> 0 THEN t END,
    gen_random_uuid()
FROM (
    SELECT i, now() - (%(n)s - i) * interval '2 seconds' AS t
    FROM generate_series(%(start)s, %(stop)s) AS i
) AS s
"""

# Bulk requests of 1,000 profiles (about 60 KB of request body each), some failing.
ATTEMPTS_SQL = """
WITH body AS (
    SELECT jsonb_build_object('customerProfiles', jsonb_agg(jsonb_build_object(
        'integrationId', 'user-' || p,
        'attributes', jsonb_build_object('email', 'user-' || p || '@example.com',
                                         'plan', 'gold')))) AS b
    FROM generate_series(1, 1000) AS p
)
INSERT INTO destinations_deliveryattempt (
    destination_id, integration_id, profile_count, method, url, request_body,
    response_status, response_body, error, duration_ms, attempt_number, outcome, task_id,
    created_at
)
SELECT %(shop)s, '', 1000, 'PUT', %(url)s || '/v2/customer_profiles?silent=yes', body.b,
    CASE WHEN a %% 50 = 0 THEN 503 WHEN a %% 40 = 0 THEN 400 ELSE 204 END,
    CASE WHEN a %% 50 = 0 THEN '{"message": "Service Unavailable"}'
         WHEN a %% 40 = 0 THEN '{"message": "customer profile rejected"}' ELSE '' END,
    CASE WHEN a %% 50 = 0 THEN 'Talon.One answered 503: Service Unavailable'
         WHEN a %% 40 = 0 THEN 'Talon.One answered 400: customer profile rejected' ELSE '' END,
    300, 1,
    CASE WHEN a %% 50 = 0 THEN 'retry' WHEN a %% 40 = 0 THEN 'failed' ELSE 'success' END,
    'task-' || a, now() - (%(attempts)s - a) * interval '1 minute'
FROM generate_series(1, %(attempts)s) AS a, body
"""

LINKS_SQL = """
INSERT INTO destinations_deliveryattempt_events (deliveryattempt_id, inboundevent_id)
SELECT a.id, e.id
FROM destinations_deliveryattempt AS a
JOIN LATERAL (
    SELECT id FROM destinations_inboundevent
    WHERE id BETWEEN a.id * 400 AND a.id * 400 + 9
) AS e ON true
"""


def fill(events: int, attempts: int, updates: int) -> dict[str, int]:
    from django.contrib.auth.models import User
    from django.db import connection

    from destinations.models import AttributeMapping, Destination

    ids = {}
    for slug in ("shop", "app", "legacy"):
        destination = Destination.objects.create(
            name=slug.title(), slug=slug, base_url=f"https://{slug}.europe-west1.talon.one",
            api_key=f"bench-key-{slug}", shared_secret=f"bench-secret-{slug}",
        )  # fmt: skip
        for name in ("email", "plan", "age"):
            AttributeMapping.objects.create(destination=destination, name=name, type="string")
        ids[slug] = destination.pk
    User.objects.create_superuser("bench", password="bench-password-1")  # noqa: S106

    started = time.monotonic()
    chunk = 100_000
    with connection.cursor() as cursor:
        for start in range(1, events + 1, chunk):
            stop = min(start + chunk - 1, events)
            cursor.execute(
                EVENTS_SQL,
                {**ids, "n": events, "updates": updates, "start": start, "stop": stop},
            )
            print(f"  events {stop:>9,} ({time.monotonic() - started:.0f} s)", flush=True)
        cursor.execute(
            ATTEMPTS_SQL,
            {
                "shop": ids["shop"],
                "url": "https://shop.europe-west1.talon.one",
                "attempts": attempts,
            },
        )
        cursor.execute(LINKS_SQL)
        cursor.execute("VACUUM ANALYZE")
        # Written out now, so the first timings do not share the disk with the fill.
        cursor.execute("CHECKPOINT")
    print(f"  filled and analysed in {time.monotonic() - started:.0f} s", flush=True)
    return ids


def settle_recent(updates: int) -> float:
    """The backlog delivered: the newest `updates` events go from pending to
    delivered in batches, as the worker would, and nothing vacuums in between."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute("SELECT max(id) FROM destinations_inboundevent")
        (top,) = cursor.fetchone()
        for low in range(top - updates + 1, top + 1, 1000):
            cursor.execute(
                "UPDATE destinations_inboundevent SET status = 'delivered', "
                "delivered_at = now(), next_attempt_at = NULL "
                "WHERE id BETWEEN %s AND %s AND status = 'pending'",
                [low, low + 999],
            )
    return time.monotonic() - started


def pages(ids: dict[str, int]) -> list[tuple[str, str]]:
    from django.utils import timezone

    from destinations.models import DeliveryAttempt, InboundEvent

    middle = InboundEvent.objects.order_by("-id").values_list("pk", flat=True).first() // 2
    # A partial delivery (every 200th event): two notes, one value dropped.
    event = (
        InboundEvent.objects.filter(message_id=f"msg-{middle // 200 * 200}")
        .values_list("pk", "message_id", "user_id")
        .get()
    )
    week_ago = quote((timezone.now() - timedelta(days=7)).isoformat())
    attempt = DeliveryAttempt.objects.order_by("-id").values_list("pk", flat=True).first()
    events = "/admin/destinations/inboundevent/"
    return [
        ("admin index", "/admin/"),
        ("event list", events),
        ("events of a destination", f"{events}?destination__id__exact={ids['app']}"),
        ("failed events", f"{events}?status__exact=failed"),
        (
            "failed events of a destination",
            f"{events}?destination__id__exact={ids['app']}&status__exact=failed",
        ),
        ("partial deliveries (values dropped)", f"{events}?mapping_notes=dropped"),
        ("track events, last 7 days", f"{events}?type=track&received_at__gte={week_ago}"),
        ("search by userId", f"{events}?q={event[2]}"),
        ("search by messageId", f"{events}?q={event[1]}"),
        ("search by email", f"{events}?q={event[2]}@example.com"),
        ("event detail", f"{events}{event[0]}/change/"),
        ("attempt list", "/admin/destinations/deliveryattempt/"),
        ("attempts answered 5xx", "/admin/destinations/deliveryattempt/?response_status=5xx"),
        ("attempt detail", f"/admin/destinations/deliveryattempt/{attempt}/change/"),
        ("destination list", "/admin/destinations/destination/"),
        ("destination page", f"/admin/destinations/destination/{ids['shop']}/change/"),
    ]  # fmt: skip


def measure(get: Callable[[str], int], url: str, repeat: int) -> tuple[float, float, int]:
    from django.db import connection

    queries = []

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        queries.append(sql)
        return execute(sql, params, many, context)

    with connection.execute_wrapper(count):
        status = get(url)  # warms the caches, counts the queries
    if status != 200:
        raise SystemExit(f"{url} answered {status}")
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        get(url)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), max(times), len(queries)


def run(ids: dict[str, int], repeat: int) -> dict[str, tuple[float, float, int]]:
    from django.contrib.auth.models import User
    from django.core.cache import cache
    from django.test import Client

    client = Client()
    client.force_login(User.objects.get(username="bench"))

    def get(url: str) -> int:
        return client.get(url).status_code

    def recount(url: str) -> int:
        cache.clear()  # the dashboard's counts, kept for a minute
        return get(url)

    results = {name: measure(get, url, repeat) for name, url in pages(ids)}
    results["admin index, counting again (once a minute)"] = measure(recount, "/admin/", repeat)
    return results


def table(
    fresh: dict[str, tuple[float, float, int]], after: dict[str, tuple[float, float, int]]
) -> str:
    lines = [
        "| page | median ms (max) | queries | after the updates: median ms (max) | target |",
        "| --- | ---: | ---: | ---: | --- |",
    ]
    for name, (median, worst, queries) in fresh.items():
        median2, worst2, _ = after[name]
        ok = "under" if max(median, median2) < TARGET_MS else "**over**"
        lines.append(
            f"| {name} | {median:.1f} ({worst:.1f}) | {queries} | {median2:.1f} ({worst2:.1f}) "
            f"| {ok} {TARGET_MS:.0f} ms |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--attempts", type=int, default=2_000)
    parser.add_argument("--updates", type=int, default=300_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--database", default="admin_bench")
    args = parser.parse_args()
    server = os.environ.get("DATABASE_URL", "")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    url = recreate_database(server, args.database)
    configure(url)
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    print(f"filling {args.events:,} events, {args.attempts:,} attempts", flush=True)
    ids = fill(args.events, args.attempts, args.updates)
    fresh = run(ids, args.repeat)
    seconds = settle_recent(args.updates)
    print(f"{args.updates:,} recent events pending -> delivered in {seconds:.0f} s", flush=True)
    after = run(ids, args.repeat)
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}\n")
    print(table(fresh, after))


if __name__ == "__main__":
    main()
