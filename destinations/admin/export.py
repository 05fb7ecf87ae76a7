"""CSV export of an audit list as filtered on screen, streamed row by row: a
million events never sit in memory. The columns hold no URL, key or secret, so
marketers and operators get the same file."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from typing import Any

from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from django.utils import timezone

from destinations.admin.display import path_only
from destinations.models import DeliveryAttempt, InboundEvent
from destinations.selectors import audit

EVENT_COLUMNS = [
    "id",
    "received_at",
    "destination",
    "type",
    "user_id",
    "message_id",
    "request_id",
    "status",
    "reason",
    "attempts",
    "delivered_at",
    "dropped",
    "notes",
]
ATTEMPT_COLUMNS = [
    "id",
    "created_at",
    "destination",
    "integration_id",
    "profiles",
    "method",
    "path",
    "response_status",
    "outcome",
    "error",
    "duration_ms",
    "attempt_number",
    "task_id",
]
CHUNK = 2000


class _Echo:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _event_rows(events: QuerySet[InboundEvent]) -> Iterator[list[Any]]:
    rows = events.values_list(
        "id",
        "received_at",
        "destination__slug",
        "type",
        "user_id",
        "message_id",
        "request_id",
        "status",
        "reason",
        "attempts",
        "delivered_at",
        "notes",
    )
    for *fields, notes in rows.iterator(chunk_size=CHUNK):
        notes = notes if isinstance(notes, list) else []
        summary = "; ".join(f"{n.get('attribute', '')}: {n.get('reason', '')}" for n in notes)
        yield [*fields, len(audit.dropped_notes(notes)), summary]


def _lines(header: list[str], rows: Iterable[list[Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([_cell(value) for value in row])


def _cell(value: Any) -> Any:
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        # A spreadsheet would run it as a formula (CSV injection): a userId is Segment's input.
        return "'" + value
    return "" if value is None else value


def _attempt_rows(attempts: QuerySet[DeliveryAttempt]) -> Iterator[list[Any]]:
    rows = attempts.values_list(
        "id",
        "created_at",
        "destination__slug",
        "integration_id",
        "profile_count",
        "method",
        "url",
        "response_status",
        "outcome",
        "error",
        "duration_ms",
        "attempt_number",
        "task_id",
    )
    for id_, created_at, slug, integration_id, profiles, method, url, *rest in rows.iterator(
        chunk_size=CHUNK
    ):
        # The path only: the base URL is the destination's, which marketers never see.
        yield [id_, created_at, slug, integration_id, profiles, method, path_only(url), *rest]


def as_csv(rows: QuerySet[Any]) -> StreamingHttpResponse:
    """An audit list as a CSV download."""
    if rows.model is DeliveryAttempt:
        name, lines = "delivery-attempts", _lines(ATTEMPT_COLUMNS, _attempt_rows(rows))
    else:
        name, lines = "inbound-events", _lines(EVENT_COLUMNS, _event_rows(rows))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response
