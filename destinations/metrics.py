"""Prometheus metrics at `/metrics` (Bearer METRICS_TOKEN; off without one).

Most are read from the database at scrape time, so they hold for every web and
worker process alike: events by status, backlog and oldest pending age per
destination, and, over the last METRICS_WINDOW_SECONDS, Talon.One requests by
status with their latency and flush durations (taken from the delivery attempts
the audit log keeps). Ingest requests by outcome are counted as they are
answered, per process; with PROMETHEUS_MULTIPROC_DIR set (gunicorn in compose)
the scrape adds up all workers.
"""

from __future__ import annotations

import hmac
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Min
from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from destinations.models import DeliveryAttempt, Destination, InboundEvent

INGEST_REQUESTS = Counter(
    "segment_ingest_requests",
    "Requests to the ingest API, by endpoint and outcome.",
    ["endpoint", "outcome"],
    registry=None,
)
OUTCOMES = {
    200: "accepted",
    400: "invalid",
    401: "unauthorized",
    404: "unknown_destination",
    405: "method_not_allowed",
    413: "too_large",
    429: "throttled",
}
# Seconds; Talon.One's read timeout is 30 s by default.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
FLUSH_BUCKETS = (0.1, 0.5, 1, 5, 15, 30, 60, 120)


def outcome(status: int) -> str:
    return "error" if status >= 500 else OUTCOMES.get(status, str(status))


class IngestMetricsMiddleware:
    """Counts each answer of the ingest API (`/api/`), 401s and 413s included."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if request.path_info.startswith("/api/v1/"):
            match = request.resolver_match
            endpoint = match.url_name if match is not None and match.url_name else "other"
            INGEST_REQUESTS.labels(endpoint, outcome(response.status_code)).inc()
        return response


class DatabaseCollector(Collector):
    def collect(self) -> Iterator[Metric]:
        slugs = dict(Destination.objects.values_list("pk", "slug"))
        yield from self._events(slugs)
        yield from self._talon_one(slugs)

    def _events(self, slugs: dict[int, str]) -> Iterator[Metric]:
        events = GaugeMetricFamily(
            "segment_events",
            "Events in the audit log, by status.",
            labels=["destination", "status"],
        )
        backlog = GaugeMetricFamily(
            "segment_backlog_events", "Events waiting for delivery.", labels=["destination"]
        )
        oldest = GaugeMetricFamily(
            "segment_oldest_pending_age_seconds",
            "Age of the oldest event waiting for delivery (0 when none).",
            labels=["destination"],
        )
        counts: dict[tuple[int, str], int] = {
            (row["destination"], row["status"]): row["n"]
            for row in InboundEvent.objects.values("destination", "status").annotate(n=Count("id"))
        }
        pending_since = dict(
            InboundEvent.objects.filter(status=InboundEvent.Status.PENDING)
            .values("destination")
            .annotate(since=Min("received_at"))
            .values_list("destination", "since")
        )
        now = timezone.now()
        for pk, slug in slugs.items():
            for status in InboundEvent.Status.values:
                events.add_metric([slug, status], counts.get((pk, status), 0))
            backlog.add_metric([slug], counts.get((pk, InboundEvent.Status.PENDING), 0))
            since = pending_since.get(pk)
            oldest.add_metric([slug], (now - since).total_seconds() if since else 0)
        yield from (events, backlog, oldest)

    def _talon_one(self, slugs: dict[int, str]) -> Iterator[Metric]:
        window = settings.METRICS_WINDOW_SECONDS
        recent = DeliveryAttempt.objects.filter(
            created_at__gte=timezone.now() - timedelta(seconds=window)
        )
        requests = GaugeMetricFamily(
            "talon_one_recent_requests",
            f"Requests to Talon.One in the last {window} s, by HTTP status "
            "('none': no answer, e.g. a timeout).",
            labels=["destination", "status"],
        )
        latency: dict[str, list[float]] = defaultdict(list)
        per_status: dict[tuple[str, str], int] = defaultdict(int)
        for pk, status, duration_ms in recent.values_list(
            "destination", "response_status", "duration_ms"
        ):
            slug = slugs.get(pk, str(pk))
            per_status[(slug, str(status) if status else "none")] += 1
            latency[slug].append(duration_ms / 1000)
        for (slug, status), count in sorted(per_status.items()):
            requests.add_metric([slug, status], count)
        yield requests
        yield histogram(
            "talon_one_recent_request_duration_seconds",
            f"Latency of the requests to Talon.One in the last {window} s.",
            latency,
            LATENCY_BUCKETS,
        )
        # A flush is one task: from its first request to the end of its last.
        flushes: dict[str, list[float]] = defaultdict(list)
        spans = (
            recent.exclude(task_id="")
            .values("destination", "task_id")
            .annotate(first=Min("created_at"), last=Max("created_at"), tail=Max("duration_ms"))
        )
        for span in spans:
            seconds = (span["last"] - span["first"]).total_seconds() + span["tail"] / 1000
            flushes[slugs.get(span["destination"], str(span["destination"]))].append(seconds)
        yield histogram(
            "delivery_recent_flush_duration_seconds",
            f"Duration of the flushes that sent requests to Talon.One in the last {window} s.",
            flushes,
            FLUSH_BUCKETS,
        )


def histogram(
    name: str, documentation: str, values: dict[str, list[float]], buckets: Iterable[float]
) -> GaugeHistogramMetricFamily:
    family = GaugeHistogramMetricFamily(name, documentation, labels=["destination"])
    for slug, observed in sorted(values.items()):
        cumulative = [
            (floatToGoString(bound), sum(1 for value in observed if value <= bound))
            for bound in buckets
        ]
        cumulative.append(("+Inf", len(observed)))
        family.add_metric([slug], cumulative, gsum_value=sum(observed))
    return family


def registry() -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        registry.register(INGEST_REQUESTS)
    registry.register(DatabaseCollector())
    return registry


def metrics(request: HttpRequest) -> HttpResponse:
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if not token or not hmac.compare_digest(given.encode(), token.encode()):
        return HttpResponse(status=404)
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_LATEST)
