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
    sandbox.set_faults(down=True)
    faults = sandbox.set_faults(latency_ms=5)
    assert faults == {
        "down": True,
        "latency_ms": 5,
        "error_rate": {},
        "retry_after": None,
        "reject_profiles": [],
    }
    sandbox.reset()
    assert sandbox.faults()["down"] is False
    assert api.authping().status_code == 204


@pytest.mark.parametrize(
    "faults",
    [
        {"down": "yes"},
        {"latency_ms": -1},
        {"error_rate": {"200": 0.5}},
        {"error_rate": {"500": 2}},
        {"reject_profiles": "u1"},
        {"surprise": True},
    ],
)
def test_invalid_faults_are_rejected(sandbox: SandboxClient, faults: dict) -> None:
    response = requests.put(f"{sandbox.base_url}/sandbox/faults", json=faults, timeout=10)
    assert response.status_code == 400
    assert sandbox.faults()["down"] is False
