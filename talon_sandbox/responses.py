"""Request/response values shared by the sandbox's APIs, Talon.One's error shape and its
answer to a missing or wrong key."""

from collections.abc import Container, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # still URL-encoded, without the query string
    query: Mapping[str, str]  # first value of each parameter
    authorization: str | None
    body: bytes
    body_too_large: bool = False  # the body was not read; see MAX_BODY_BYTES


@dataclass(frozen=True)
class Response:
    status: int
    body: Any = None  # JSON-serialisable; None sends no body
    headers: Mapping[str, str] = field(default_factory=dict)


def json_pointer(*parts: str | int) -> str:
    """RFC 6901 JSON pointer: ("customerProfiles", 3) -> "/customerProfiles/3"."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


@dataclass(frozen=True)
class ApiError:
    """One item of Talon.One's `errors` list (APIError + ErrorSource)."""

    title: str
    details: str
    source: Mapping[str, str]

    @classmethod
    def at_pointer(cls, pointer: str, title: str, details: str) -> "ApiError":
        return cls(title, details, {"pointer": pointer})

    @classmethod
    def at_parameter(cls, parameter: str, title: str, details: str) -> "ApiError":
        return cls(title, details, {"parameter": parameter})

    @classmethod
    def at_resource(cls, resource: str, title: str, details: str) -> "ApiError":
        return cls(title, details, {"resource": resource})

    def to_json(self) -> dict[str, Any]:
        return {
            "title": self.title,
            "details": self.details,
            "source": dict(self.source),
        }


def error_response(
    status: int,
    errors: Sequence[ApiError],
    message: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Talon.One's ErrorResponseWithStatus; the message defaults to the first error's details."""
    if message is None:
        message = errors[0].details if errors else HTTPStatus(status).phrase
        if len(errors) > 1:
            more = len(errors) - 1
            message += f" (and {more} more error{'s' if more > 1 else ''})"
    body = {
        "message": message,
        "errors": [error.to_json() for error in errors],
        "StatusCode": status,
    }
    return Response(status, body, headers or {})


def unauthorized(
    request: Request, scheme: str, keys: Container[str], key_name: str
) -> Response | None:
    """Talon.One's 401 unless the request's Authorization header is `<scheme> <key>`
    with one of keys; None when it is."""
    authorization = request.authorization or ""
    prefix = scheme + " "
    if authorization.startswith(prefix) and authorization[len(prefix) :] in keys:
        return None
    return error_response(
        401,
        [
            ApiError.at_resource(
                request.path,
                "Unauthorized",
                f"missing or invalid {key_name} (header Authorization: {prefix}<key>)",
            )
        ],
    )
