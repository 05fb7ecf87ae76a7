"""Talon.One's Integration API, as far as this project uses it."""

import enum
import time
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from .responses import ApiError, Request, Response, error_response, unauthorized
from .state import Faults, ProfileBusy, SandboxState
from .validation import (
    InvalidRequest,
    ProfileUpdate,
    bulk_update,
    check_integration_id_parameter,
    membership_changes,
    new_audience,
    parse_json,
    single_update,
    track_event,
)

AUTH_SCHEME = "ApiKey-v1"
AUTHPING_PATH = "/v2/authping"
PROFILES_PATH = "/v2/customer_profiles"
PROFILE_PREFIX = PROFILES_PATH + "/"
EVENTS_PATH = "/v2/events"
AUDIENCES_PATH = "/v2/audiences"
MEMBERSHIPS_PATH = "/v2/customer_audiences"
CUSTOMER_DATA_PREFIX = "/v1/customer_data/"
PARALLEL_MESSAGE = "Too many requests or limit reached - avoid parallel requests"
_FAULT_MESSAGES = {
    409: PARALLEL_MESSAGE,
    429: "Too many requests",
    503: "Service unavailable",
}


class Operation(enum.Enum):
    AUTHPING = "authping"
    UPDATE_PROFILE = "updateCustomerProfileV2"
    UPDATE_PROFILES = "updateCustomerProfilesV2"
    TRACK_EVENT = "trackEventV2"
    CREATE_AUDIENCE = "createAudienceV2"
    UPDATE_MEMBERSHIPS = "updateCustomerProfileAudiences"
    DELETE_CUSTOMER_DATA = "deleteCustomerData"


class IntegrationApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        operation = _route(request)
        parsed = _parse_body(request.body)
        body = None if isinstance(parsed, InvalidRequest) else parsed
        with self.state.handling():
            response = self._respond(request, operation, parsed)
            self.state.record(request, body, response.status, _profile_count(operation, body))
        return response

    def _respond(self, request: Request, operation: Operation | None, parsed: Any) -> Response:
        if operation is None:
            return error_response(
                404,
                [ApiError.at_resource(request.path, "Not found", "no such endpoint")],
            )
        if request.body_too_large:
            return error_response(
                413,
                [ApiError.at_pointer("", "Request too large", "request body too large")],
            )
        faults = self.state.faults
        injected = 503 if faults.down else self.state.injected_error()
        if injected is not None:
            return _fault_response(injected, faults, request.path)
        if denied := unauthorized(request, AUTH_SCHEME, self.state.api_keys, "Integration API key"):
            return denied
        try:
            match operation:
                case Operation.AUTHPING:
                    _sleep_ms(faults.latency_ms)
                    return Response(204)
                case Operation.UPDATE_PROFILE:
                    return self._update_profile(request, _json_body(parsed))
                case Operation.UPDATE_PROFILES:
                    return self._update_profiles(request, _json_body(parsed))
                case Operation.TRACK_EVENT:
                    return self._track_event(request, _json_body(parsed))
                case Operation.CREATE_AUDIENCE:
                    return self._create_audience(request, _json_body(parsed))
                case Operation.UPDATE_MEMBERSHIPS:
                    return self._update_memberships(request, _json_body(parsed))
                case Operation.DELETE_CUSTOMER_DATA:
                    return self._delete_customer_data(request)
        except InvalidRequest as exc:
            return error_response(400, exc.errors)
        except ProfileBusy:
            return _parallel_response(request.path)

    def _update_profile(self, request: Request, body: Any) -> Response:
        integration_id = _decode_integration_id(request.path[len(PROFILE_PREFIX) :])
        check_integration_id_parameter(integration_id)
        run_rule_engine = _bool_parameter(request, "runRuleEngine")
        dry = _bool_parameter(request, "dry")
        if dry and not run_rule_engine:
            raise InvalidRequest(
                [
                    ApiError.at_parameter(
                        "dry",
                        "Invalid parameter",
                        "dry=true requires runRuleEngine=true",
                    )
                ]
            )
        update = single_update(
            body, integration_id, self.state.rules(), run_rule_engine=run_rule_engine
        )
        (profile,) = self._commit(
            [update],
            dry=dry,
            touch_activity=run_rule_engine and not dry,
            want_states=True,
        )
        # CustomerProfileIntegrationResponseV2: effects, createdCoupons and
        # createdReferrals are required; no rules run here, so they stay empty.
        return Response(
            200,
            {
                "customerProfile": profile,
                "effects": [],
                "createdCoupons": [],
                "createdReferrals": [],
                "triggeredCampaigns": [],
            },
        )

    def _update_profiles(self, request: Request, body: Any) -> Response:
        silent = request.query.get("silent", "yes")
        if silent not in ("yes", "no"):
            raise InvalidRequest(
                [ApiError.at_parameter("silent", "Invalid parameter", "silent must be yes or no")]
            )
        updates = bulk_update(body, self.state.rules())
        profiles = self._commit(
            updates, dry=False, touch_activity=False, want_states=silent == "no"
        )
        if silent == "yes":
            return Response(204)
        # MultipleCustomerProfileIntegrationResponseV2
        return Response(200, {"integrationStates": [{"customerProfile": p} for p in profiles]})

    def _track_event(self, request: Request, body: Any) -> Response:
        event = track_event(body)
        silent = request.query.get("silent", "yes")
        with self.state.hold_profiles({event.profile_id}):
            _sleep_ms(self.state.faults.latency_ms)
            self.state.track(event)
        if silent == "yes":
            return Response(204)
        # TrackEventV2Response: effects, createdCoupons and createdReferrals are required.
        return Response(200, {"effects": [], "createdCoupons": [], "createdReferrals": []})

    def _create_audience(self, request: Request, body: Any) -> Response:
        audience_data = new_audience(body)
        _sleep_ms(self.state.faults.latency_ms)
        audience = self.state.create_audience(audience_data)
        if audience is None:
            return error_response(
                409,
                [
                    ApiError.at_pointer(
                        "/integrationId",
                        "Conflict",
                        "an audience with this integrationId exists already",
                    )
                ],
            )
        return Response(201, audience)

    def _update_memberships(self, request: Request, body: Any) -> Response:
        changes = membership_changes(body)
        with self.state.hold_profiles({change.integration_id for change in changes}):
            _sleep_ms(self.state.faults.latency_ms)
            unknown = self.state.change_memberships(changes)
        if unknown is not None:
            return error_response(
                404,
                [ApiError.at_resource(request.path, "Not found", f"no audience {unknown}")],
            )
        return Response(204)

    def _delete_customer_data(self, request: Request) -> Response:
        integration_id = _decode_integration_id(request.path[len(CUSTOMER_DATA_PREFIX) :])
        with self.state.hold_profiles({integration_id}):
            _sleep_ms(self.state.faults.latency_ms)
            deleted = self.state.delete_customer(integration_id)
        if not deleted:
            return error_response(
                404,
                [ApiError.at_resource(request.path, "Not found", "no such customer")],
            )
        return Response(204)

    def _commit(
        self,
        updates: list[ProfileUpdate],
        *,
        dry: bool,
        touch_activity: bool,
        want_states: bool,
    ) -> list[dict[str, Any]]:
        # The profiles stay "in flight" for the configured latency so that parallel
        # requests for one profile observably collide (409), as on Talon.One.
        with self.state.hold_profiles({update.integration_id for update in updates}):
            _sleep_ms(self.state.faults.latency_ms)
            return self.state.apply(
                updates, dry=dry, touch_activity=touch_activity, want_states=want_states
            )


def _route(request: Request) -> Operation | None:
    path, method = request.path, request.method
    if path == AUTHPING_PATH and method == "GET":
        return Operation.AUTHPING
    if path == PROFILES_PATH and method == "PUT":
        return Operation.UPDATE_PROFILES
    segment = path[len(PROFILE_PREFIX) :]
    if path.startswith(PROFILE_PREFIX) and segment and "/" not in segment and method == "PUT":
        return Operation.UPDATE_PROFILE
    simple = {
        (EVENTS_PATH, "POST"): Operation.TRACK_EVENT,
        (AUDIENCES_PATH, "POST"): Operation.CREATE_AUDIENCE,
        (MEMBERSHIPS_PATH, "POST"): Operation.UPDATE_MEMBERSHIPS,
    }
    if (path, method) in simple:
        return simple[(path, method)]
    customer = path[len(CUSTOMER_DATA_PREFIX) :]
    if path.startswith(CUSTOMER_DATA_PREFIX) and customer and "/" not in customer:
        return Operation.DELETE_CUSTOMER_DATA if method == "DELETE" else None
    return None


def _parse_body(raw: bytes) -> Any:
    """The JSON body (None when empty), or the InvalidRequest to answer if it is used."""
    if not raw:
        return None
    try:
        return parse_json(raw)
    except InvalidRequest as exc:
        return exc


def _json_body(parsed: Any) -> Any:
    if isinstance(parsed, InvalidRequest):
        raise parsed
    return parsed


def _profile_count(operation: Operation | None, body: Any) -> int:
    if operation in (
        Operation.UPDATE_PROFILE,
        Operation.TRACK_EVENT,
        Operation.DELETE_CUSTOMER_DATA,
    ):
        return 1
    if operation is Operation.UPDATE_MEMBERSHIPS and type(body) is dict:
        changes = body.get("data")
        return len(changes) if type(changes) is list else 0
    if operation is Operation.UPDATE_PROFILES and type(body) is dict:
        profiles = body.get("customerProfiles")
        return len(profiles) if type(profiles) is list else 0
    return 0


def _decode_integration_id(segment: str) -> str:
    try:
        return unquote(segment, errors="strict")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            [
                ApiError.at_parameter(
                    "integrationId",
                    "Invalid integrationId",
                    "integrationId is not valid UTF-8",
                )
            ]
        ) from exc


def _bool_parameter(request: Request, name: str) -> bool:
    value = request.query.get(name, "false").lower()
    if value not in ("true", "false"):
        raise InvalidRequest(
            [ApiError.at_parameter(name, "Invalid parameter", f"{name} must be true or false")]
        )
    return value == "true"


def _fault_response(status: int, faults: Faults, path: str) -> Response:
    phrase = HTTPStatus(status).phrase
    message = _FAULT_MESSAGES.get(status, phrase)
    headers = {}
    if faults.retry_after is not None and status in (429, 503):
        headers["Retry-After"] = str(faults.retry_after)
    return error_response(
        status,
        [ApiError.at_resource(path, phrase, f"{message} (sandbox fault)")],
        message=message,
        headers=headers,
    )


def _parallel_response(path: str) -> Response:
    return error_response(
        409,
        [
            ApiError.at_resource(
                path,
                "Conflict",
                "another request is updating this customer profile;"
                " send requests for one profile sequentially",
            )
        ],
        message=PARALLEL_MESSAGE,
    )


def _sleep_ms(milliseconds: int) -> None:
    if milliseconds:
        time.sleep(milliseconds / 1000)
