"""Ingest stores a request's rows in one statement of its own on PostgreSQL, and
with Django's bulk insert on any other database (SQLite: `make run`, `make test`).
Both must store, remember and count alike; the portable one is run on whatever
database the suite has, so a PostgreSQL run checks it too."""

import json
from datetime import timedelta
from types import SimpleNamespace

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from destinations.models import InboundEvent, SeenMessage
from destinations.services import ingest
from tests.conftest import audience_identify, identify

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("no_broker")]

Status = InboundEvent.Status


@pytest.fixture(params=["postgresql", "portable"])
def insert_path(request, monkeypatch):
    if request.param == "postgresql" and connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's own insert needs PostgreSQL")
    if request.param == "portable":
        monkeypatch.setattr(ingest, "connection", SimpleNamespace(vendor="portable"))
    return request.param


@pytest.fixture
def destination(make_destination, insert_path):
    return make_destination(attributes=["email"], engage_audiences="both")


def membership(message_id: str) -> dict:
    return audience_identify("u1", message_id, "vip", traits={"email": "a@x.io"})


def seen() -> set[str]:
    return set(SeenMessage.objects.values_list("message_id", flat=True))


def test_a_batch_is_stored_once_per_message_and_counted(destination, post_events):
    batch = [identify(message_id="a"), identify(message_id="a"), {**identify(), "type": "page"}]

    response = post_events("acme", [*batch, None])

    assert response.json() == {"accepted": 1, "skipped": 2, "duplicates": 1}
    rows = {row.type: row for row in InboundEvent.objects.all()}
    assert set(rows) == {"identify", "page", "invalid"}
    assert (rows["identify"].message_id, rows["identify"].status) == ("a", Status.PENDING)
    assert (rows["page"].message_id, rows["page"].status) == ("m-1", Status.SKIPPED)
    # Queued now: due at once. Skipped rows are never due.
    queued = rows["identify"]
    assert queued.queued_at == queued.next_attempt_at
    assert abs(queued.queued_at - queued.received_at) < timedelta(seconds=5)
    assert (rows["page"].queued_at, rows["page"].next_attempt_at) == (None, None)
    assert rows["invalid"].payload is None  # JSON null: the event as received
    assert seen() == {row.message_id for row in rows.values()}
    remembered = SeenMessage.objects.get(message_id="a")
    assert (remembered.destination_id, remembered.first_seen_at) == (
        destination.pk,
        rows["identify"].received_at,
    )


def test_a_single_event_is_stored_and_remembered(destination, post_events):
    response = post_events("acme", identify(message_id="a"))

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert list(InboundEvent.objects.values_list("message_id", flat=True)) == ["a"]
    assert seen() == {"a"}


def test_a_message_seen_before_is_a_duplicate_once_its_row_is_purged(destination, post_events):
    post_events("acme", [identify(message_id="a"), membership("b")])
    InboundEvent.objects.all().delete()

    again = post_events("acme", [identify(message_id="a"), membership("b")])

    assert again.json() == {"accepted": 0, "skipped": 0, "duplicates": 2}
    assert not InboundEvent.objects.exists()


def test_a_membership_row_is_stored_but_remembered_as_its_event(destination, post_events):
    response = post_events("acme", membership("b"))

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert set(InboundEvent.objects.values_list("message_id", flat=True)) == {"b", "b#audience"}
    assert seen() == {"b"}


def test_messages_another_destination_saw_are_new_here(destination, make_destination, post_events):
    make_destination("other")
    post_events("other", identify(message_id="a"))

    response = post_events("acme", identify(message_id="a"))

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 0}
    assert InboundEvent.objects.filter(destination=destination, message_id="a").exists()


def competitors_row(destination) -> InboundEvent:
    """Message "a"'s row, as another request stores it."""
    return InboundEvent.objects.create(
        destination=destination,
        message_id="a",
        type="identify",
        user_id="u1",
        payload={},
        timestamp=timezone.now(),
        status=Status.PENDING,
    )


def test_a_row_another_request_stored_first_is_its_own(destination, post_events, monkeypatch):
    """A row of "a" is there, but "a" is not remembered (a row stored before
    messages were remembered, or one whose request has not remembered it yet):
    this one neither stores nor counts it, and remembers it."""
    real_insert = ingest._insert

    def competitor_first(*args):
        competitors_row(destination)
        return real_insert(*args)

    monkeypatch.setattr(ingest, "_insert", competitor_first)

    response = post_events("acme", [identify(message_id="a"), identify(message_id="b")])

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}
    assert InboundEvent.objects.get(message_id="a").payload == {}
    assert seen() == {"a", "b"}


def test_a_message_another_request_stored_after_this_one_looked_is_its_own(
    make_destination, post_events, monkeypatch
):
    """The portable insert looks for seen messages, then inserts: a request storing
    and remembering "a" in between makes both of this one's inserts meet "a" (not
    an error). PostgreSQL's statement settles the race in its ON CONFLICT."""
    monkeypatch.setattr(ingest, "connection", SimpleNamespace(vendor="portable"))
    destination = make_destination()
    bulk_create = InboundEvent.objects.bulk_create

    def competitor_in_between(rows, **options):
        competitor = competitors_row(destination)
        SeenMessage.objects.create(
            destination=destination, message_id="a", first_seen_at=competitor.received_at
        )
        return bulk_create(rows, **options)

    monkeypatch.setattr(InboundEvent.objects, "bulk_create", competitor_in_between)

    response = post_events("acme", [identify(message_id="a"), identify(message_id="b")])

    assert response.json() == {"accepted": 1, "skipped": 0, "duplicates": 1}
    assert InboundEvent.objects.get(message_id="a").payload == {}
    assert seen() == {"a", "b"}


def test_plan_makes_the_rows_ingest_stores(destination):
    """The admin's preview and the backfill's dry run show plan()'s rows: they are
    what ingest stores, with the request's destination, id and time."""
    batch = [
        identify(message_id="a"),
        membership("b"),
        {**identify(message_id="c"), "type": "page"},
    ]
    events = ingest.parse_events(json.dumps(batch).encode())
    before = timezone.now()

    planned = ingest.plan(destination, events)
    ingest.ingest(destination, events)

    stored = {row.message_id: row for row in InboundEvent.objects.all()}
    fields = ["destination_id", "type", "user_id", "payload", "timestamp", "kind", "attributes"]
    fields += ["call", "notes", "status", "reason"]
    assert sorted(row.message_id for row in planned) == sorted(stored)
    for row in planned:
        assert [getattr(row, f) for f in fields] == [
            getattr(stored[row.message_id], f) for f in fields
        ]
    assert len({row.request_id for row in planned}) == 1
    assert planned[0].request_id is not None
    now = planned[0].received_at
    assert before <= now <= timezone.now()
    for row in planned:
        queued = now if row.status == Status.PENDING else None
        assert (row.received_at, row.queued_at, row.next_attempt_at) == (now, queued, queued)


def test_postgresql_stores_and_remembers_a_batch_in_one_statement(make_destination):
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's own insert needs PostgreSQL")
    destination = make_destination()
    batch = [identify(message_id=f"m{i}") for i in range(100)]
    events = ingest.parse_events(json.dumps(batch).encode())

    with CaptureQueriesContext(connection) as queries:
        summary = ingest.ingest(destination, events)

    assert summary.accepted == 100
    assert len([q for q in queries if "INSERT INTO" in q["sql"]]) == 1
    assert len(seen()) == 100


def test_postgresql_reads_no_message_seen_before(make_destination):
    # ON CONFLICT finds them by the unique index. A query of the seen messages would
    # be planned by the table's statistics: on a table grown since its last ANALYZE
    # (any burst), a join reads every message the destination has seen, per request.
    if connection.vendor != "postgresql":
        pytest.skip("PostgreSQL's own insert needs PostgreSQL")
    destination = make_destination()
    SeenMessage.objects.bulk_create(
        SeenMessage(destination=destination, message_id=f"old-{i}", first_seen_at=timezone.now())
        for i in range(500)
    )
    statements = []

    def keep(execute, sql, params, many, context):
        statements.append((sql, params))
        return execute(sql, params, many, context)

    events = ingest.parse_events(json.dumps(identify(message_id="new")).encode())
    with connection.execute_wrapper(keep):
        ingest.ingest(destination, events)
    [(sql, params)] = [(sql, params) for sql, params in statements if "INSERT INTO" in sql]
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN " + sql, params)
        plan = [line for (line,) in cursor.fetchall()]

    assert any("Insert on destinations_seenmessage" in line for line in plan)
    assert [line for line in plan if "Scan" in line and "seenmessage" in line] == []
