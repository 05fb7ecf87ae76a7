"""How the audit log shows things: status badges, short cells, the notes table,
and a paginator that never counts a million rows."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import urlsplit

from django.core.paginator import Paginator
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from destinations.admin.common import cut, cut_json
from destinations.selectors import audit

# Lists count at most this many matches (10 pages) and say "more than" past it:
# counting 10,000 matches of a filter that keeps one row in ten reads 100,000
# rows (70 ms at 1,000,000 events), 1,000 read a tenth of that. Filters, search
# and the CSV export (uncapped) reach the rest.
COUNT_CAP = 1_000

# Text and a symbol always say the status; the colour only repeats it.
STATUS_SYMBOLS = {"delivered": "✓", "failed": "✗", "pending": "…", "skipped": "○"}


class CappedPaginator(Paginator):
    """Counts at most COUNT_CAP + 1 rows (a LIMIT inside the COUNT), so a page
    never counts every row behind it; `capped` says there are more."""

    @cached_property
    def count(self) -> int:
        return self.object_list[: COUNT_CAP + 1].count()

    @property
    def capped(self) -> bool:
        return self.count > COUNT_CAP

    @property
    def cap_label(self) -> str:
        return f"{COUNT_CAP:,}"


def status_badge(status: str, label: str) -> SafeString:
    return format_html(
        '<span class="audit-status audit-status-{}">{} {}</span>',
        status,
        STATUS_SYMBOLS.get(status, ""),
        label,
    )


def path_only(url: str) -> str:
    """A request's URL without the destination's base URL (marketers never see it)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def short(text: str, limit: int) -> SafeString | str:
    """At most `limit` characters; the whole text on hover when cut."""
    if len(text) <= limit:
        return text
    return format_html('<span title="{}">{}</span>', text, cut(text, limit))


def _flat_values(value: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Leaves of a traits object under their flattened names (as the mapping names them)."""
    if isinstance(value, Mapping):
        for key, inner in value.items():
            yield from _flat_values(inner, f"{prefix}_{key}" if prefix else str(key))
    elif prefix:
        yield prefix, value


def _source_values(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, Mapping):
        return {}
    values: dict[str, Any] = {}
    for part in ("properties", "traits"):
        values.update(_flat_values(payload.get(part)))
    context = payload.get("context")
    if isinstance(context, Mapping):
        values.update(_flat_values(context.get("traits")))
    return values


def notes_table(notes: Any, payload: Any) -> SafeString | str:
    """One row per note: the attribute, the value received, why (dropped ones marked)."""
    if not isinstance(notes, list) or not notes:
        return "None: everything listed was sent as received."
    values = _source_values(payload)
    rows = []
    for note in notes:
        if not isinstance(note, Mapping):
            continue
        name = str(note.get("attribute", ""))
        rows.append(
            (
                "audit-dropped" if audit.is_dropped(note) else "",
                name,
                cut_json(values[name], 200) if name in values else "—",
                note.get("reason", ""),
            )
        )
    body = format_html_join(
        "", '<tr class="{}"><td>{}</td><td><code>{}</code></td><td>{}</td></tr>', rows
    )
    return format_html(
        '<table class="audit-notes"><thead><tr><th scope="col">attribute</th>'
        '<th scope="col">value received</th><th scope="col">reason</th></tr></thead>'
        "<tbody>{}</tbody></table>",
        body,
    )
