from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from talon_sandbox.client import SandboxClient

from .helpers import TalonApi, pointers


def test_down_answers_503_with_retry_after(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(down=True, retry_after=7)
    for response in (api.authping(), api.put_profile("u1", {})):
        assert response.status_code == 503
        assert response.headers["Retry-After"] == "7"
        assert response.json()["StatusCode"] == 503
    assert sandbox.profiles() == {}


def test_error_rate_one_always_fails(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"500": 1.0})
    for _ in range(5):
        response = api.put_profile("u1", {"attributes": {"age": 1}})
        assert response.status_code == 500
        assert "Retry-After" not in response.headers
    assert sandbox.profiles() == {}
    assert sandbox.stats()["by_status"] == {"500": 5}


def test_error_rate_applies_before_validation(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"429": 1.0}, retry_after=2)
    response = api.put_profile("u1", {"attributes": {"unknown": 1}})
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "2"


def test_error_rate_zero_never_fails(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"500": 0.0})
    assert api.put_profile("u1", {}).status_code == 200


def test_injected_409_uses_talon_message(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(error_rate={"409": 1})
    response = api.put_profile("u1", {})
    assert response.status_code == 409
    assert response.json()["message"] == (
        "Too many requests or limit reached - avoid parallel requests"
    )
    stats = sandbox.stats()
    assert stats["by_status"] == {"409": 1}
    assert stats["parallel_conflicts"] == 0  # injected, not a real collision


def test_fail_next_answers_each_status_once_in_order(api: TalonApi, sandbox: SandboxClient) -> None:
    faults = sandbox.set_faults(fail_next=[500, 503, 409, 429], retry_after=3)
    assert faults["fail_next"] == [500, 503, 409, 429]

    responses = [
        api.put_profile("u1", {"attributes": {"age": 1}}),
        api.put_profiles([{"integrationId": "u1"}]),
        api.authping(),
        api.put_profile("u1", {"attributes": {"unknown": 1}}),  # before validation
        api.put_profile("u1", {"attributes": {"age": 2}}),
    ]

    assert [r.status_code for r in responses] == [500, 503, 409, 429, 200]
    assert [r.headers.get("Retry-After") for r in responses[:4]] == [None, "3", None, "3"]
    assert responses[2].json()["message"].endswith("avoid parallel requests")
    assert sandbox.faults()["fail_next"] == []
    assert sandbox.profile("u1")["attributes"] == {"age": 2}
    assert sandbox.stats()["parallel_conflicts"] == 0


def test_fail_next_comes_before_error_rate(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=[503], error_rate={"500": 1.0})
    assert [api.authping().status_code for _ in range(3)] == [503, 500, 500]


def test_fail_next_waits_while_down_and_skips_unknown_endpoints(
    api: TalonApi, sandbox: SandboxClient
) -> None:
    sandbox.set_faults(down=True, fail_next=[500])
    assert api.authping().status_code == 503
    sandbox.set_faults(down=False)
    assert api.session.get(f"{api.base_url}/v2/nothing", timeout=10).status_code == 404
    assert [api.authping().status_code for _ in range(2)] == [500, 204]


def test_fail_next_is_replaced_not_appended(sandbox: SandboxClient) -> None:
    sandbox.set_faults(fail_next=[500, 500])
    assert sandbox.set_faults(fail_next=[409])["fail_next"] == [409]
    assert sandbox.set_faults(fail_next=[])["fail_next"] == []


def test_fail_next_is_consumed_once_per_request_under_concurrency(
    api: TalonApi, sandbox: SandboxClient
) -> None:
    def update(index: int) -> int:
        return TalonApi(api.base_url).put_profile(f"u{index}", {}).status_code

    sandbox.set_faults(fail_next=[500] * 10)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(update, range(30)))
    assert sorted(statuses) == [200] * 20 + [500] * 10
    assert sandbox.stats()["by_status"] == {"200": 20, "500": 10}


def test_reject_profiles_in_single_and_bulk(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(reject_profiles=["bad"])
    single = api.put_profile("bad", {"attributes": {"age": 1}})
    assert single.status_code == 400
    assert pointers(single) == ["/attributes"]

    bulk = api.put_profiles(
        [{"integrationId": "ok"}, {"integrationId": "bad", "attributes": {"age": 1}}]
    )
    assert bulk.status_code == 400
    assert pointers(bulk) == ["/customerProfiles/1/attributes"]
    assert sandbox.profiles() == {}
    assert api.put_profile("ok", {}).status_code == 200


def test_faults_merge_and_reset_clears_them(api: TalonApi, sandbox: SandboxClient) -> None:
    sandbox.set_faults(down=True, fail_next=[500])
    faults = sandbox.set_faults(latency_ms=5)
    assert faults == {
        "down": True,
        "latency_ms": 5,
        "fail_next": [500],
        "error_rate": {},
        "retry_after": None,
        "reject_profiles": [],
    }
    sandbox.reset()
    assert sandbox.faults()["down"] is False
    assert sandbox.faults()["fail_next"] == []
    assert api.authping().status_code == 204


@pytest.mark.parametrize(
    "faults",
    [
        {"down": "yes"},
        {"latency_ms": -1},
        {"error_rate": {"200": 0.5}},
        {"error_rate": {"500": 2}},
        {"fail_next": 500},
        {"fail_next": [200]},
        {"fail_next": ["500"]},
        {"fail_next": [True]},
        {"reject_profiles": "u1"},
        {"surprise": True},
    ],
)
def test_invalid_faults_are_rejected(sandbox: SandboxClient, faults: dict) -> None:
    response = requests.put(f"{sandbox.base_url}/sandbox/faults", json=faults, timeout=10)
    assert response.status_code == 400
    assert sandbox.faults()["down"] is False
