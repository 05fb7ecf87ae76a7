"""Talon.One's Management API, as far as this project uses it: the attribute
catalogue (GET /v1/attributes, getAttributes), behind a Management API key and
Talon.One's limit of about 3 requests/s per endpoint."""

import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from typing import Any

from .responses import ApiError, Request, Response, error_response, unauthorized
from .state import ACCOUNT_ID, SandboxState

AUTH_SCHEME = "ManagementKey-v1"
ATTRIBUTES_PATH = "/v1/attributes"
PATHS = frozenset({ATTRIBUTES_PATH})
ENTITY = "CustomerProfile"  # the catalogue holds customer-profile attributes only
MAX_PAGE_SIZE = 1000
RATE_LIMIT = 3  # requests per endpoint per RATE_WINDOW_SECONDS
RATE_WINDOW_SECONDS = 1.0
CREATED = "2024-01-01T00:00:00Z"  # the catalogue has no history: one fixed creation time


class ManagementApi:
    def __init__(self, state: SandboxState, management_keys: Iterable[str]) -> None:
        self.state = state
        self.management_keys = frozenset(management_keys)
        self._lock = threading.Lock()
        self._recent: deque[float] = deque()

    def handle(self, request: Request) -> Response:
        with self.state.handling():
            response = self._respond(request)
            self.state.record(request, None, response.status, 0)
        return response

    def _respond(self, request: Request) -> Response:
        if request.method != "GET":
            return error_response(
                404, [ApiError.at_resource(request.path, "Not found", "no such endpoint")]
            )
        if denied := unauthorized(request, AUTH_SCHEME, self.management_keys, "Management API key"):
            return denied
        try:
            page_size = _integer(request.query, "pageSize", MAX_PAGE_SIZE, 1, MAX_PAGE_SIZE)
            skip = _integer(request.query, "skip", 0, 0, None)
            kind = request.query.get("kind")
            if kind not in (None, "builtin", "custom"):
                raise _Invalid("kind", "kind must be builtin or custom")
        except _Invalid as exc:
            return error_response(
                400, [ApiError.at_parameter(exc.parameter, "Invalid parameter", exc.details)]
            )
        if not self._within_limit():
            return error_response(
                429,
                [ApiError.at_resource(request.path, "Too many requests", "about 3 requests/s")],
                message="Too many requests",
                headers={"Retry-After": "1"},
            )
        attributes = _filtered(self.state.catalogue, request.query)
        return Response(
            200,
            {
                "totalResultSize": len(attributes),
                "data": attributes[skip : skip + page_size],
            },
        )

    def _within_limit(self) -> bool:
        """At most RATE_LIMIT answered reads in any RATE_WINDOW_SECONDS."""
        now = time.monotonic()
        with self._lock:
            while self._recent and now - self._recent[0] >= RATE_WINDOW_SECONDS:
                self._recent.popleft()
            if len(self._recent) >= RATE_LIMIT:
                return False
            self._recent.append(now)
            return True


class _Invalid(Exception):
    def __init__(self, parameter: str, details: str) -> None:
        super().__init__(details)
        self.parameter = parameter
        self.details = details


def _integer(
    query: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None
) -> int:
    raw = query.get(name)
    if raw is None:
        return default
    if not raw.lstrip("-").isdigit() or not raw.isascii():
        raise _Invalid(name, f"{name} must be an integer")
    value = int(raw)
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum else f"at least {minimum}"
        raise _Invalid(name, f"{name} must be {bounds}")
    return value


def _filtered(catalogue: Mapping[str, str], query: Mapping[str, str]) -> list[dict[str, Any]]:
    """The catalogue as Talon.One's Attribute objects, in catalogue order, filtered
    by entity, kind (all are custom), type and search (name, description, type)."""
    entity, kind = query.get("entity"), query.get("kind")
    if entity not in (None, ENTITY) or kind == "builtin":
        return []
    search = query.get("search", "").lower()
    wanted_type = query.get("type")
    return [
        _attribute(index, name, type_name)
        for index, (name, type_name) in enumerate(catalogue.items(), start=1)
        if (wanted_type is None or type_name == wanted_type)
        and (search in name.lower() or search in type_name.lower())
    ]


def _attribute(attribute_id: int, name: str, type_name: str) -> dict[str, Any]:
    """Talon.One's Attribute schema, with its required fields."""
    return {
        "id": attribute_id,
        "created": CREATED,
        "accountId": ACCOUNT_ID,
        "entity": ENTITY,
        "name": name,
        "title": name.replace("_", " "),
        "type": type_name,
        "description": "",
        "editable": True,
        "suggestions": [],
        "hasAllowedList": False,
        "restrictedBySuggestions": False,
        "subscribedApplicationsIds": [],
    }
