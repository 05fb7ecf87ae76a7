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

# Each column's header and the field it is read from.
EVENT_COLUMNS = {
    "id": "id",
    "received_at": "received_at",
    "destination": "destination__slug",
    "type": "type",
    "user_id": "user_id",
    "message_id": "message_id",
    "request_id": "request_id",
    "status": "status",
    "reason": "reason",
    "attempts": "attempts",
    "delivered_at": "delivered_at",
}
EVENT_SUMMARY = ["dropped", "notes"]  # from the event's notes
ATTEMPT_COLUMNS = {
    "id": "id",
    "created_at": "created_at",
    "destination": "destination__slug",
    "integration_id": "integration_id",
    "profiles": "profile_count",
    "method": "method",
    "path": "url",
    "response_status": "response_status",
    "outcome": "outcome",
    "error": "error",
    "duration_ms": "duration_ms",
    "attempt_number": "attempt_number",
    "task_id": "task_id",
}
CHUNK = 2000


class _Echo:
    """csv.writer's file: hands each written line back instead of storing it."""

    def write(self, value: str) -> str:
        return value


def _event_rows(events: QuerySet[InboundEvent]) -> Iterator[list[Any]]:
    rows = events.values_list(*EVENT_COLUMNS.values(), "notes")
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
    path_at = list(ATTEMPT_COLUMNS).index("path")
    rows = attempts.values_list(*ATTEMPT_COLUMNS.values())
    for row in rows.iterator(chunk_size=CHUNK):
        fields = list(row)
        # The path only: the base URL is the destination's, which marketers never see.
        fields[path_at] = path_only(fields[path_at])
        yield fields


def as_csv(rows: QuerySet[Any]) -> StreamingHttpResponse:
    """An audit list as a CSV download."""
    if rows.model is DeliveryAttempt:
        name, lines = "delivery-attempts", _lines(list(ATTEMPT_COLUMNS), _attempt_rows(rows))
    else:
        name, lines = "inbound-events", _lines([*EVENT_COLUMNS, *EVENT_SUMMARY], _event_rows(rows))
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(lines, content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}-{stamp}.csv"'
    return response
