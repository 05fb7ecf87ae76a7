"""Scale-out with real processes: two web processes and three workers (beat in
one) on one database and broker (PostgreSQL and Redis in CI), a 20,000-event
burst over two destinations. Every profile ends with its newest values, none is
updated more often than it had events, and no two requests for one profile
were ever in flight. docs/scaling.md explains what limits it."""

import json
import random
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
import requests
from django.db import connection

from destinations.models import DeliveryLease, InboundEvent
from tests.conftest import SECRET
from tests.e2e.conftest import WORKER_ARGS, Process, start_sandbox, start_web, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

PROFILES = 5000  # per destination, two events each: 20,000 events
HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}


def burst(slug: str) -> tuple[list[dict], dict[str, dict]]:
    """Two identifies a profile, shuffled: the newer one must win."""
    rng = random.Random(slug)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    events, expected = [], {}
    for p in range(PROFILES):
        user = f"{slug}-{p}"
        plans = [rng.choice(["bronze", "silver", "gold"]) for _ in range(2)]
        for k, plan in enumerate(plans):
            events.append({
                "type": "identify", "userId": user, "messageId": f"{user}-{k}",
                "timestamp": (base + timedelta(minutes=k)).isoformat(),
                "traits": {"plan": plan, "email": f"{user}@x.io"},
            })  # fmt: skip
        expected[user] = {"plan": plans[-1], "email": f"{user}@x.io"}
    rng.shuffle(events)
    return events, expected


def test_two_web_and_three_workers_deliver_a_20000_event_burst(
    processes, process_env, tmp_path, sandbox_process, make_destination
):
    for slug in ("north", "south"):
        make_destination(slug=slug, attributes=["plan", "email"], base_url=sandbox_process.url)
    sandbox = start_sandbox(sandbox_process)
    process_env["DELIVERY_SHARDS"] = "4"  # on PostgreSQL: four flushers per destination
    for i in range(2):
        (tmp_path / f"web{i}").mkdir()
    webs = [start_web(processes, process_env, tmp_path / f"web{i}") for i in range(2)]
    for i in range(3):
        args = [sys.executable, *WORKER_ARGS, "--schedule", str(tmp_path / "beat-schedule")]
        if i:  # beat runs once
            args.remove("--beat")
        processes.append(Process(f"worker{i}", args, tmp_path, process_env).start())
    work = {slug: burst(slug) for slug in ("north", "south")}
    posts = [
        (webs[n % 2], slug, events[i : i + 500])
        for slug, (events, _) in work.items()
        for n, i in enumerate(range(0, len(events), 500))
    ]

    def post(args: tuple[str, str, list[dict]]) -> int:
        web, slug, batch = args
        response = requests.post(
            f"{web}/api/v1/segment/{slug}", data=json.dumps(batch), headers=HEADERS, timeout=60
        )
        assert response.status_code == 200, response.text
        return response.json()["accepted"]

    with ThreadPoolExecutor(4) as pool:
        assert sum(pool.map(post, posts)) == 4 * PROFILES

    wait_for(lambda: not InboundEvent.objects.filter(status="pending").exists(), timeout=300)
    profiles = sandbox.profiles()
    expected = {**work["north"][1], **work["south"][1]}
    assert {p: profile["attributes"] for p, profile in profiles.items()} == expected
    assert max(profile["updates"] for profile in profiles.values()) <= 2
    assert set(InboundEvent.objects.values_list("status", flat=True)) <= {"delivered", "skipped"}
    assert sandbox.stats()["parallel_conflicts"] == 0
    if connection.vendor == "postgresql":  # every shard of both destinations flushed
        assert DeliveryLease.objects.filter(shard_count=4).count() == 8
