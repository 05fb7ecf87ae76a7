"""Events, audiences, memberships and deletions against Talon.One's own schemas:
what our client sends (read back from the sandbox's request log) and what the
sandbox answers. Schemas: tests/data/talon_one_schemas.json (see
test_openapi_contract.py)."""

from typing import Any

import pytest
import requests

from destinations.talon_one import Outcome, TalonOneClient
from talon_sandbox.client import SandboxClient

from .helpers import API_KEY
from .test_openapi_contract import assert_request, assert_response, assert_valid

EVENT = "trackEventV2"
AUDIENCE = "createAudienceV2"
MEMBERSHIPS = "updateCustomerProfileAudiences"
DELETE = "deleteCustomerData"


@pytest.fixture
def client(sandbox: SandboxClient) -> TalonOneClient:
    return TalonOneClient(sandbox.base_url, API_KEY)


def sent(sandbox: SandboxClient) -> Any:
    return sandbox.requests_log()[-1]["body"]


def raw(sandbox: SandboxClient, method: str, path: str, body: Any) -> requests.Response:
    return requests.request(
        method,
        sandbox.base_url + path,
        json=body,
        headers={"Authorization": f"ApiKey-v1 {API_KEY}"},
        timeout=10,
    )


def test_the_schemas_hold_the_limits(operations: dict) -> None:
    """Or every check below passes."""
    bad_change = {"data": [{"action": "move", "audienceId": 1, "profileIntegrationId": "u"}]}
    for operation, body in [
        (EVENT, {"profileId": "u1"}),
        (AUDIENCE, {"integrationId": "x"}),
        (MEMBERSHIPS, bad_change),
    ]:
        with pytest.raises(AssertionError):
            assert_valid(operations[operation]["request"], body)


def test_a_tracked_event(operations: dict, client: TalonOneClient, sandbox: SandboxClient) -> None:
    result = client.track_event("u1", "order_completed", {"total": 12.5})

    assert result.outcome is Outcome.SUCCESS
    assert_request(operations, EVENT, sent(sandbox))
    response = raw(sandbox, "POST", "/v2/events?silent=no", {"type": "x", "profileId": "u1"})
    assert response.status_code == 200
    assert_response(operations, EVENT, response)
    response = raw(sandbox, "POST", "/v2/events", {"profileId": "u1"})
    assert response.status_code == 400
    assert_response(operations, EVENT, response)


def test_an_audience_and_its_conflict(
    operations: dict, client: TalonOneClient, sandbox: SandboxClient
) -> None:
    result = client.create_audience("vip_customers", "aud_1")

    assert result.outcome is Outcome.SUCCESS
    assert type(result.data["id"]) is int
    assert_request(operations, AUDIENCE, sent(sandbox))
    again = raw(sandbox, "POST", "/v2/audiences", sent(sandbox))
    assert again.status_code == 409
    assert_response(operations, AUDIENCE, again)
    first = raw(sandbox, "POST", "/v2/audiences", {"name": "other", "integrationId": "aud_2"})
    assert first.status_code == 201
    assert_response(operations, AUDIENCE, first)


def test_memberships_and_an_unknown_audience(
    operations: dict, client: TalonOneClient, sandbox: SandboxClient
) -> None:
    audience = client.create_audience("vip", "aud_1").data["id"]
    changes = [
        {"action": "add", "profileIntegrationId": "u1", "audienceId": audience},
        {"action": "delete", "profileIntegrationId": "u2", "audienceId": audience},
    ]

    assert client.update_audiences(changes).outcome is Outcome.SUCCESS
    assert_request(operations, MEMBERSHIPS, sent(sandbox))
    assert sandbox.profile("u1")["audiences"] == [audience]
    unknown = raw(
        sandbox, "POST", "/v2/customer_audiences", {"data": [{**changes[0], "audienceId": 99}]}
    )
    assert unknown.status_code == 404
    assert_response(operations, MEMBERSHIPS, unknown)
    invalid = raw(sandbox, "POST", "/v2/customer_audiences", {"data": [{"action": "move"}]})
    assert invalid.status_code == 400
    assert_response(operations, MEMBERSHIPS, invalid)


def test_a_deletion(operations: dict, client: TalonOneClient, sandbox: SandboxClient) -> None:
    client.track_event("u1", "x", {})

    assert client.delete_customer_data("u1").status == 204
    assert sandbox.profile("u1") is None
    gone = raw(sandbox, "DELETE", "/v1/customer_data/u1", None)
    assert gone.status_code == 404
    assert_response(operations, DELETE, gone)
