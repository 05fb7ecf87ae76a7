"""The sandbox's bodies checked against Talon.One's own schemas.

The schemas are extracted from Talon.One's OpenAPI document into
tests/data/talon_one_schemas.json by bin/extract_talon_schemas.py (committed, so
these tests need nothing outside the repository, and fail if it is missing).
"""

import re
from typing import Any

import pytest
import requests
from jsonschema import Draft202012Validator, FormatChecker

from talon_sandbox.client import SandboxClient

from .helpers import TalonApi

SINGLE = "updateCustomerProfileV2"
BULK = "updateCustomerProfilesV2"
RFC3339 = re.compile(
    r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})", re.IGNORECASE
)

# The installed jsonschema has no RFC 3339 checker, so supply one: "date-time"
# fields (created, lastActivity) are part of the contract.
FORMATS = FormatChecker()
FORMATS.checks("date-time")(
    lambda value: not isinstance(value, str) or RFC3339.fullmatch(value) is not None
)


def assert_valid(schema: dict[str, Any], instance: Any) -> None:
    validator = Draft202012Validator(schema, format_checker=FORMATS)
    errors = [error.message for error in validator.iter_errors(instance)]
    assert errors == []


def assert_response(operations: dict, operation: str, response: requests.Response) -> None:
    schema = operations[operation]["responses"][str(response.status_code)]
    assert schema, f"{operation} has no JSON body for {response.status_code}"
    assert_valid(schema, response.json())


def assert_request(operations: dict, operation: str, body: Any) -> None:
    assert_valid(operations[operation]["request"], body)


def test_the_schemas_reject_what_talon_one_rejects(operations: dict) -> None:
    # The extracted schemas must still hold the limits, or every check here passes.
    too_long = {"customerProfiles": [{"integrationId": "x" * 1001, "attributes": {}}]}
    missing_id = {"customerProfiles": [{"attributes": {}}]}
    for body in (too_long, missing_id):
        errors = list(Draft202012Validator(operations[BULK]["request"]).iter_errors(body))
        assert errors, body
    error_schema = operations[SINGLE]["responses"]["400"]
    assert list(Draft202012Validator(error_schema).iter_errors({"errors": [{"title": "t"}]}))


def test_single_update_200(operations: dict, api: TalonApi) -> None:
    body = {
        "attributes": {"email": "a@example.com", "createdAt": "2024-05-01T10:00:00Z"},
        "audiencesChanges": {"adds": [4], "deletes": []},
    }
    assert_request(operations, SINGLE, body)
    for params in ({}, {"runRuleEngine": "true"}, {"runRuleEngine": "true", "dry": "true"}):
        response = api.put_profile("u1", body, **params)
        assert response.status_code == 200
        assert_response(operations, SINGLE, response)


@pytest.mark.parametrize(
    ("body", "status"),
    [({"attributes": {"unknown": 1}}, 400), ({"attributes": {"age": "1"}}, 400)],
)
def test_single_update_errors(operations: dict, api: TalonApi, body: dict, status: int) -> None:
    response = api.put_profile("u1", body)
    assert response.status_code == status
    assert_response(operations, SINGLE, response)


def test_single_update_401(operations: dict, sandbox: SandboxClient) -> None:
    response = TalonApi(sandbox.base_url, "wrong").put_profile("u1", {})
    assert response.status_code == 401
    assert_response(operations, SINGLE, response)


def test_single_update_409(operations: dict, api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"409": 1.0})
    response = api.put_profile("u1", {})
    assert response.status_code == 409
    assert_response(operations, SINGLE, response)


def test_bulk_update_200_and_400(operations: dict, api: TalonApi) -> None:
    profiles = [
        {"integrationId": "u1", "attributes": {"age": 1}},
        {"integrationId": "u2", "attributes": {"tags": ["x"]}},
    ]
    assert_request(operations, BULK, {"customerProfiles": profiles})
    response = api.put_profiles(profiles, silent="no")
    assert response.status_code == 200
    assert_response(operations, BULK, response)

    response = api.put_profiles([{"integrationId": "u3", "attributes": {"age": "x"}}])
    assert response.status_code == 400
    assert_response(operations, BULK, response)
