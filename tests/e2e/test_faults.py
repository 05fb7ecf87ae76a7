"""Fault injection with real processes: gunicorn, Celery worker (with beat),
the sandbox, and the broker. Each test ends by comparing the sandbox's
profiles with the expected ones exactly (nothing lost, nothing stale) and
checking that no request ever collided with another for the same profile."""

from __future__ import annotations

import json
import random
import signal
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests

from destinations.models import InboundEvent
from tests.conftest import sign
from tests.e2e.conftest import start_sandbox, start_web, wait_for, worker_process

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ATTRIBUTES = [("email", "string"), ("plan", "string"), ("age", "number"), ("vip", "boolean")]


def scenario(
    profiles: int, events_per_profile: int, seed: int
) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """Shuffled identify calls and the profiles they must produce: per attribute
    the value of the call with the newest timestamp."""
    rng = random.Random(seed)
    base = datetime(2026, 1, 1, tzinfo=UTC)
    events, expected = [], {}
    for p in range(profiles):
        user_id = f"user-{p}"
        newest: dict[str, Any] = {}
        for k in range(events_per_profile):
            traits = {
                "email": f"{user_id}-{k}@example.com",
                "plan": rng.choice(["bronze", "silver", "gold"]),
                "age": rng.randint(18, 90),
                "vip": rng.random() < 0.5,
            }
            traits = dict(rng.sample(sorted(traits.items()), rng.randint(1, len(traits))))
            newest.update(traits)  # k grows with the timestamp
            events.append({
                "type": "identify",
                "messageId": f"{user_id}-{k}",
                "userId": user_id,
                "timestamp": (base + timedelta(minutes=k)).isoformat(),
                "traits": traits,
            })  # fmt: skip
        expected[user_id] = newest
    rng.shuffle(events)
    return events, expected


def post(web: str, events: list[dict[str, Any]], batch: int = 25) -> list[dict[str, int]]:
    answers = []
    for i in range(0, len(events), batch):
        raw = json.dumps(events[i : i + batch]).encode()
        response = requests.post(
            f"{web}/api/v1/segment/acme/",
            data=raw,
            headers={"Content-Type": "application/json", "X-Signature": sign(raw)},
            timeout=10,
        )
        assert response.status_code == 200, response.text
        answers.append(response.json())
    return answers


def settled() -> bool:
    return not InboundEvent.objects.filter(status=InboundEvent.Status.PENDING).exists()


def assert_delivered_exactly(sandbox, expected: dict[str, dict[str, Any]]) -> None:
    wait_for(settled, timeout=120)
    assert not InboundEvent.objects.filter(status=InboundEvent.Status.FAILED).exists()
    profiles = {pid: profile["attributes"] for pid, profile in sandbox.profiles().items()}
    assert profiles == expected
    # The service promises never two requests for one profile in flight; the
    # sandbox counts the real collisions apart from injected 409s.
    assert sandbox.stats()["parallel_conflicts"] == 0


@pytest.fixture(autouse=True)
def own_queue(process_env):
    """Every process here is a child: give them a queue no earlier test left tasks in."""
    process_env["CELERY_QUEUE"] = f"faults-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def destination(make_destination, sandbox_process):
    return make_destination(attributes=ATTRIBUTES, base_url=sandbox_process.url)


@pytest.fixture
def web(processes, process_env, tmp_path, destination) -> str:
    return start_web(processes, process_env, tmp_path)


def test_talon_one_answering_30_percent_errors(
    destination, sandbox_process, processes, process_env, tmp_path
):
    # Small bulk requests: 40 profiles need at least 4 of them, plus retries, so
    # the random errors get many chances besides the certain ones.
    process_env["DELIVERY_BATCH_SIZE"] = "10"
    sandbox = start_sandbox(sandbox_process)
    certain = [500, 503, 409, 429, 500]
    sandbox.set_faults(fail_next=certain, error_rate={"500": 0.2, "503": 0.05, "409": 0.05})
    worker_process(processes, process_env, tmp_path).start()
    web = start_web(processes, process_env, tmp_path)
    events, expected = scenario(profiles=40, events_per_profile=3, seed=1)

    post(web, events)

    assert_delivered_exactly(sandbox, expected)
    by_status = Counter(sandbox.stats()["by_status"])
    assert Counter(str(status) for status in certain) <= by_status
    assert by_status["204"] >= 4  # 40 profiles, at most 10 per request


def test_talon_one_down_for_a_while(destination, sandbox_process, worker, web):
    events, expected = scenario(profiles=30, events_per_profile=2, seed=2)
    post(web, events)
    wait_for(lambda: InboundEvent.objects.filter(attempts__gte=2).exists(), timeout=60)

    sandbox = start_sandbox(sandbox_process)

    assert_delivered_exactly(sandbox, expected)


def test_every_event_sent_twice_in_parallel(destination, sandbox_process, worker, web):
    sandbox = start_sandbox(sandbox_process)
    events, expected = scenario(profiles=30, events_per_profile=3, seed=3)

    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = [a for run in pool.map(lambda _: post(web, events), range(2)) for a in run]

    assert sum(a["accepted"] for a in answers) == len(events)
    assert sum(a["duplicates"] for a in answers) == len(events)
    assert InboundEvent.objects.count() == len(events)
    assert_delivered_exactly(sandbox, expected)


def test_late_and_out_of_order_events_never_overwrite_newer_values(
    destination, sandbox_process, worker, web
):
    sandbox = start_sandbox(sandbox_process)
    events, expected = scenario(profiles=20, events_per_profile=4, seed=4)
    newest_first = sorted(events, key=lambda e: e["timestamp"], reverse=True)
    half = len(newest_first) // 2

    post(web, newest_first[:half])
    wait_for(settled, timeout=60)
    post(web, newest_first[half:])  # Segment's late retries of older calls

    assert_delivered_exactly(sandbox, expected)


def test_worker_killed_in_the_middle_of_a_flush(
    destination, sandbox_process, processes, process_env, tmp_path, web
):
    sandbox = start_sandbox(sandbox_process)
    sandbox.set_faults(latency_ms=1500)
    events, expected = scenario(profiles=30, events_per_profile=2, seed=5)
    first = worker_process(processes, process_env, tmp_path).start()
    post(web, events)

    sandbox.wait_in_flight(timeout=60)  # a bulk request is held for 1.5 s...
    first.stop(signal.SIGKILL)  # ...and its sender dies before the answer
    wait_for(lambda: sandbox.stats()["in_flight"] == 0, timeout=10)
    killed = sandbox.requests_log()[-1]
    assert killed["status"] == 204  # applied by Talon.One, the answer lost
    for profile in killed["body"]["customerProfiles"]:  # so its events stay pending
        assert InboundEvent.objects.filter(
            user_id=profile["integrationId"], status=InboundEvent.Status.PENDING
        ).exists()

    sandbox.set_faults(latency_ms=0)
    worker_process(processes, process_env, tmp_path).start()

    assert_delivered_exactly(sandbox, expected)


def test_broker_restarted_and_emptied(
    destination, sandbox_process, private_redis, processes, process_env, tmp_path
):
    sandbox = start_sandbox(sandbox_process)
    web = start_web(processes, process_env, tmp_path)
    events, expected = scenario(profiles=30, events_per_profile=2, seed=6)

    post(web, events)  # no worker yet: the nudges wait in Redis...
    assert private_redis.keys()
    private_redis.restart_empty()  # ...and are lost
    worker_process(processes, process_env, tmp_path).start()

    assert_delivered_exactly(sandbox, expected)
