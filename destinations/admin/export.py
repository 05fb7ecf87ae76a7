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

from destinations.models import InboundEvent
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


def events_csv(events: QuerySet[InboundEvent]) -> StreamingHttpResponse:
    stamp = timezone.now().strftime("%Y%m%d-%H%M%S")
    response = StreamingHttpResponse(
        _lines(EVENT_COLUMNS, _event_rows(events)), content_type="text/csv; charset=utf-8"
    )
    response["Content-Disposition"] = f'attachment; filename="inbound-events-{stamp}.csv"'
    return response
