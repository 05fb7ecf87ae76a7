"""Every kind of call end to end, with real processes: gunicorn, a Celery
worker and the sandbox; under faults too."""

import json

import pytest
import requests

from destinations.models import DeliveryAttempt, EventMapping, InboundEvent, TalonAudience
from tests.conftest import SECRET, audience_identify, identify
from tests.e2e.conftest import start_sandbox, start_web, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

HEADERS = {"Authorization": f"Bearer {SECRET}", "Content-Type": "application/json"}
AUDIENCE = "vip_customers"


@pytest.fixture
def stack(processes, process_env, tmp_path, worker, sandbox_process, make_destination):
    destination = make_destination(
        attributes=["email", "plan"], base_url=sandbox_process.url, engage_audiences="audience"
    )
    mapping = EventMapping.objects.create(
        destination=destination, segment_event="Order Completed", talon_event_type="order"
    )
    mapping.properties.create(name="total", type="number")
    sandbox = start_sandbox(sandbox_process)
    return start_web(processes, process_env, tmp_path), sandbox


def post(web, events):
    response = requests.post(
        f"{web}/api/v1/segment/acme", data=json.dumps(events), headers=HEADERS, timeout=30
    )
    assert response.status_code == 200, response.text
    return response.json()


def audience_call(user_id, message_id, member, timestamp="2026-01-01T00:00:00Z"):
    return audience_identify(user_id, message_id, AUDIENCE, member, timestamp=timestamp)


def settled():
    return not InboundEvent.objects.filter(status="pending").exists()


def test_a_listed_track_event_reaches_talon_one_with_typed_attributes(stack):
    web, sandbox = stack

    post(web, [{"type": "track", "event": "Order Completed", "userId": "u1", "messageId": "t1",
                "properties": {"total": "19.99", "sku": "not listed"}}])  # fmt: skip

    profile = wait_for(lambda: sandbox.profile("u1"))
    assert profile["events"] == [{"type": "order", "attributes": {"total": 19.99}}]


def test_10000_audience_entries_then_exits_in_bulk(stack):
    web, sandbox = stack
    for start in range(0, 10_000, 2000):
        post(web, [audience_call(f"u{i}", f"in-{i}", True) for i in range(start, start + 2000)])
    wait_for(settled, timeout=120)
    (audience,) = sandbox.audiences()
    assert all(sandbox.profile(f"u{i}")["audiences"] == [audience["id"]] for i in (0, 4321, 9999))
    entries = [r for r in sandbox.requests_log() if r["path"] != "/v2/events"]
    assert len(entries) <= 15  # one audience created, 10 bulk requests of 1,000 memberships

    post(
        web,
        [audience_call(f"u{i}", f"out-{i}", False, "2026-01-02T00:00:00Z") for i in range(2000)],
    )
    wait_for(settled, timeout=120)

    assert sandbox.profile("u0")["audiences"] == []
    assert sandbox.profile("u2000")["audiences"] == [audience["id"]]
    counts = TalonAudience.objects.values_list("members_added", "members_removed").get()
    assert counts == (10_000, 2000)


def test_a_delete_removes_the_profile_after_its_updates_and_leaves_no_trait(stack):
    web, sandbox = stack
    post(web, [identify("u1", "m1", traits={"email": "grace@example.com", "plan": "gold"})])
    wait_for(lambda: sandbox.profile("u1"))

    post(web, [identify("u1", "m2", traits={"plan": "platinum"}, timestamp="2026-01-01T12:00:01Z"),
               {"type": "delete", "userId": "u1", "messageId": "d1",
                "timestamp": "2026-01-01T12:00:02Z"}])  # fmt: skip
    wait_for(settled)

    assert sandbox.profile("u1") is None
    methods = [r["method"] for r in sandbox.requests_log()]
    assert methods[-1] == "DELETE"
    audit = json.dumps(
        [
            list(InboundEvent.objects.values("payload", "attributes", "notes", "reason")),
            list(DeliveryAttempt.objects.values("request_body", "response_body", "error")),
        ],
        default=str,
    )
    for trait in ("grace@example.com", "gold", "platinum"):
        assert trait not in audit


def test_every_kind_is_delivered_through_talon_one_errors(stack):
    web, sandbox = stack
    # The audience is created before the faults: a 409 to its creation says another
    # party holds its integrationId, which fails its memberships for good
    # (tests/integration/test_audience_creation.py); a random 409 would fake that.
    post(web, [audience_call("first", "a-first", True)])
    wait_for(settled, timeout=60)
    sandbox.set_faults(error_rate={"503": 0.3, "409": 0.1})
    events = []
    for i in range(40):
        events += [
            identify(f"u{i}", f"p{i}", traits={"email": f"u{i}@x.io"}),
            audience_call(f"u{i}", f"a{i}", True),
            {"type": "track", "event": "Order Completed", "userId": f"u{i}",
             "messageId": f"t{i}", "properties": {"total": i}},
        ]  # fmt: skip
    events += [{"type": "delete", "userId": "u0", "messageId": "d0",
                "timestamp": "2030-01-01T00:00:00Z"}]  # fmt: skip

    post(web, events)
    wait_for(settled, timeout=180)

    sandbox.set_faults(error_rate={})
    not_delivered = InboundEvent.objects.exclude(status="delivered")
    # u0's calls still waiting for a retry when its deletion went are not sent after it.
    assert {(e.user_id, e.status) for e in not_delivered} <= {("u0", "skipped")}
    assert all(e.reason.startswith("not sent: the profile was deleted") for e in not_delivered)
    assert sandbox.profile("u0") is None
    profile = sandbox.profile("u39")
    assert profile["attributes"] == {"email": "u39@x.io"}
    assert profile["events"] == [{"type": "order", "attributes": {"total": 39}}]
    assert len(profile["audiences"]) == 1
    assert sandbox.stats()["parallel_conflicts"] == 0
