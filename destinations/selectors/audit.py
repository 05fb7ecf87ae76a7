"""Reads of the audit log that stay fast at millions of events: exact matches on
indexed columns, no DISTINCT scans, no counts past what a page needs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection
from django.db.models import Count, Q, QuerySet, Subquery, TextField
from django.db.models.expressions import OuterRef, RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce

from destinations.models import Destination, InboundEvent
from destinations.services import mapping
from destinations.services.ingest import FUTURE_NOTE

Status = InboundEvent.Status

# The Segment types ingest stores; "invalid" is a batch item whose type was unusable.
EVENT_TYPES = ("identify", "track", "page", "screen", "group", "alias", "delete", "invalid")

# Traits searched by exact value, each served by an expression index (0015_audit_indexes).
SEARCHED_TRAITS = ("email",)

# Notes that say what was not forwarded by choice, or changed on the way; every
# other note is a value Talon.One should have had and did not get (dropped).
NOT_DROPPED = (
    "not listed",  # NOT_LISTED, NOT_LISTED_CASE, NOT_LISTED_INVALID_NAME
    mapping.ENGAGE_OFF,
    mapping.NULL_SKIPPED,
    mapping.ASSUMED_UTC,
    mapping.AUDIENCE_AS_MEMBERSHIP,
    FUTURE_NOTE["reason"],
    "scrubbed ",  # a deletion's tombstone
)


def is_dropped(note: Mapping[str, Any]) -> bool:
    reason = str(note.get("reason", ""))
    return not reason.startswith(NOT_DROPPED)


def dropped_notes(notes: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [note for note in notes if isinstance(note, Mapping) and is_dropped(note)]


def _jsonpath_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# The same test in SQL. On PostgreSQL a partial index holds exactly these rows.
DROPPED_JSONPATH = "$[*] ? ({})".format(
    " && ".join(f"!(@.reason starts with {_jsonpath_string(p)})" for p in NOT_DROPPED)
)


def _dropped_sql() -> RawSQL:
    # Only the table name and placeholders are formatted in; the values are parameters.
    table = InboundEvent._meta.db_table
    if connection.vendor == "postgresql":
        sql = f'jsonb_path_exists("{table}"."notes", %s::jsonpath)'
        return RawSQL(sql, [DROPPED_JSONPATH])  # noqa: S611
    tests = " AND ".join("substr(r, 1, %s) != %s" for _ in NOT_DROPPED)
    params: list[Any] = [x for p in NOT_DROPPED for x in (len(p), p)]
    sql = (
        "EXISTS (SELECT 1 FROM (SELECT json_extract(value, '$.reason') AS r "  # noqa: S608
        f'FROM json_each("{table}"."notes")) WHERE {tests})'
    )
    return RawSQL(sql, params)  # noqa: S611


def with_notes(events: QuerySet[InboundEvent]) -> QuerySet[InboundEvent]:
    return events.exclude(notes=[])


def with_dropped_values(events: QuerySet[InboundEvent]) -> QuerySet[InboundEvent]:
    """Events with at least one dropped value: partial deliveries, when delivered."""
    return events.alias(has_dropped=_dropped_sql()).filter(has_dropped=True)


def trait_value(name: str) -> Cast:
    """The trait's text: the expression its index is built on (0015_audit_indexes).
    Cast: compared as text, not as JSON (SQLite would parse the term as JSON)."""
    return Cast(KeyTextTransform(name, KeyTransform("traits", "payload")), TextField())


def search_events(events: QuerySet[InboundEvent], term: str) -> QuerySet[InboundEvent]:
    """Exact matches only (a userId, messageId or traits.email), each on an index:
    a substring search would read every row."""
    term = term.strip()
    if not term:
        return events
    aliases = {f"trait_{name}": trait_value(name) for name in SEARCHED_TRAITS}
    match = Q(user_id=term) | Q(message_id=term)
    for alias in aliases:
        match |= Q(**{alias: term})
    return events.alias(**aliases).filter(match)


def with_event_counts(destinations: QuerySet[Destination]) -> QuerySet[Destination]:
    """Pending and failed counts per destination, each a subquery on the
    (destination, status, ...) index instead of a COUNT over a join of every event."""

    def count(status: str) -> Coalesce:
        rows = (
            InboundEvent.objects.filter(destination=OuterRef("pk"), status=status)
            .order_by()
            .values("destination")
            .annotate(n=Count("*"))
            .values("n")
        )
        return Coalesce(Subquery(rows), 0)

    return destinations.annotate(
        pending_count=count(Status.PENDING), failed_count=count(Status.FAILED)
    )
