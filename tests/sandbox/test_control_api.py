import pytest
import requests

from talon_sandbox.attributes import DEFAULT_CATALOGUE
from talon_sandbox.client import SandboxClient
from talon_sandbox.server import running_sandbox

from .helpers import ATTRIBUTES, TalonApi


def test_default_catalogue_and_key() -> None:
    with running_sandbox() as server:
        client = SandboxClient(server.url)
        client.wait_ready(timeout=5)
        assert client.attributes() == DEFAULT_CATALOGUE
        response = TalonApi(server.url, "sandbox-api-key").put_profile(
            "u1", {"attributes": {"favourite_categories": ["shoes"], "vip": True}}
        )
        assert response.status_code == 200


def test_attribute_catalogue_can_be_replaced(api: TalonApi, sandbox: SandboxClient) -> None:
    assert sandbox.attributes() == ATTRIBUTES
    sandbox.set_attributes({"nickname": "string"})
    assert sandbox.attributes() == {"nickname": "string"}
    assert api.put_profile("u1", {"attributes": {"age": 1}}).status_code == 400
    assert api.put_profile("u1", {"attributes": {"nickname": "x"}}).status_code == 200


@pytest.mark.parametrize(
    "catalogue", [{"1st": "string"}, {"a": "list string"}, {"a": "boolean list"}, []]
)
def test_invalid_catalogue_is_rejected(sandbox: SandboxClient, catalogue: object) -> None:
    with pytest.raises(requests.HTTPError) as raised:
        sandbox.set_attributes(catalogue)  # type: ignore[arg-type]
    assert raised.value.response.status_code == 400
    assert sandbox.attributes() == ATTRIBUTES


def test_request_log_and_stats(api: TalonApi, sandbox: SandboxClient) -> None:
    api.authping()
    api.put_profile("a b", {"attributes": {"age": 1}}, runRuleEngine="false")
    api.put_profiles([{"integrationId": "u1"}, {"integrationId": "u2"}])
    api.put_profile("u1", {"attributes": {"nope": 1}})

    log = sandbox.requests_log()
    assert [(entry["method"], entry["status"], entry["profiles"]) for entry in log] == [
        ("GET", 204, 0),
        ("PUT", 200, 1),
        ("PUT", 204, 2),
        ("PUT", 400, 1),
    ]
    assert log[1]["path"] == "/v2/customer_profiles/a%20b"
    assert log[1]["query"] == {"runRuleEngine": "false"}
    assert log[1]["body"] == {"attributes": {"age": 1}}
    assert log[0]["body"] is None
    assert log[0]["at"].endswith("Z")
    assert sandbox.stats() == {
        "requests": 4,
        "by_status": {"200": 1, "204": 2, "400": 1},
        "profiles_updated": 3,
        "profiles": 3,
        "parallel_conflicts": 0,
        "in_flight": 0,
    }


def test_request_log_is_bounded_but_stats_count_everything() -> None:
    with running_sandbox(log_limit=3) as server:
        api = TalonApi(server.url, "sandbox-api-key")
        for _ in range(5):
            api.authping()
        client = SandboxClient(server.url)
        assert len(client.requests_log()) == 3
        assert client.stats()["requests"] == 5


def test_reset_keeps_configuration_unless_told(api: TalonApi, sandbox: SandboxClient) -> None:
    api.put_profile("u1", {})
    sandbox.reset()
    assert sandbox.profiles() == {}
    assert sandbox.requests_log() == []
    assert sandbox.stats() == {
        "requests": 0,
        "by_status": {},
        "profiles_updated": 0,
        "profiles": 0,
        "parallel_conflicts": 0,
        "in_flight": 0,
    }
    assert sandbox.attributes() == ATTRIBUTES
    assert api.authping().status_code == 204

    sandbox.reset(attributes={"x": "number"}, api_keys=["other"])
    assert sandbox.attributes() == {"x": "number"}
    assert api.authping().status_code == 401


def test_profile_ids_are_fresh_after_reset(api: TalonApi, sandbox: SandboxClient) -> None:
    api.put_profile("u1", {})
    sandbox.reset()
    assert api.put_profile("u2", {}).json()["customerProfile"]["id"] == 1


def test_missing_profile_and_unknown_control_path(sandbox: SandboxClient) -> None:
    assert sandbox.profile("nobody") is None
    response = requests.get(f"{sandbox.base_url}/sandbox/nothing", timeout=10)
    assert response.status_code == 404


def test_wait_ready_times_out_without_a_server() -> None:
    with running_sandbox() as server:
        url = server.url  # a port that is free again once the block ends
    with pytest.raises(TimeoutError):
        SandboxClient(url, timeout=0.2).wait_ready(timeout=0.3)
