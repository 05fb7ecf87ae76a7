"""/metrics: Prometheus text, behind a token, read from the database at scrape time."""

import json
from datetime import timedelta

import pytest
from django.test import override_settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from destinations.models import DeliveryAttempt, InboundEvent
from tests.conftest import identify, sign

pytestmark = pytest.mark.django_db

TOKEN = "metrics-token-for-tests"
WITH_TOKEN = override_settings(METRICS_TOKEN=TOKEN)


def scrape(client) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = client.get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.content.decode())
        for sample in family.samples
    }


def event(destination, message_id: str, status: str, age: timedelta = timedelta(0)):
    row = InboundEvent.objects.create(
        destination=destination, message_id=message_id, type="identify", user_id="u",
        kind=InboundEvent.Kind.PROFILE,
        payload={}, status=status, timestamp=timezone.now(),
    )  # fmt: skip
    InboundEvent.objects.filter(pk=row.pk).update(received_at=timezone.now() - age)


def attempt(destination, status: int | None, duration_ms: int, task_id: str, age=timedelta(0)):
    row = DeliveryAttempt.objects.create(
        destination=destination, profile_count=1, method="PUT", url="https://t/x",
        request_body={}, response_status=status, duration_ms=duration_ms, attempt_number=1,
        outcome="success", task_id=task_id,
    )  # fmt: skip
    DeliveryAttempt.objects.filter(pk=row.pk).update(created_at=timezone.now() - age)


@pytest.mark.parametrize("configured", ["", TOKEN])
def test_without_the_right_token_there_is_nothing(client, configured):
    with override_settings(METRICS_TOKEN=configured):
        assert client.get("/metrics").status_code == 404
        assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 404


@WITH_TOKEN
def test_backlog_oldest_pending_and_events_by_status(client, make_destination):
    acme = make_destination("acme")
    make_destination("idle")
    event(acme, "m1", "pending", age=timedelta(minutes=45))
    event(acme, "m2", "pending", age=timedelta(minutes=1))
    event(acme, "m3", "delivered")
    event(acme, "m4", "failed")

    metrics = scrape(client)

    acme_label = (("destination", "acme"),)
    assert metrics[("segment_backlog_events", acme_label)] == 2
    assert 45 * 60 <= metrics[("segment_oldest_pending_age_seconds", acme_label)] < 46 * 60
    assert metrics[("segment_oldest_pending_age_seconds", (("destination", "idle"),))] == 0
    by_status = {
        status: metrics[("segment_events", (("destination", "acme"), ("status", status)))]
        for status in ("pending", "delivered", "failed", "skipped")
    }
    assert by_status == {"pending": 2, "delivered": 1, "failed": 1, "skipped": 0}


@WITH_TOKEN
def test_talon_one_requests_latency_and_flushes_of_the_window(client, make_destination):
    acme = make_destination("acme")
    attempt(acme, 204, 80, "task-1")
    attempt(acme, 204, 400, "task-1")
    attempt(acme, 500, 3000, "task-2")
    attempt(acme, None, 5000, "task-2")
    attempt(acme, 204, 10, "task-old", age=timedelta(hours=1))  # outside the window

    metrics = scrape(client)

    def sample(name, **labels):
        return metrics[(name, tuple(sorted({"destination": "acme", **labels}.items())))]

    assert sample("talon_one_recent_requests", status="204") == 2
    assert sample("talon_one_recent_requests", status="500") == 1
    assert sample("talon_one_recent_requests", status="none") == 1
    latency = "talon_one_recent_request_duration_seconds_bucket"
    assert sample(latency, le="0.1") == 1
    assert sample(latency, le="0.5") == 2
    assert sample(latency, le="5.0") == 4
    assert sample("talon_one_recent_request_duration_seconds_gcount") == 4
    assert sample("delivery_recent_flush_duration_seconds_gcount") == 2


@WITH_TOKEN
def test_ingest_answers_are_counted_by_outcome(client, make_destination):
    make_destination("acme")
    body = json.dumps(identify()).encode()

    def counted(outcome):
        labels = (("endpoint", "segment-ingest"), ("outcome", outcome))
        return scrape(client).get(("segment_ingest_requests_total", labels), 0)

    before = {outcome: counted(outcome) for outcome in ("accepted", "unauthorized")}
    client.post("/api/v1/segment/acme/", body, content_type="application/json",
                headers={"X-Signature": sign(body)})  # fmt: skip
    client.post("/api/v1/segment/acme/", body, content_type="application/json")

    assert counted("accepted") == before["accepted"] + 1
    assert counted("unauthorized") == before["unauthorized"] + 1


@override_settings(METRICS_TOKEN=TOKEN, ALLOWED_HOSTS=["segment-destination.example.com"])
def test_prometheus_scrapes_by_address(client):
    response = client.get(
        "/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, HTTP_HOST="web:8000"
    )

    assert response.status_code == 200
