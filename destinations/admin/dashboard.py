"""The admin index's dashboard as server-rendered SVG: no script, no CDN. Each
chart has its numbers as text (axis, totals, a legend) and each bar a tooltip."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from destinations.selectors.dashboard import STATUSES, Activity, Bucket

COLOURS = {
    "delivered": "#2e7d32",
    "skipped": "#8a8a8a",
    "failed": "#c62828",
    "pending": "#e0a000",
}
BAR = 18  # an hour's bar
DAY_BAR = 40  # a day's bar: as wide as its label ("Fri 20")
GAP = 4
LEFT = 44  # room for the scale's labels
TOP = 16
HEIGHT = 110  # of the bars' area
BOTTOM = 22  # room for the time labels


def dashboard(activities: list[Activity], counted_at: datetime) -> SafeString:
    if not activities:
        return format_html("<p>{}</p>", "No destinations yet.")
    legend = format_html_join(
        " ",
        '<span style="white-space: nowrap"><svg width="12" height="12" aria-hidden="true">'
        '<rect width="12" height="12" fill="{}"/></svg> {}</span>',
        ((COLOURS[status], status) for status in STATUSES),
    )
    sections = format_html_join("", "{}", ((_destination(a),) for a in activities))
    return format_html(
        '<p class="help">Events received per hour (last 24 hours) and per day (last 7 days), '
        "by their status at {} (counted at most once a minute). {}</p>{}",
        timezone.localtime(counted_at).strftime("%H:%M:%S %Z"),
        legend,
        sections,
    )


def _destination(activity: Activity) -> SafeString:
    return format_html(
        '<div class="dashboard-destination" style="margin-bottom: 16px">'
        "<h3>{}</h3><p>{}</p>"
        '<div style="display: flex; flex-wrap: wrap; gap: 24px">{}{}</div></div>',
        activity.destination.name,
        _oldest(activity.oldest_pending),
        _chart(
            f"{activity.destination.name}: last 24 hours, per hour",
            "Last 24 hours",
            activity.hours,
            activity.hours_total,
            lambda b: b.start.strftime("%H:00"),
            every=6,
        ),
        _chart(
            f"{activity.destination.name}: last 7 days, per day",
            "Last 7 days",
            activity.days,
            activity.days_total,
            lambda b: b.start.strftime("%a %d"),
            every=1,
            bar=DAY_BAR,
        ),
    )


def _oldest(age: timedelta | None) -> SafeString:
    if age is None:
        return format_html("Oldest pending event: {}", "none waiting")
    return format_html("Oldest pending event: <strong>{}</strong> old", _duration(age))


def _duration(age: timedelta) -> str:
    seconds = max(0, int(age.total_seconds()))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60} min"
    return f"{seconds // 86400} days {seconds % 86400 // 3600} h"


def _chart(
    label: str,
    title: str,
    buckets: list[Bucket],
    total: Bucket,
    tick: Callable[[Bucket], str],
    *,
    every: int,
    bar: int = BAR,
) -> SafeString:
    top = max((b.received for b in buckets), default=0) or 1
    width = LEFT + len(buckets) * (bar + GAP)
    height = TOP + HEIGHT + BOTTOM
    bars = format_html_join(
        "", "{}", ((_bar(i, bucket, top, tick, bar),) for i, bucket in enumerate(buckets))
    )
    ticks = format_html_join(
        "",
        '<text x="{}" y="{}" font-size="10" text-anchor="middle">{}</text>',
        (
            (LEFT + i * (bar + GAP) + bar // 2, TOP + HEIGHT + 14, tick(bucket))
            for i, bucket in enumerate(buckets)
            if i % every == 0
        ),
    )
    totals = ", ".join(f"{status} {total.counts[status]}" for status in STATUSES)
    return format_html(
        '<figure style="margin: 0">'
        '<svg role="img" aria-label="{}" viewBox="0 0 {} {}" width="{}" height="{}" '
        'style="max-width: 100%; height: auto; font-family: sans-serif">'
        "<title>{}</title>"
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#999"/>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" font-size="10" text-anchor="end">0</text>'
        "{}{}</svg>"
        "<figcaption><strong>{}</strong>: received {}; {}</figcaption></figure>",
        label,
        width,
        height,
        width,
        height,
        label,
        LEFT - 2,
        TOP + HEIGHT,
        width,
        TOP + HEIGHT,
        LEFT - 6,
        TOP + 4,
        top,
        LEFT - 6,
        TOP + HEIGHT,
        bars,
        ticks,
        title,
        total.received,
        totals,
    )


def _bar(
    index: int, bucket: Bucket, top: int, tick: Callable[[Bucket], str], width: int
) -> SafeString:
    x = LEFT + index * (width + GAP)
    base = TOP + HEIGHT
    parts = []
    below = 0
    for status in STATUSES:
        count = bucket.counts[status]
        if not count:
            continue
        # Stacked by cumulative height, so rounding never adds up past the top.
        low = round(HEIGHT * below / top)
        below += count
        high = max(low + 1, round(HEIGHT * below / top))
        parts.append((x, base - high, width, high - low, COLOURS[status]))
    rects = format_html_join("", '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"/>', parts)
    counts = ", ".join(f"{status} {bucket.counts[status]}" for status in STATUSES)
    return format_html(
        "<g><title>{}: received {} ({})</title>{}</g>",
        tick(bucket),
        bucket.received,
        counts,
        rects,
    )
