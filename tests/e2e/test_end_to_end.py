"""An event in, the right profile out, with real processes: HTTP ingest (live
server) → database → broker → Celery worker → the sandbox process."""

import json

import pytest
import requests

from destinations.models import DeliveryAttempt, InboundEvent
from tests.conftest import identify, sign
from tests.e2e.conftest import start_sandbox, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def post_signed(live_server, slug, body):
    raw = json.dumps(body).encode()
    return requests.post(
        f"{live_server.url}/api/v1/segment/{slug}/",
        data=raw,
        headers={"Content-Type": "application/json", "X-Signature": sign(raw)},
        timeout=10,
    )


EVENT = identify(
    "user-42",
    "e2e-1",
    traits={
        "email": "grace@example.com",
        "plan": "platinum",
        "age": 85,
        "address": {"city": "Arlington", "street": "not listed"},
        "favouriteColour": "not listed",
    },
    context={
        "personas": {
            "computation_class": "audience",
            "computation_key": "order_completed_last_30days",
        }
    },
)
EVENT["traits"]["order_completed_last_30days"] = True
EXPECTED = {
    "email": "grace@example.com",
    "plan": "platinum",
    "age": 85,
    "address_city": "Arlington",
    "order_completed_last_30days": True,
}


@pytest.fixture
def destination(make_destination, sandbox_process):
    return make_destination(
        attributes=["email", "plan", ("age", "number"), "address_city"],
        base_url=sandbox_process.url,
    )


def test_signed_identify_arrives_as_the_expected_profile(
    live_server, destination, sandbox_process, worker
):
    sandbox = start_sandbox(sandbox_process)

    response = post_signed(live_server, "acme", EVENT)

    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    profile = wait_for(lambda: sandbox.profile("user-42"))
    assert profile["attributes"] == EXPECTED
    event = wait_for(lambda: InboundEvent.objects.filter(status="delivered").first())
    assert event.message_id == "e2e-1"
    attempt = DeliveryAttempt.objects.get()
    assert attempt.response_status == 204
    assert attempt.task_id


def test_update_arrives_after_retries_when_talon_one_is_down_at_first(
    live_server, destination, sandbox_process, worker
):
    assert post_signed(live_server, "acme", EVENT).status_code == 200

    wait_for(lambda: DeliveryAttempt.objects.filter(outcome="retry").count() >= 2)
    assert InboundEvent.objects.get().status == InboundEvent.Status.PENDING
    sandbox = start_sandbox(sandbox_process)

    profile = wait_for(lambda: sandbox.profile("user-42"))
    assert profile["attributes"] == EXPECTED
    wait_for(lambda: InboundEvent.objects.get().status == InboundEvent.Status.DELIVERED)
    assert DeliveryAttempt.objects.filter(error="Could not connect to Talon.One").exists()


def test_one_bad_value_is_dropped_with_its_reason_and_the_rest_arrives_typed(
    live_server, make_destination, sandbox_process, worker
):
    make_destination(
        attributes=[("email", "string"), ("age", "number"), ("vip", "boolean"),
                    ("createdAt", "time"), ("lifetime_value", "number")],
        base_url=sandbox_process.url,
    )  # fmt: skip
    sandbox = start_sandbox(sandbox_process)
    event = identify(
        "typed-1",
        "typed-1",
        traits={
            "email": "ada@example.com",
            "age": "thirty-six",  # cannot be a number
            "vip": "TRUE",
            "createdAt": 1700000000,
            "lifetime_value": "149.90",
        },
    )

    assert post_signed(live_server, "acme", event).status_code == 200

    profile = wait_for(lambda: sandbox.profile("typed-1"))
    assert profile["attributes"] == {
        "email": "ada@example.com",
        "vip": True,
        "createdAt": "2023-11-14T22:13:20Z",
        "lifetime_value": 149.9,
    }
    stored = InboundEvent.objects.get()
    assert stored.notes == [
        {
            "attribute": "age",
            "reason": "cannot be sent as number: the string is not a decimal number; dropped",
        }
    ]
