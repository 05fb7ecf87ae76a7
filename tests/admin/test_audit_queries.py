"""The audit pages stay cheap at millions of rows: no COUNT(*) of a whole list,
no SELECT DISTINCT for a filter, no join of every event for the destination
list's counts, bodies left unread on lists, and (PostgreSQL) the indexes of
0015_audit_indexes serve each filter and search. bench/admin_pages.py times them."""

import importlib

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import DeliveryAttempt, Destination, InboundEvent
from destinations.selectors import audit

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status
EVENTS = "/admin/destinations/inboundevent/"
ATTEMPTS = "/admin/destinations/deliveryattempt/"
DESTINATIONS = "/admin/destinations/destination/"
DROPPED = [{"attribute": "age", "reason": "cannot be sent as number: x; dropped"}]
migration = importlib.import_module("destinations.migrations.0015_audit_indexes")


@pytest.fixture
def rows(destination):
    other = Destination.objects.create(name="Beta", slug="beta", base_url="https://b.talon.one")
    statuses = [Status.DELIVERED, Status.FAILED, Status.PENDING, Status.SKIPPED]
    events = InboundEvent.objects.bulk_create(
        InboundEvent(
            destination=destination if i % 3 else other, message_id=f"m{i}", type="identify",
            user_id=f"u{i}", payload={"traits": {"email": f"u{i}@example.com"}},
            timestamp=timezone.now(), status=statuses[i % 4], notes=DROPPED if i % 5 == 0 else [],
        )
        for i in range(40)
    )  # fmt: skip
    for i in range(12):
        attempt = DeliveryAttempt.objects.create(
            destination=destination, profile_count=1, method="PUT", url="https://a/v2",
            request_body={"big": "x" * 1000}, response_status=503, response_body="{}",
            duration_ms=3, attempt_number=1, outcome=DeliveryAttempt.Outcome.RETRY,
        )  # fmt: skip
        attempt.events.add(events[i])
    return destination, other


def assert_cheap(queries) -> None:
    for query in queries:
        sql = query["sql"].upper()
        assert "DISTINCT" not in sql, sql
        if "COUNT(" in sql:
            assert "LIMIT" in sql, f"an uncapped count: {sql}"


@pytest.mark.parametrize(
    "query",
    [
        "",
        "?status__exact=failed",
        "?type=identify",
        "?mapping_notes=dropped",
        "?mapping_notes=any",
        "?destination__id__exact={pk}",
        "?destination__id__exact={pk}&status__exact=failed",
        "?received_at__gte=2020-01-01+00%3A00%3A00%2B00%3A00",
        "?q=u7",
        "?q=u7@example.com",
        "?o=1",
    ],
)
def test_event_lists_never_count_everything_nor_scan_for_distinct_values(
    login, operator, rows, django_assert_max_num_queries, query
):
    client = login(operator)
    url = EVENTS + query.format(pk=rows[0].pk)

    with django_assert_max_num_queries(12) as captured:
        response = client.get(url)

    assert response.status_code == 200
    assert "e=1" not in response.get("Location", "")
    assert_cheap(captured.captured_queries)


def test_the_event_list_reads_no_payload(login, operator, rows, django_assert_max_num_queries):
    client = login(operator)

    with django_assert_max_num_queries(12) as captured:
        client.get(EVENTS)

    listed = [q["sql"] for q in captured.captured_queries if "inboundevent" in q["sql"]]
    assert listed
    for sql in listed:
        assert '"payload"' not in sql
        assert '"attributes"' not in sql
        # The destination's slug is joined in; loading the destination would decrypt its key.
        assert '"api_key"' not in sql


@pytest.mark.parametrize("query", ["", "?outcome__exact=retry", "?response_status=5xx", "?q=u1"])
def test_attempt_lists_are_as_cheap_and_read_no_request_body(
    login, operator, rows, django_assert_max_num_queries, query
):
    client = login(operator)

    with django_assert_max_num_queries(12) as captured:
        response = client.get(ATTEMPTS + query)

    assert response.status_code == 200
    assert_cheap(captured.captured_queries)
    assert all('"request_body"' not in q["sql"] for q in captured.captured_queries)


def test_the_destination_list_counts_with_subqueries_not_a_join(
    login, operator, rows, django_assert_max_num_queries
):
    destination, other = rows
    client = login(operator)

    with django_assert_max_num_queries(10) as captured:
        response = client.get(DESTINATIONS)

    shown = {d.slug: (d.pending_count, d.failed_count) for d in response.context["cl"].result_list}
    expected = {
        d.slug: (
            d.events.filter(status=Status.PENDING).count(),
            d.events.filter(status=Status.FAILED).count(),
        )
        for d in (destination, other)
    }
    assert shown == expected
    assert shown["acme"] != (0, 0)
    for query in captured.captured_queries:
        assert 'JOIN "destinations_inboundevent"' not in query["sql"], query["sql"]


@pytest.mark.parametrize(
    ("status", "label"), [(Status.PENDING, "pending"), (Status.FAILED, "failed")]
)
def test_the_destination_list_sorts_by_its_counts(login, operator, rows, status, label):
    client = login(operator)
    column = client.get(DESTINATIONS).context["cl"].list_display.index(label)

    counts = {d.slug: d.events.filter(status=status).count() for d in Destination.objects.all()}
    assert len(set(counts.values())) == len(counts)  # else any order would pass

    for order, descending in ((f"-{column}", True), (f"{column}", False)):
        response = client.get(DESTINATIONS, {"o": order})
        listed = [d.slug for d in response.context["cl"].result_list]
        assert listed == sorted(counts, key=counts.__getitem__, reverse=descending), order


def test_the_migration_indexes_the_same_dropped_test_as_the_filter():
    assert migration.DROPPED_JSONPATH == audit.DROPPED_JSONPATH


postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the indexes are PostgreSQL plans"
)


def plan(queryset) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        sql, params = queryset.query.sql_with_params()
        cursor.execute(f"EXPLAIN {sql}", params)
        return "\n".join(row[0] for row in cursor.fetchall())


@postgresql_only
@pytest.mark.parametrize(
    ("make", "index"),
    [
        (lambda e: audit.search_events(e, "u7"), "event_user_id"),
        (lambda e: audit.search_events(e, "u7"), "event_message_id"),
        (lambda e: audit.search_events(e, "u7@example.com"), "event_trait_email"),
        (lambda e: audit.with_dropped_values(e), "event_dropped_newest"),
        (lambda e: audit.with_notes(e), "event_with_notes_newest"),
        (lambda e: e.filter(status="failed"), "event_status_newest"),
    ],
)
def test_an_index_serves_each_filter_and_search(rows, make, index):
    queryset = make(InboundEvent.objects.order_by("-id"))[:100]

    assert index in plan(queryset)


def test_the_destination_page_does_not_count_events(login, operator, rows):
    destination, _ = rows

    with CaptureQueriesContext(connection) as captured:
        response = login(operator).get(f"{DESTINATIONS}{destination.pk}/change/")

    assert response.status_code == 200
    assert not [q for q in captured.captured_queries if "pending_count" in q["sql"]]
