"""The sandbox's Management API: GET /v1/attributes as Talon.One answers it
(ManagementKey-v1, paging, filters, about 3 requests/s)."""

import time
from typing import Any

import requests

from talon_sandbox.client import SandboxClient
from talon_sandbox.server import DEFAULT_MANAGEMENT_KEYS

from .helpers import API_KEY, ATTRIBUTES

KEY = DEFAULT_MANAGEMENT_KEYS[0]


def get_attributes(
    sandbox: SandboxClient, authorization: str = f"ManagementKey-v1 {KEY}", **params: Any
) -> requests.Response:
    """One read; a 429 (a previous test's reads within the second) waits its Retry-After."""
    for _ in range(3):
        response = requests.get(
            f"{sandbox.base_url}/v1/attributes",
            params=params,
            headers={"Authorization": authorization},
            timeout=10,
        )
        if response.status_code != 429:
            return response
        time.sleep(float(response.headers["Retry-After"]))
    return response


def test_the_catalogue_as_customer_profile_attributes(sandbox: SandboxClient) -> None:
    response = get_attributes(sandbox, entity="CustomerProfile")

    assert response.status_code == 200
    body = response.json()
    assert body["totalResultSize"] == len(ATTRIBUTES)
    assert {item["name"]: item["type"] for item in body["data"]} == ATTRIBUTES
    tags = next(item for item in body["data"] if item["name"] == "tags")
    assert tags["entity"] == "CustomerProfile"
    assert tags["title"] == "tags"
    assert len({item["id"] for item in body["data"]}) == len(ATTRIBUTES)


def test_pages(sandbox: SandboxClient) -> None:
    first = get_attributes(sandbox, pageSize="4").json()
    second = get_attributes(sandbox, pageSize="4", skip="4").json()
    last = get_attributes(sandbox, pageSize="4", skip="8").json()

    assert first["totalResultSize"] == second["totalResultSize"] == len(ATTRIBUTES)
    names = [item["name"] for page in (first, second, last) for item in page["data"]]
    assert names == list(ATTRIBUTES)
    assert len(last["data"]) == len(ATTRIBUTES) - 8


def test_filters(sandbox: SandboxClient) -> None:
    assert get_attributes(sandbox, entity="CustomerSession").json() == {
        "totalResultSize": 0,
        "data": [],
    }
    assert get_attributes(sandbox, kind="builtin").json()["data"] == []
    by_type = get_attributes(sandbox, type="(list number)").json()["data"]
    assert [item["name"] for item in by_type] == ["scores"]
    searched = get_attributes(sandbox, search="CREATED").json()["data"]
    assert [item["name"] for item in searched] == ["createdAt"]


def test_the_catalogue_follows_the_control_api(sandbox: SandboxClient) -> None:
    sandbox.set_attributes({"plan": "string"})

    assert [item["name"] for item in get_attributes(sandbox).json()["data"]] == ["plan"]


def test_only_a_management_key_is_accepted(sandbox: SandboxClient) -> None:
    for authorization in (
        f"ApiKey-v1 {API_KEY}",
        f"ApiKey-v1 {KEY}",
        "ManagementKey-v1 wrong",
        f"ManagementKey-v1 {API_KEY}",
        KEY,
    ):
        response = get_attributes(sandbox, authorization)
        assert response.status_code == 401, authorization
        assert "Management API key" in response.json()["message"]


def test_invalid_paging_is_refused(sandbox: SandboxClient) -> None:
    for params, parameter in [
        ({"pageSize": "0"}, "pageSize"),
        ({"pageSize": "1001"}, "pageSize"),
        ({"pageSize": "ten"}, "pageSize"),
        ({"skip": "-1"}, "skip"),
        ({"skip": "\u0661"}, "skip"),  # a digit to str.isdigit, not to Talon.One
        ({"kind": "other"}, "kind"),
    ]:
        response = get_attributes(sandbox, **params)
        assert response.status_code == 400, params
        assert response.json()["errors"][0]["source"] == {"parameter": parameter}


def test_only_get(sandbox: SandboxClient) -> None:
    response = requests.post(
        f"{sandbox.base_url}/v1/attributes",
        json={},
        headers={"Authorization": f"ManagementKey-v1 {KEY}"},
        timeout=10,
    )

    assert response.status_code == 404


def test_about_three_requests_a_second(sandbox: SandboxClient) -> None:
    time.sleep(1)  # the window of earlier tests' reads
    statuses = [get_attributes(sandbox, "ManagementKey-v1 " + KEY).status_code]
    for _ in range(3):
        statuses.append(
            requests.get(
                f"{sandbox.base_url}/v1/attributes",
                headers={"Authorization": f"ManagementKey-v1 {KEY}"},
                timeout=10,
            ).status_code
        )

    assert statuses == [200, 200, 200, 429]
    assert [entry["status"] for entry in sandbox.requests_log()[-4:]] == statuses
    time.sleep(1)
    assert get_attributes(sandbox).status_code == 200
