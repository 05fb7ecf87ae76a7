"""Segment's real shapes end to end, with real processes: gunicorn serving
ingest, a Celery worker, and the sandbox as Talon.One."""

import base64
import json

import pytest
import requests
from django.contrib.auth.models import User
from segment.analytics import Client as SegmentClient

from destinations.models import InboundEvent, RefusedAttribute
from destinations.services import tracking
from tests.conftest import SECRET, identify
from tests.e2e.conftest import start_sandbox, start_web, wait_for
from tests.segment_payloads import actions_batch, js_json, segment_identify

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

WRITE_KEY = "wk_e2e_4KqP9sLm2XvT7RbN"
BEARER = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}


@pytest.fixture
def stack(processes, process_env, tmp_path, worker, sandbox_process, make_destination):
    destination = make_destination(
        attributes=["email", "plan", "address_city", "notInTalon"],
        base_url=sandbox_process.url,
        accept_first_event_signature=True,
    )
    tracking.set_write_key(destination, WRITE_KEY)
    sandbox = start_sandbox(sandbox_process)
    web = start_web(processes, process_env, tmp_path)
    return web, sandbox


def delivered(sandbox, count):
    return wait_for(lambda: len(sandbox.profiles()) >= count and sandbox.profiles(), timeout=90)


def test_a_4000_event_actions_batch_signed_as_segment_signs_it_is_delivered(stack):
    web, sandbox = stack
    raw, signature = actions_batch([segment_identify(i) for i in range(4000)])

    response = requests.post(
        f"{web}/api/v1/segment/acme/",
        data=raw,
        headers={"Content-Type": "application/json", "X-Signature": signature},
        timeout=30,
    )

    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 4000, "skipped": 0, "duplicates": 0}
    profiles = delivered(sandbox, 4000)
    assert len(profiles) == 4000
    assert profiles["97980cfea0067-3999"]["attributes"] == {
        "email": "peter.3999@example.com",
        "plan": "premium",
        "address_city": "San Francisco",
    }
    # 1,000 profiles a request, per shard: the e2e workers flush two shards (on
    # PostgreSQL), which split the 4,000 profiles unevenly.
    requests_sent = sandbox.requests_log()
    assert all(len(r["body"]["customerProfiles"]) <= 1000 for r in requests_sent)
    assert len(requests_sent) <= 4 + 1


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("PUT", "/api/v1/segment/acme/"),
        ("PATCH", "/api/v1/segment/acme"),
        ("POST", "/api/v1/segment/acme"),
    ],
)
def test_put_patch_the_slash_less_url_and_a_numeric_user_id_are_delivered(stack, method, path):
    web, sandbox = stack
    event = identify(user_id=8675309, traits={"email": "jenny@example.com"})

    response = requests.request(
        method, web + path, data=js_json([event]), headers=BEARER, timeout=10
    )

    assert response.status_code == 200, response.text
    profiles = delivered(sandbox, 1)
    assert profiles["8675309"]["attributes"] == {"email": "jenny@example.com"}


def test_an_attribute_unknown_to_talon_one_sinks_nothing_else_and_is_listed(stack, client):
    web, sandbox = stack
    events = [
        identify(f"u{i}", f"m{i}", traits={"email": f"u{i}@x.io", "notInTalon": i})
        for i in range(50)
    ]

    response = requests.post(
        f"{web}/api/v1/segment/acme/", data=js_json(events), headers=BEARER, timeout=10
    )

    assert response.status_code == 200
    profiles = delivered(sandbox, 50)
    assert all(profiles[f"u{i}"]["attributes"] == {"email": f"u{i}@x.io"} for i in range(50))
    wait_for(lambda: not InboundEvent.objects.filter(status="pending").exists())
    assert set(InboundEvent.objects.values_list("status", flat=True)) == {"delivered"}
    refused = RefusedAttribute.objects.get()
    assert (refused.name, refused.event_count) == ("notInTalon", 50)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "x"))
    assert "notInTalon" in client.get("/admin/").content.decode()


def test_segments_python_sdk_identifies_reach_talon_one(stack):
    web, sandbox = stack
    sdk = SegmentClient(WRITE_KEY, host=web, sync_mode=True, gzip=True, max_retries=0)
    errors = []
    sdk.on_error = lambda error, batch: errors.append(error)

    sdk.identify(
        "sdk-1", {"email": "ada@example.com", "plan": "gold", "address": {"city": "London"}}
    )
    sdk.identify(1815, {"email": "lovelace@example.com"})
    sdk.flush()

    assert errors == []
    profiles = delivered(sandbox, 2)
    assert profiles["sdk-1"]["attributes"] == {
        "email": "ada@example.com",
        "plan": "gold",
        "address_city": "London",
    }
    assert profiles["1815"]["attributes"] == {"email": "lovelace@example.com"}


def test_the_tracking_api_answers_as_segments_does(stack):
    web, _ = stack
    auth = "Basic " + base64.b64encode(f"{WRITE_KEY}:".encode()).decode()

    ok = requests.post(
        f"{web}/v1/track",
        json={"userId": "u", "event": "x"},
        headers={"Authorization": auth},
        timeout=10,
    )
    refused = requests.post(f"{web}/v1/track", json={"userId": "u", "event": "x"}, timeout=10)

    assert (ok.status_code, ok.json()) == (200, {"success": True})
    assert refused.status_code == 401
    assert json.loads(refused.text)["success"] is False
