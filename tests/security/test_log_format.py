"""LOG_FORMAT=json: one JSON object a line, the request id and destination on
every line of a request or flush, and never a secret (formatted as production
formats it, debug level, through ingest and delivery, accepted and refused)."""

import io
import json
import logging
from collections.abc import Iterator
from types import SimpleNamespace

import pytest

from destinations.apps import task_log_context
from destinations.services import delivery
from integration_site.logging import ContextFilter, JsonFormatter, TextFormatter, clear
from tests.conftest import identify, sign
from tests.security.conftest import SECRET
from tests.security.test_no_secret_leaks import (
    ALL_SECRETS,
    live_destinations,
    sent_tasks,
)

__all__ = ["live_destinations", "sent_tasks"]

pytestmark = pytest.mark.django_db


@pytest.fixture
def log() -> Iterator[SimpleNamespace]:
    """Everything logged at debug level, as the console handler formats it:
    set `log.handler`'s formatter, read `log.stream`."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield SimpleNamespace(handler=handler, stream=stream)
    root.removeHandler(handler)
    root.setLevel(level)


def flush_as_the_worker_does(destination_id: int, task_id: str) -> None:
    task = SimpleNamespace(name="destinations.tasks.flush_destination")
    task_log_context(task_id=task_id, task=task, args=(destination_id,))
    try:
        delivery.flush(destination_id, task_id=task_id)
    finally:
        clear()


def test_json_lines_carry_the_context_and_no_secret(
    client, live_destinations, sent_tasks, log, django_capture_on_commit_callbacks
):
    log.handler.setFormatter(JsonFormatter())
    raw = json.dumps(identify("user-1", "m-1")).encode()
    with django_capture_on_commit_callbacks(execute=True):
        client.post("/api/v1/segment/acme/", raw, content_type="application/json",
                    headers={"X-Signature": sign(raw, SECRET)})  # fmt: skip
        client.post("/api/v1/segment/revoked/", raw, content_type="application/json",
                    headers={"X-Signature": sign(raw, SECRET)})  # fmt: skip
        refused = client.post("/api/v1/segment/acme/", raw, content_type="application/json",
                              headers={"Authorization": f"Bearer {SECRET}x"})  # fmt: skip
    for number, destination in enumerate(live_destinations):
        flush_as_the_worker_does(destination.pk, f"task-{number}")

    text = log.stream.getvalue()
    lines = [json.loads(line) for line in text.splitlines()]
    for secret in ALL_SECRETS:
        assert secret not in text
    unauthorized = [line for line in lines if line["message"].startswith("Unauthorized")]
    assert unauthorized
    assert unauthorized[-1]["request_id"] == refused["X-Request-ID"]
    assert unauthorized[-1]["destination"] == "acme"
    talon_one = [line for line in lines if line["logger"] == "urllib3.connectionpool"]
    assert {(line.get("request_id"), line.get("destination")) for line in talon_one} == {
        ("task-0", "acme"),
        ("task-1", "revoked"),
    }


def test_the_text_format_reads_as_before_with_the_context_at_the_end(client, log):
    log.handler.setFormatter(TextFormatter())

    client.post("/api/v1/segment/nowhere/", b"{}", content_type="application/json",
                headers={"X-Request-ID": "proxy-given-id-1"})  # fmt: skip

    line = log.stream.getvalue().splitlines()[-1]
    assert " WARNING django.request Unauthorized: /api/v1/segment/nowhere/" in line
    assert line.endswith("[request_id=proxy-given-id-1 destination=nowhere]")
