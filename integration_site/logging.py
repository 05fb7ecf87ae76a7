"""Log lines: readable text by default, one JSON object a line with LOG_FORMAT=json.

Every line logged while a request or a flush runs carries its request id and
destination: the request middleware and the Celery task signals (connected in
destinations/apps.py) set them in context variables, a filter on the handler
copies them onto each record.
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the settings import this module: no Django import at run time
    from django.http import HttpRequest, HttpResponse

request_id: ContextVar[str] = ContextVar("request_id", default="")
destination: ContextVar[str] = ContextVar("destination", default="")

# What the proxy sends (nginx's $request_id: 32 hex digits); anything else is replaced.
INCOMING_REQUEST_ID = re.compile(r"[A-Za-z0-9-]{8,64}")


class ContextFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        record.destination = destination.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = [
            f"{name}={value}"
            for name in ("request_id", "destination")
            if (value := getattr(record, name, ""))
        ]
        return f"{line} [{' '.join(context)}]" if context else line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in ("request_id", "destination"):
            if value := getattr(record, name, ""):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class RequestContextMiddleware:
    """Names each request (the proxy's X-Request-ID, or a new one), answers with
    the name, and puts the destination slug of the URL in the log context. The
    context lasts until the request is finished (clear(), on request_finished),
    so Django's own line about a 4xx/5xx answer, logged last, carries it too."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        given = request.headers.get("X-Request-ID", "")
        name = given if INCOMING_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        request_id.set(name)
        destination.set("")
        response = self.get_response(request)
        response["X-Request-ID"] = name
        return response

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: dict[str, Any]
    ) -> None:
        if slug := kwargs.get("slug"):
            destination.set(slug)


def clear(**kwargs: Any) -> None:
    request_id.set("")
    destination.set("")


def logging_config(log_format: str, level: str) -> dict[str, Any]:
    formatter = {"json": JsonFormatter, "text": TextFormatter}[log_format]
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"context": {"()": ContextFilter}},
        "formatters": {"default": {"()": formatter}},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "filters": ["context"],
            }
        },
        "root": {"handlers": ["console"], "level": level},
    }
