"""OpenAPI schema adjustments drf-spectacular cannot express by annotation."""

from typing import Any


def require_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every operation here that takes a body needs one (an empty body is a 400)."""
    for operations in result["paths"].values():
        for operation in operations.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result
