import threading

import pytest
import requests

from talon_sandbox import server as sandbox_server_module
from talon_sandbox.client import SandboxClient

from .helpers import API_KEY, TalonApi, pointers


def assert_error_shape(response: requests.Response, status: int) -> dict:
    assert response.status_code == status
    body = response.json()
    assert body["StatusCode"] == status
    assert isinstance(body["message"], str)
    assert body["message"]
    assert body["errors"]
    for error in body["errors"]:
        assert {"title", "details", "source"} <= set(error)
    return body


class TestAuth:
    def test_authping_accepts_a_configured_key(self, api: TalonApi) -> None:
        response = api.authping()
        assert response.status_code == 204
        assert response.content == b""

    @pytest.mark.parametrize(
        "authorization", ["", "ApiKey-v1 wrong", f"ManagementKey-v1 {API_KEY}", API_KEY]
    )
    def test_authping_rejects_a_bad_key(self, api: TalonApi, authorization: str) -> None:
        assert_error_shape(api.authping(Authorization=authorization), 401)

    def test_profile_update_needs_a_key(self, sandbox: SandboxClient) -> None:
        response = TalonApi(sandbox.base_url, api_key="nope").put_profile("u1", {})
        assert_error_shape(response, 401)
        assert sandbox.profiles() == {}

    def test_api_keys_can_be_replaced(self, sandbox: SandboxClient, api: TalonApi) -> None:
        sandbox.set_api_keys(["k1", "k2"])
        assert api.authping().status_code == 401
        assert TalonApi(sandbox.base_url, "k2").authping().status_code == 204


class TestSingleUpdate:
    def test_creates_then_merges_attributes(self, api: TalonApi, sandbox: SandboxClient) -> None:
        first = api.put_profile("u1", {"attributes": {"email": "a@example.com", "age": 30}})
        assert first.status_code == 200
        body = first.json()
        assert body["customerProfile"]["integrationId"] == "u1"
        assert body["customerProfile"]["attributes"] == {"email": "a@example.com", "age": 30}
        assert body["effects"] == []

        second = api.put_profile("u1", {"attributes": {"vip": True, "age": 31.5}})
        assert second.status_code == 200
        profile = second.json()["customerProfile"]
        assert profile["id"] == body["customerProfile"]["id"]
        assert profile["created"] == body["customerProfile"]["created"]
        expected = {"email": "a@example.com", "age": 31.5, "vip": True}
        assert profile["attributes"] == expected
        assert sandbox.profile("u1") == {
            "attributes": expected,
            "updates": 2,
            "audiences": [],
            "events": [],
            "created": profile["created"],
        }

    def test_accepts_every_attribute_type(self, api: TalonApi) -> None:
        attributes = {
            "email": "a@example.com",
            "age": 7,
            "vip": False,
            "createdAt": "2024-05-01T10:00:00.123+02:00",
            "home": "52.52,13.40",
            "tags": ["a", "b"],
            "scores": [1, 2.5],
            "visits": ["2024-05-01T10:00:00Z", "2024-05-02 10:00:00+00:00"],
            "places": [],
        }
        response = api.put_profile("u1", {"attributes": attributes})
        assert response.status_code == 200
        assert response.json()["customerProfile"]["attributes"] == attributes

    def test_null_unsets_an_attribute(self, api: TalonApi, sandbox: SandboxClient) -> None:
        api.put_profile("u1", {"attributes": {"email": "a@example.com", "age": 1}})
        response = api.put_profile("u1", {"attributes": {"email": None}})
        assert response.status_code == 200
        assert sandbox.profile("u1")["attributes"] == {"age": 1}

    def test_unknown_attribute_rejects_the_whole_update(
        self, api: TalonApi, sandbox: SandboxClient
    ) -> None:
        response = api.put_profile("u1", {"attributes": {"email": "a@b.c", "Email": "x"}})
        body = assert_error_shape(response, 400)
        assert pointers(response) == ["/attributes/Email"]
        assert "Email" in body["message"]
        assert sandbox.profile("u1") is None

    @pytest.mark.parametrize(
        ("name", "value", "type_name"),
        [
            ("email", 1, "string"),
            ("age", "30", "number"),
            ("age", True, "number"),
            ("vip", "true", "boolean"),
            ("createdAt", "2024-05-01", "time"),
            ("createdAt", "2024-05-01T10:00:00", "time"),
            ("createdAt", "yesterday", "time"),
            ("home", {"lat": 1}, "location"),
            ("tags", "a", "(list string)"),
            ("tags", ["a", 1], "(list string)"),
            ("scores", [1, False], "(list number)"),
            ("visits", ["2024-05-01"], "(list time)"),
        ],
    )
    def test_wrong_type_is_rejected(
        self, api: TalonApi, name: str, value: object, type_name: str
    ) -> None:
        response = api.put_profile("u1", {"attributes": {name: value}})
        body = assert_error_shape(response, 400)
        assert pointers(response) == [f"/attributes/{name}"]
        assert name in body["message"]
        assert type_name in body["message"]

    @pytest.mark.parametrize(
        ("body", "pointer"),
        [
            ([], ""),
            ({"attributes": []}, "/attributes"),
            ({"audiencesChanges": {"adds": ["1"]}}, "/audiencesChanges/adds/0"),
            ({"evaluableCampaignIds": "1"}, "/evaluableCampaignIds"),
            ({"responseContent": ["everything"]}, "/responseContent"),
            ({"responseContent": ["customerProfile"]}, "/responseContent"),
        ],
    )
    def test_malformed_body_is_rejected(self, api: TalonApi, body: object, pointer: str) -> None:
        response = api.put_profile("u1", body)
        assert_error_shape(response, 400)
        assert pointers(response) == [pointer]

    def test_invalid_json_is_rejected(self, api: TalonApi) -> None:
        for raw in (b"{", b'{"attributes": {"age": NaN}}', b""):
            response = api.session.put(
                f"{api.base_url}/v2/customer_profiles/u1", data=raw, timeout=10
            )
            assert_error_shape(response, 400)

    def test_unknown_top_level_fields_are_ignored(self, api: TalonApi) -> None:
        # CustomerProfileIntegrationRequestV2 does not forbid additional properties.
        response = api.put_profile("u1", {"attributes": {"age": 1}, "extra": 1})
        assert response.status_code == 200

    def test_audience_changes(self, api: TalonApi, sandbox: SandboxClient) -> None:
        api.put_profile("u1", {"audiencesChanges": {"adds": [3, 1], "deletes": None}})
        response = api.put_profile("u1", {"audiencesChanges": {"adds": [], "deletes": [3]}})
        assert response.json()["customerProfile"]["audienceMemberships"] == [
            {"id": 1, "name": "Audience 1"}
        ]
        assert sandbox.profile("u1")["audiences"] == [1]

    def test_dry_run_does_not_store(self, api: TalonApi, sandbox: SandboxClient) -> None:
        response = api.put_profile(
            "u1", {"attributes": {"age": 2}}, runRuleEngine="true", dry="true"
        )
        assert response.status_code == 200
        assert response.json()["customerProfile"]["attributes"] == {"age": 2}
        assert sandbox.profile("u1") is None

    @pytest.mark.parametrize(
        ("params", "parameter"),
        [
            ({"dry": "true"}, "dry"),
            ({"runRuleEngine": "yes"}, "runRuleEngine"),
        ],
    )
    def test_invalid_query_parameters(
        self, api: TalonApi, params: dict[str, str], parameter: str
    ) -> None:
        response = api.put_profile("u1", {}, **params)
        body = assert_error_shape(response, 400)
        assert body["errors"][0]["source"] == {"parameter": parameter}

    @pytest.mark.parametrize(
        "integration_id",
        ["a/b", "with space", "ünïcødé-✓", "plus+and%percent", "?#&=", "x" * 1000],
    )
    def test_url_encoded_integration_ids(
        self, api: TalonApi, sandbox: SandboxClient, integration_id: str
    ) -> None:
        response = api.put_profile(integration_id, {"attributes": {"age": 1}})
        assert response.status_code == 200
        assert response.json()["customerProfile"]["integrationId"] == integration_id
        assert list(sandbox.profiles()) == [integration_id]
        assert sandbox.profile(integration_id)["attributes"] == {"age": 1}

    def test_too_long_integration_id(self, api: TalonApi) -> None:
        response = api.put_profile("x" * 1001, {})
        assert_error_shape(response, 400)


class TestBulkUpdate:
    def test_silent_stores_every_profile(self, api: TalonApi, sandbox: SandboxClient) -> None:
        profiles = [{"integrationId": f"u{i}", "attributes": {"age": i}} for i in range(1000)]
        response = api.put_profiles(profiles)
        assert response.status_code == 204
        assert response.content == b""
        stored = sandbox.profiles()
        assert len(stored) == 1000
        assert stored["u999"]["attributes"] == {"age": 999}
        assert sandbox.stats()["profiles_updated"] == 1000

    def test_not_silent_returns_integration_states(self, api: TalonApi) -> None:
        response = api.put_profiles(
            [
                {"integrationId": "u1", "attributes": {"age": 1}},
                {"integrationId": "u1", "attributes": {"vip": True}},
            ],
            silent="no",
        )
        assert response.status_code == 200
        states = response.json()["integrationStates"]
        assert [state["customerProfile"]["attributes"] for state in states] == [
            {"age": 1},
            {"age": 1, "vip": True},
        ]

    def test_one_bad_entry_rejects_the_whole_request(
        self, api: TalonApi, sandbox: SandboxClient
    ) -> None:
        profiles = [{"integrationId": f"u{i}", "attributes": {"age": i}} for i in range(30)]
        profiles[17]["attributes"]["nickname"] = "x"
        profiles[21]["attributes"]["age"] = "21"
        response = api.put_profiles(profiles)
        assert_error_shape(response, 400)
        assert pointers(response) == [
            "/customerProfiles/17/attributes/nickname",
            "/customerProfiles/21/attributes/age",
        ]
        assert sandbox.profiles() == {}

    @pytest.mark.parametrize(
        ("entry", "pointer"),
        [
            ("u1", "/customerProfiles/0"),
            ({"attributes": {}}, "/customerProfiles/0/integrationId"),
            ({"integrationId": ""}, "/customerProfiles/0/integrationId"),
            ({"integrationId": "u", "attributes": 1}, "/customerProfiles/0/attributes"),
        ],
    )
    def test_malformed_entry(self, api: TalonApi, entry: object, pointer: str) -> None:
        response = api.put_profiles([entry])  # type: ignore[list-item]
        assert_error_shape(response, 400)
        assert pointers(response) == [pointer]

    @pytest.mark.parametrize("count", [0, 1001])
    def test_profile_count_limits(self, api: TalonApi, sandbox: SandboxClient, count: int) -> None:
        profiles = [{"integrationId": f"u{i}"} for i in range(count)]
        response = api.put_profiles(profiles)
        assert_error_shape(response, 400)
        assert pointers(response) == ["/customerProfiles"]
        assert sandbox.profiles() == {}

    def test_invalid_silent_parameter(self, api: TalonApi) -> None:
        response = api.put_profiles([{"integrationId": "u1"}], silent="true")
        assert_error_shape(response, 400)


class TestParallelUpdates:
    def test_second_request_for_a_profile_in_flight_gets_409(
        self, api: TalonApi, sandbox: SandboxClient
    ) -> None:
        sandbox.set_faults(latency_ms=1500)
        results: dict[str, requests.Response] = {}
        first = threading.Thread(
            target=lambda: results.update(
                first=TalonApi(api.base_url).put_profile("u1", {"attributes": {"age": 1}})
            )
        )
        first.start()
        sandbox.wait_in_flight()  # the first request now holds u1 (for 1.5 s)
        in_bulk = api.put_profiles([{"integrationId": "u2"}, {"integrationId": "u1"}])
        single = api.put_profile("u1", {"attributes": {"age": 2}})
        other_profile = api.put_profile("u3", {})
        first.join()

        assert results["first"].status_code == 200
        for response in (in_bulk, single):
            body = assert_error_shape(response, 409)
            assert body["message"] == (
                "Too many requests or limit reached - avoid parallel requests"
            )
        assert other_profile.status_code == 200
        assert sandbox.profile("u1")["attributes"] == {"age": 1}
        assert sandbox.profile("u2") is None
        stats = sandbox.stats()
        assert (stats["parallel_conflicts"], stats["in_flight"]) == (2, 0)
        sandbox.reset()
        assert sandbox.stats()["parallel_conflicts"] == 0

    def test_wait_in_flight_times_out_when_nothing_is_in_flight(
        self, sandbox: SandboxClient
    ) -> None:
        with pytest.raises(TimeoutError):
            sandbox.wait_in_flight(timeout=0.1)

    def test_sequential_requests_do_not_conflict(self, api: TalonApi) -> None:
        for age in range(5):
            assert api.put_profile("u1", {"attributes": {"age": age}}).status_code == 200


class TestHttp:
    @pytest.mark.parametrize(
        ("method", "path"),
        [
            ("GET", "/v2/customer_profiles/u1"),
            ("POST", "/v2/customer_profiles"),
            ("PUT", "/v2/customer_profiles/a/b"),
            ("POST", "/v1/attributes"),  # GET is the Management API's catalogue
        ],
    )
    def test_unknown_endpoints_are_404(self, api: TalonApi, method: str, path: str) -> None:
        response = api.session.request(method, api.base_url + path, timeout=10)
        assert_error_shape(response, 404)

    def test_oversized_body_is_413(self, api: TalonApi, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setattr(sandbox_server_module, "MAX_BODY_BYTES", 100)
        response = api.put_profile("u1", {"attributes": {"email": "x" * 200}})
        assert_error_shape(response, 413)
