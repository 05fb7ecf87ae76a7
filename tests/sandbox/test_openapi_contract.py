"""The sandbox's bodies checked against Talon.One's own OpenAPI document."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

from talon_sandbox.client import SandboxClient
from talon_sandbox.responses import json_pointer

from .helpers import TalonApi

OPENAPI_PATH = (
    Path(__file__).resolve().parents[2].parent / "shared" / "reference" / "talon-one-openapi.json"
)
DOCUMENT_URI = "urn:talon-one:openapi"
SINGLE = "/v2/customer_profiles/{integrationId}"
BULK = "/v2/customer_profiles"
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)

# The installed jsonschema has no RFC 3339 checker, so supply one: "date-time"
# fields (created, lastActivity) are part of the contract.
FORMATS = FormatChecker()
FORMATS.checks("date-time")(
    lambda value: not isinstance(value, str) or RFC3339.fullmatch(value) is not None
)


@pytest.fixture(scope="module")
def registry() -> Registry:
    if not OPENAPI_PATH.is_file():
        pytest.skip(f"Talon.One OpenAPI document not found at {OPENAPI_PATH}")
    document = json.loads(OPENAPI_PATH.read_text())
    resource = Resource.from_contents(document, default_specification=DRAFT202012)
    return Registry().with_resource(DOCUMENT_URI, resource)


def assert_valid(registry: Registry, *path: str | int, instance: Any) -> None:
    """Validate against the schema at `path` inside the document; $refs resolve there."""
    schema = {"$ref": f"{DOCUMENT_URI}#{json_pointer(*path)}"}
    validator = Draft202012Validator(schema, registry=registry, format_checker=FORMATS)
    errors = [error.message for error in validator.iter_errors(instance)]
    assert errors == []


def assert_response(registry: Registry, path: str, response: requests.Response) -> None:
    status = str(response.status_code)
    schema_path = ("paths", path, "put", "responses", status, "content", "application/json")
    assert_valid(registry, *schema_path, "schema", instance=response.json())


def assert_request(registry: Registry, path: str, body: Any) -> None:
    schema_path = ("paths", path, "put", "requestBody", "content", "application/json")
    assert_valid(registry, *schema_path, "schema", instance=body)


def test_single_update_200(registry: Registry, api: TalonApi) -> None:
    body = {
        "attributes": {"email": "a@example.com", "createdAt": "2024-05-01T10:00:00Z"},
        "audiencesChanges": {"adds": [4], "deletes": []},
    }
    assert_request(registry, SINGLE, body)
    for params in ({}, {"runRuleEngine": "true"}, {"runRuleEngine": "true", "dry": "true"}):
        response = api.put_profile("u1", body, **params)
        assert response.status_code == 200
        assert_response(registry, SINGLE, response)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"attributes": {"unknown": 1}}, 400), ({"attributes": {"age": "1"}}, 400)],
)
def test_single_update_errors(registry: Registry, api: TalonApi, body: dict, status: int) -> None:
    response = api.put_profile("u1", body)
    assert response.status_code == status
    assert_response(registry, SINGLE, response)


def test_single_update_401(registry: Registry, sandbox: SandboxClient) -> None:
    response = TalonApi(sandbox.base_url, "wrong").put_profile("u1", {})
    assert response.status_code == 401
    assert_response(registry, SINGLE, response)


def test_single_update_409(registry: Registry, api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"409": 1.0})
    response = api.put_profile("u1", {})
    assert response.status_code == 409
    assert_response(registry, SINGLE, response)


def test_bulk_update_200_and_400(registry: Registry, api: TalonApi) -> None:
    profiles = [
        {"integrationId": "u1", "attributes": {"age": 1}},
        {"integrationId": "u2", "attributes": {"tags": ["x"]}},
    ]
    assert_request(registry, BULK, {"customerProfiles": profiles})
    response = api.put_profiles(profiles, silent="no")
    assert response.status_code == 200
    assert_response(registry, BULK, response)

    response = api.put_profiles([{"integrationId": "u3", "attributes": {"age": "x"}}])
    assert response.status_code == 400
    assert_response(registry, BULK, response)
