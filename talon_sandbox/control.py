"""The sandbox's control API under /sandbox/ (no auth): inspect state, configure, inject faults."""

import json
from typing import Any
from urllib.parse import unquote

from .attributes import validate_catalogue
from .responses import ApiError, Request, Response, error_response
from .state import SandboxState

PREFIX = "/sandbox"
_PROFILE_PREFIX = "/profiles/"


class ControlApi:
    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def handle(self, request: Request) -> Response:
        path = request.path[len(PREFIX) :].rstrip("/")
        try:
            return self._route(request.method, path, request.body)
        except ValueError as exc:  # a malformed or invalid control body
            return error_response(
                400, [ApiError.at_pointer("", "Invalid control request", str(exc))]
            )

    def _route(self, method: str, path: str, raw_body: bytes) -> Response:
        state = self.state
        match method, path:
            case "GET", "/profiles":
                return Response(200, state.profiles_json())
            case "GET", _ if path.startswith(_PROFILE_PREFIX):
                profile = state.profile_json(unquote(path[len(_PROFILE_PREFIX) :]))
                return Response(200, profile) if profile is not None else _not_found(path)
            case "GET", "/audiences":
                return Response(200, state.audiences_json())
            case "GET", "/requests":
                return Response(200, state.requests_json())
            case "GET", "/stats":
                return Response(200, state.stats_json())
            case "POST", "/reset":
                return self._reset(_json(raw_body, default={}))
            case "GET", "/attributes":
                return Response(200, dict(state.catalogue))
            case "PUT", "/attributes":
                state.catalogue = validate_catalogue(_json(raw_body))
                return Response(200, dict(state.catalogue))
            case "GET", "/api-keys":
                return Response(200, sorted(state.api_keys))
            case "PUT", "/api-keys":
                state.api_keys = frozenset(_api_keys(_json(raw_body)))
                return Response(200, sorted(state.api_keys))
            case "GET", "/faults":
                return Response(200, state.faults.to_json())
            case "PUT", "/faults":
                return Response(200, state.update_faults(_json(raw_body)).to_json())
        return _not_found(path)

    def _reset(self, body: Any) -> Response:
        """Clear profiles, log, stats and faults; optionally replace attributes/api_keys."""
        if not isinstance(body, dict) or set(body) - {"attributes", "api_keys"}:
            raise ValueError('reset body may only contain "attributes" and "api_keys"')
        catalogue = body.get("attributes")
        api_keys = body.get("api_keys")
        self.state.reset(
            catalogue=None if catalogue is None else validate_catalogue(catalogue),
            api_keys=None if api_keys is None else _api_keys(api_keys),
        )
        return Response(204)


def _json(raw_body: bytes, default: Any = None) -> Any:
    if not raw_body and default is not None:
        return default
    return json.loads(raw_body)  # JSONDecodeError is a ValueError


def _api_keys(value: Any) -> list[str]:
    if type(value) is not list or not all(type(key) is str and key for key in value):
        raise ValueError("api keys must be an array of non-empty strings")
    return value


def _not_found(path: str) -> Response:
    return error_response(
        404,
        [ApiError.at_resource(PREFIX + path, "Not found", "no such sandbox resource")],
    )
