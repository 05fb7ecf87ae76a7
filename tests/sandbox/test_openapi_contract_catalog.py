"""GET /v1/attributes (getAttributes) against Talon.One's own schemas: what the
sandbox answers, and that our Management API client reads it. Schemas:
tests/data/talon_one_schemas.json (see test_openapi_contract.py)."""

import json

import pytest
from jsonschema import Draft202012Validator

from destinations.talon_one import ManagementClient
from talon_sandbox.client import SandboxClient
from talon_sandbox.server import DEFAULT_MANAGEMENT_KEYS

from .conftest import SCHEMAS_PATH
from .helpers import ATTRIBUTES
from .test_management_api import get_attributes
from .test_openapi_contract import assert_response, assert_valid

OPERATION = "getAttributes"


@pytest.fixture(scope="module")
def error_schema() -> dict:
    """getAttributes declares no error bodies: Talon.One's errors share one schema."""
    return json.loads(SCHEMAS_PATH.read_text())["error"]


def test_the_schema_holds_the_limits(operations: dict) -> None:
    """Or every check below passes."""
    schema = operations[OPERATION]["responses"]["200"]
    item = {"name": "x", "type": "text", "entity": "CustomerProfile"}
    for body in ({"data": []}, {"data": [item], "totalResultSize": 1}):
        with pytest.raises(AssertionError):
            assert_valid(schema, body)
    page_size = operations[OPERATION]["parameters"]["pageSize"]["schema"]
    assert list(Draft202012Validator(page_size).iter_errors(1001))


def test_a_page_of_attributes(operations: dict, sandbox: SandboxClient) -> None:
    for params in ({"entity": "CustomerProfile"}, {"pageSize": "2", "skip": "3"}, {"skip": "99"}):
        response = get_attributes(sandbox, **params)
        assert response.status_code == 200
        assert_response(operations, OPERATION, response)


def test_the_parameters_our_client_sends(operations: dict, sandbox: SandboxClient) -> None:
    client = ManagementClient(sandbox.base_url, DEFAULT_MANAGEMENT_KEYS[0], page_size=5)

    assert [a.name for a in client.customer_profile_attributes()] == list(ATTRIBUTES)
    reads = [e for e in sandbox.requests_log() if e["status"] == 200]
    assert [e["query"]["skip"] for e in reads] == ["0", "5"]
    parameters = operations[OPERATION]["parameters"]
    for entry in reads:
        assert set(entry["query"]) <= set(parameters)
        assert_valid(parameters["pageSize"]["schema"], int(entry["query"]["pageSize"]))
        assert_valid(parameters["skip"]["schema"], int(entry["query"]["skip"]))


@pytest.mark.parametrize(
    ("authorization", "params", "status"),
    [("ManagementKey-v1 wrong", {}, 401), (None, {"pageSize": "0"}, 400)],
)
def test_errors(
    error_schema: dict,
    sandbox: SandboxClient,
    authorization: str | None,
    params: dict,
    status: int,
) -> None:
    args = (authorization,) if authorization else ()
    response = get_attributes(sandbox, *args, **params)

    assert response.status_code == status
    assert_valid(error_schema, response.json())
