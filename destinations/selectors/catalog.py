"""The attribute rows against Talon.One's catalog (read by services/catalog.py)
and against the traits that actually arrive: what the destination page shows a
marketer before events fail."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from destinations.models import AttributeMapping, Destination, InboundEvent, TalonAttribute
from destinations.services.mapping import (
    AttributeType,
    attribute_name_error,
    engage_trait,
    flattened_traits,
)

# The identify calls read for traits seen: at most this many among the
# destination's newest events, so the audit table (millions of rows) is never
# read whole, however few identify calls there are among them.
RECENT_IDENTIFIES = 1000
RECENT_EVENTS = 5000
ROW_TYPES = frozenset(t.value for t in AttributeType)
_DATE_TIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")

NOT_IN_TALON_ONE = "⚠ not in Talon.One"
DIFFERENT_TYPE = "⚠ Talon.One says {type}"
CASE_ONLY = "⚠ not in Talon.One: it has {name} (names are case-sensitive)"


@dataclass(frozen=True)
class RowCheck:
    """One attribute row as Talon.One's catalog sees it; problem "" when it is fine."""

    row: AttributeMapping
    problem: str
    talon_type: str | None


@dataclass(frozen=True)
class Suggestion:
    """An attribute a row could forward: from the catalog, or seen in traits.
    `type` is the row type to add it with, None when no row can have it
    (`why_not` says why)."""

    name: str
    type: str | None
    why_not: str = ""
    in_talon_one: bool = False
    talon_type: str | None = None
    title: str = ""
    count: int = 0
    example: Any = None
    computation_class: str = ""


@dataclass
class _Seen:
    count: int = 0
    example: Any = None
    computation_class: str = ""
    engage_type: str | None = None


def check_rows(
    rows: Iterable[AttributeMapping], catalog: Iterable[TalonAttribute]
) -> list[RowCheck]:
    """(a) Each row against the catalog: missing (or only in another case), or
    typed differently. Talon.One rejects an update with either whole."""
    by_name = {attribute.name: attribute for attribute in catalog}
    by_lower = {name.lower(): name for name in by_name}
    checks = []
    for row in rows:
        talon = by_name.get(row.name)
        if talon is None:
            other = by_lower.get(row.name.lower())
            problem = CASE_ONLY.format(name=other) if other else NOT_IN_TALON_ONE
            checks.append(RowCheck(row, problem, None))
        elif talon.type != row.type:
            checks.append(RowCheck(row, DIFFERENT_TYPE.format(type=talon.type), talon.type))
        else:
            checks.append(RowCheck(row, "", talon.type))
    return checks


def catalog_suggestions(
    rows: Iterable[AttributeMapping], catalog: Iterable[TalonAttribute]
) -> list[Suggestion]:
    """(b) Catalog attributes no row forwards, with the type to forward them as."""
    taken = {row.name.lower() for row in rows}
    return [
        Suggestion(
            name=attribute.name,
            type=attribute.type if attribute.type in ROW_TYPES else None,
            why_not="" if attribute.type in ROW_TYPES else f"rows cannot be {attribute.type}",
            in_talon_one=True,
            talon_type=attribute.type,
            title=attribute.title,
        )
        for attribute in catalog
        if attribute.name.lower() not in taken
    ]


def seen_suggestions(
    events: Iterable[Mapping[str, Any]],
    rows: Iterable[AttributeMapping],
    catalog: Iterable[TalonAttribute],
    *,
    forward_engage: bool,
) -> tuple[list[Suggestion], list[Suggestion]]:
    """(c) Traits in these identify calls that no row forwards, and (d) Engage
    audiences and computed traits the catalog does not know; most seen first.

    Flattened as the mapping flattens them. An Engage trait passes through
    without a row while forward_engage is on, so it is listed under (d) only."""
    taken = {row.name.lower(): row.name for row in rows}
    by_name = {attribute.name: attribute for attribute in catalog}
    traits: dict[str, _Seen] = {}
    engage: dict[str, _Seen] = {}
    for event in events:
        engaged = engage_trait(event)
        if engaged is not None:
            seen = engage.setdefault(engaged.key, _Seen())
            seen.count += 1
            if seen.count == 1:
                seen.example, seen.computation_class = engaged.value, engaged.computation_class
                seen.engage_type = engaged.type
        for name, value in flattened_traits(event).items():
            if forward_engage and engaged is not None and name == engaged.key:
                continue
            seen = traits.setdefault(name, _Seen())
            seen.count += 1
            if seen.count == 1:
                seen.example = value
    unlisted = [
        _trait_suggestion(name, seen, by_name.get(name), taken)
        for name, seen in traits.items()
        if name not in taken.values()
    ]
    unknown_engage = [
        Suggestion(
            name=key,
            type=seen.engage_type,
            why_not=_why_not(key, taken, seen.engage_type),
            count=seen.count,
            example=seen.example,
            computation_class=seen.computation_class,
        )
        for key, seen in engage.items()
        if key not in by_name
    ]
    return _most_seen(unlisted), _most_seen(unknown_engage)


def recent_identifies(destination: Destination) -> list[dict[str, Any]]:
    """The traits and Engage context of the destination's newest identify calls:
    at most RECENT_IDENTIFIES among its newest RECENT_EVENTS events, newest first.
    Both bounds are walked on the (destination, -id) index, and only the two
    parts of each payload that are read leave the database."""
    newest = (
        InboundEvent.objects.filter(destination=destination)
        .order_by("-id")
        .values("id")[:RECENT_EVENTS]
    )
    rows = (
        InboundEvent.objects.filter(id__in=newest, type="identify")
        .order_by("-id")
        .values_list("payload__traits", "payload__context__personas")[:RECENT_IDENTIFIES]
    )
    return [{"traits": traits, "context": {"personas": personas}} for traits, personas in rows]


@dataclass(frozen=True)
class CatalogView:
    """Everything the destination page's "Talon.One's attributes" section shows."""

    checks: list[RowCheck]
    from_catalog: list[Suggestion]
    seen: list[Suggestion]
    engage: list[Suggestion]
    events_read: int


def catalog_view(destination: Destination) -> CatalogView:
    rows = list(destination.attributes.all())
    catalog = list(destination.talon_attributes.all())
    events = recent_identifies(destination)
    seen, engage = seen_suggestions(
        events, rows, catalog, forward_engage=destination.forward_engage
    )
    read = destination.catalog_fetched_at is not None
    return CatalogView(
        checks=check_rows(rows, catalog) if read else [],
        from_catalog=catalog_suggestions(rows, catalog) if read else [],
        seen=seen,
        engage=engage if read else [],
        events_read=len(events),
    )


def _trait_suggestion(
    name: str, seen: _Seen, talon: TalonAttribute | None, taken: Mapping[str, str]
) -> Suggestion:
    if talon is not None and talon.type in ROW_TYPES:
        type_: str | None = talon.type
    elif talon is not None:
        type_ = None
    else:
        type_ = guess_type(seen.example)
    return Suggestion(
        name=name,
        type=type_,
        why_not=_why_not(name, taken, type_, talon),
        in_talon_one=talon is not None,
        talon_type=talon.type if talon is not None else None,
        count=seen.count,
        example=seen.example,
    )


def _why_not(
    name: str,
    taken: Mapping[str, str],
    type_: str | None,
    talon: TalonAttribute | None = None,
) -> str:
    if error := attribute_name_error(name):
        return error
    if (row := taken.get(name.lower())) is not None:
        return f"the row {row} differs only in case (names are case-sensitive)"
    if talon is not None and type_ is None:
        return f"rows cannot be {talon.type}"
    if type_ is None:
        return "its values fit no row type"
    return ""


def guess_type(value: Any) -> str | None:
    """The row type a value fits, for a trait Talon.One's catalog does not type."""
    if isinstance(value, bool):
        return AttributeType.BOOLEAN
    if isinstance(value, int | float):
        return AttributeType.NUMBER
    if isinstance(value, str):
        return AttributeType.TIME if _DATE_TIME.match(value) else AttributeType.STRING
    if isinstance(value, list) and value:
        items = {_scalar_type(item) for item in value}
        if len(items) == 1:
            return _LIST_OF.get(items.pop())
    return None


def _scalar_type(value: Any) -> str | None:
    return None if isinstance(value, bool | list | dict) else guess_type(value)


_LIST_OF = {
    AttributeType.STRING: AttributeType.LIST_STRING,
    AttributeType.NUMBER: AttributeType.LIST_NUMBER,
    AttributeType.TIME: AttributeType.LIST_TIME,
}


def _most_seen(suggestions: list[Suggestion]) -> list[Suggestion]:
    return sorted(suggestions, key=lambda s: (-s.count, s.name))
