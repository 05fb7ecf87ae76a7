"""The audit log's pages as people use them: what the event list marks and
filters, the notes table, search, the Redeliver button and the CSV export."""

import csv
import io

import pytest
from django.test import Client
from django.utils import timezone

from destinations.admin import display
from destinations.models import DeliveryAttempt, Destination, InboundEvent
from destinations.selectors import audit
from destinations.services import mapping
from destinations.services.ingest import FUTURE_NOTE
from tests.security.conftest import API_KEY, BASE_URL

pytestmark = pytest.mark.django_db

Status = InboundEvent.Status
LIST_URL = "/admin/destinations/inboundevent/"
EXPORT_URL = "/admin/destinations/inboundevent/export/"
DROPPED_NOTE = {"attribute": "age", "reason": "cannot be sent as number: not a number; dropped"}
UNLISTED_NOTE = {"attribute": "shoe_size", "reason": mapping.NOT_LISTED}


def event(destination: Destination, message_id: str, **fields) -> InboundEvent:
    values = {
        "type": "identify",
        "kind": InboundEvent.Kind.PROFILE,
        "user_id": "u-" + message_id,
        "payload": {"traits": {"email": f"{message_id}@example.com", "age": "old"}},
        "timestamp": timezone.now(),
        "attributes": {"email": f"{message_id}@example.com"},
        "status": Status.DELIVERED,
    }
    values.update(fields)
    return InboundEvent.objects.create(destination=destination, message_id=message_id, **values)


def listed(response) -> set[str]:
    return {row.message_id for row in response.context["cl"].result_list}


def test_a_partial_delivery_carries_a_dropped_marker_in_the_list(login, operator, destination):
    event(destination, "partial", notes=[DROPPED_NOTE, UNLISTED_NOTE])
    event(destination, "clean", notes=[UNLISTED_NOTE])

    page = login(operator).get(LIST_URL).content.decode()

    assert page.count('class="audit-dropped-mark"') == 1
    assert ">dropped 1</span>" in page


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ("dropped", {"partial"}),
        ("any", {"partial", "unlisted"}),
        ("", {"partial", "unlisted", "clean"}),
    ],
)
def test_the_notes_filter_finds_partial_deliveries(login, operator, destination, choice, expected):
    event(destination, "partial", notes=[UNLISTED_NOTE, DROPPED_NOTE])
    event(destination, "unlisted", notes=[UNLISTED_NOTE])
    event(destination, "clean")

    response = login(operator).get(LIST_URL, {"mapping_notes": choice} if choice else {})

    assert listed(response) == expected


REASONS_KEPT = [
    mapping.NOT_LISTED,
    mapping.NOT_LISTED_CASE.format(row="Email"),
    mapping.NOT_LISTED_INVALID_NAME.format(error="x"),
    mapping.ENGAGE_OFF,
    mapping.NULL_SKIPPED,
    mapping.ASSUMED_UTC,
    mapping.AUDIENCE_AS_MEMBERSHIP,
    FUTURE_NOTE["reason"],
    "scrubbed 2026-01-01T00:00:00+00:00: the customer's data was deleted",
]
REASONS_DROPPED = [
    mapping.CANNOT_BE.format(type="number", detail=mapping.NOT_A_NUMBER),
    mapping.INVALID_NAME.format(error="x"),
    mapping.ENGAGE_UNTYPED,
    mapping.TOO_DEEP,
    'refused by Talon.One (create it there, or stop forwarding it): "it\'s unknown"',
]


def test_the_database_and_the_list_agree_on_what_was_dropped(destination):
    for i, reason in enumerate(REASONS_KEPT + REASONS_DROPPED):
        event(destination, f"m{i}", notes=[{"attribute": "a", "reason": reason}])

    found = audit.with_dropped_values(InboundEvent.objects.all())

    expected = {f"m{i}" for i in range(len(REASONS_KEPT), len(REASONS_KEPT + REASONS_DROPPED))}
    assert set(found.values_list("message_id", flat=True)) == expected
    assert {e.message_id for e in InboundEvent.objects.all() if audit.dropped_notes(e.notes)} == (
        expected
    )


def test_the_event_page_shows_the_notes_as_a_table_with_the_values(login, marketer, destination):
    shown = event(
        destination,
        "m1",
        payload={"traits": {"age": "old", "address": {"zip": 'a "b"'}}},
        notes=[DROPPED_NOTE, {"attribute": "address_zip", "reason": mapping.NOT_LISTED}],
    )

    page = login(marketer).get(f"{LIST_URL}{shown.pk}/change/").content.decode()

    assert '<table class="audit-notes">' in page
    assert (
        '<tr class="audit-dropped"><td>age</td><td><code>&quot;old&quot;</code></td>'
        "<td>cannot be sent as number: not a number; dropped</td></tr>"
    ) in page
    assert "<td>address_zip</td><td><code>&quot;a \\&quot;b\\&quot;&quot;</code></td>" in page


def test_an_event_without_notes_says_so(login, operator, destination):
    shown = event(destination, "m1")

    page = login(operator).get(f"{LIST_URL}{shown.pk}/change/").content.decode()

    assert "None: everything listed was sent as received." in page


@pytest.mark.parametrize(
    ("status", "label"),
    [
        (Status.DELIVERED, "✓ delivered"),
        (Status.FAILED, "✗ failed"),
        (Status.PENDING, "… pending"),
        (Status.SKIPPED, "○ skipped"),
    ],
)
def test_the_status_is_in_words_with_its_colour(login, operator, destination, status, label):
    event(destination, "m1", status=status)

    page = login(operator).get(LIST_URL).content.decode()

    assert f'<span class="audit-status audit-status-{status}">{label}</span>' in page


def test_the_list_shows_message_and_request_ids_cut_with_the_whole_on_hover(
    login, operator, destination
):
    long_id = "message-" + "x" * 40
    event(destination, long_id, request_id="8d2b6e0f-31c5-4a9d-b4f9-a1c7e4f9a1c7")

    page = login(operator).get(LIST_URL).content.decode()

    assert f'<span title="{long_id}">{long_id[:17]}…</span>' in page
    assert '<span title="8d2b6e0f-31c5-4a9d-b4f9-a1c7e4f9a1c7">8d2b6e0…</span>' in page


@pytest.mark.parametrize(
    ("term", "expected"),
    [
        ("u-m1", {"m1"}),
        ("m2", {"m2"}),
        ("m3@example.com", {"m3"}),
        ("  m3@example.com ", {"m3"}),
        ("example.com", set()),  # exact matches only
        ("U-M1", set()),
    ],
)
def test_search_matches_user_id_message_id_or_email_exactly(
    login, marketer, destination, term, expected
):
    for message_id in ("m1", "m2", "m3"):
        event(destination, message_id)

    response = login(marketer).get(LIST_URL, {"q": term})

    assert listed(response) == expected


def test_the_search_box_says_what_it_matches(login, operator):
    page = login(operator).get(LIST_URL).content.decode()

    assert 'id="searchbar"' in page
    assert "Exact userId, messageId or email" in page


def test_the_list_says_more_than_when_it_stops_counting(login, operator, destination, monkeypatch):
    monkeypatch.setattr(display, "COUNT_CAP", 3)
    for i in range(5):
        event(destination, f"m{i}")

    page = login(operator).get(LIST_URL).content.decode()

    assert "more than 3 inbound events (not counted further)" in page


def test_a_list_below_the_cap_shows_its_count(login, operator, destination):
    for i in range(3):
        event(destination, f"m{i}")

    page = login(operator).get(LIST_URL).content.decode()

    assert "3 inbound events" in page
    assert "more than" not in page


# Redeliver from the event page.


def redeliver_url(shown: InboundEvent) -> str:
    return f"{LIST_URL}{shown.pk}/redeliver/"


def test_operators_see_a_redeliver_button_posting_with_csrf(login, operator, destination):
    failed = event(destination, "m1", status=Status.FAILED, reason="Talon.One answered 400")

    page = login(operator).get(f"{LIST_URL}{failed.pk}/change/").content.decode()

    form = page[page.index(f'action="{redeliver_url(failed)}"') :]
    assert form.index('name="csrfmiddlewaretoken"') < form.index(
        '<button type="submit">Redeliver</button>'
    )


def test_the_button_queues_the_event_again(
    login, operator, destination, no_broker, django_capture_on_commit_callbacks
):
    failed = event(destination, "m1", status=Status.FAILED, reason="Talon.One answered 400")

    with django_capture_on_commit_callbacks(execute=True):
        response = login(operator).post(redeliver_url(failed), follow=True)

    failed.refresh_from_db()
    assert (failed.status, failed.reason) == (Status.PENDING, "redelivery requested")
    assert no_broker == [destination.pk]
    assert response.redirect_chain == [(f"{LIST_URL}{failed.pk}/change/", 302)]
    assert "Queued for redelivery." in response.content.decode()


def test_a_pending_event_is_not_queued_twice(login, operator, destination, no_broker):
    pending = event(destination, "m1", status=Status.PENDING)

    response = login(operator).post(redeliver_url(pending), follow=True)

    assert "Not queued: it is pending already" in response.content.decode()
    assert no_broker == []


def test_marketers_see_no_button_and_may_not_post(login, marketer, destination, no_broker):
    failed = event(destination, "m1", status=Status.FAILED)
    client = login(marketer)

    page = client.get(f"{LIST_URL}{failed.pk}/change/").content.decode()
    response = client.post(redeliver_url(failed))

    assert ">Redeliver</button>" not in page
    assert response.status_code == 403
    failed.refresh_from_db()
    assert failed.status == Status.FAILED


def test_redeliver_is_a_post_only(login, operator, destination):
    failed = event(destination, "m1", status=Status.FAILED)

    assert login(operator).get(redeliver_url(failed)).status_code == 405


def test_redelivering_an_unknown_event_is_not_found(login, operator):
    assert login(operator).post(f"{LIST_URL}999999/redeliver/").status_code == 404


def test_the_button_needs_the_csrf_token(operator, destination):
    failed = event(destination, "m1", status=Status.FAILED)
    client = Client(enforce_csrf_checks=True)
    client.force_login(operator)

    assert client.post(redeliver_url(failed)).status_code == 403


# CSV export.


def exported(client: Client, params: dict | None = None) -> list[dict[str, str]]:
    response = client.get(EXPORT_URL, params or {})
    assert response.status_code == 200
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="inbound-events-')
    assert response.streaming
    text = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(text)))


def test_the_list_links_to_its_export_with_the_same_filters(login, operator):
    page = login(operator).get(LIST_URL, {"status__exact": "failed", "q": "u1"}).content.decode()

    assert (
        f'<a href="{EXPORT_URL}?q=u1&amp;status__exact=failed" class="viewlink">Export CSV</a>'
        in (page)
    )


def test_the_export_holds_the_filtered_and_searched_events(login, operator, destination):
    event(
        destination,
        "m1",
        status=Status.FAILED,
        reason="Talon.One answered 400: bad",
        notes=[DROPPED_NOTE],
    )
    event(destination, "m2", status=Status.FAILED, user_id="u-other")
    event(destination, "m3", status=Status.DELIVERED)

    rows = exported(login(operator), {"status__exact": "failed", "q": "u-m1"})

    assert [(r["message_id"], r["user_id"], r["status"]) for r in rows] == [
        ("m1", "u-m1", "failed")
    ]
    assert rows[0]["reason"] == "Talon.One answered 400: bad"
    assert rows[0]["dropped"] == "1"
    assert rows[0]["notes"] == "age: cannot be sent as number: not a number; dropped"
    assert rows[0]["destination"] == "acme"


def test_the_export_holds_every_event_of_a_long_list(login, operator, destination):
    InboundEvent.objects.bulk_create(
        InboundEvent(
            destination=destination, message_id=f"m{i}", type="identify", user_id=f"u{i}",
            payload={}, timestamp=timezone.now(), status=Status.DELIVERED,
        )
        for i in range(2500)
    )  # fmt: skip

    rows = exported(login(operator))

    assert len(rows) == 2500
    assert rows[0]["message_id"] == "m2499"  # newest first, as listed


def test_a_spreadsheet_does_not_run_a_user_id_as_a_formula(login, operator, destination):
    event(destination, "m1", user_id='=HYPERLINK("http://evil")')

    rows = exported(login(operator))

    assert rows[0]["user_id"] == '\'=HYPERLINK("http://evil")'


def test_marketers_export_too_and_never_get_a_url_or_key(login, marketer, destination):
    event(destination, "m1", status=Status.FAILED, reason="Talon.One answered 401: unauthorized")

    response = login(marketer).get(EXPORT_URL)
    text = b"".join(response.streaming_content).decode()

    assert response.status_code == 200
    assert "m1" in text
    for secret in (API_KEY, BASE_URL, "talon.one/"):
        assert secret not in text


def test_an_unknown_filter_is_refused(login, operator):
    assert login(operator).get(EXPORT_URL, {"no_such_field": "x"}).status_code == 400


def test_people_without_the_audit_log_get_no_export(login, make_user, destination):
    nobody = make_user("nobody")

    assert login(nobody).get(EXPORT_URL).status_code == 403


def test_the_notes_table_finds_values_in_context_traits_and_properties(
    login, operator, destination
):
    shown = event(
        destination,
        "m1",
        type="track",
        payload={"properties": {"total": "12,5"}, "context": {"traits": {"tier": [1, {}]}}},
        notes=[
            {"attribute": "total", "reason": "cannot be sent as number: x; dropped"},
            {"attribute": "tier", "reason": mapping.NOT_LISTED},
            "not a note",
        ],
    )

    page = login(operator).get(f"{LIST_URL}{shown.pk}/change/").content.decode()

    assert "<td>total</td><td><code>&quot;12,5&quot;</code></td>" in page
    assert "<td>tier</td><td><code>[1, {}]</code></td>" in page
    assert "not a note" not in page


def test_a_note_for_a_value_not_in_the_payload_shows_a_dash(login, operator, destination):
    shown = event(destination, "m1", payload=["not", "an", "object"], notes=[DROPPED_NOTE])

    page = login(operator).get(f"{LIST_URL}{shown.pk}/change/").content.decode()

    assert "<td>age</td><td><code>—</code></td>" in page


# The attempt list and page.

ATTEMPTS_URL = "/admin/destinations/deliveryattempt/"


def attempt(destination: Destination, status: int | None, **fields) -> DeliveryAttempt:
    values = {
        "profile_count": 1, "method": "PUT", "url": f"{BASE_URL}/v2/customer_profiles/u1",
        "request_body": {"attributes": {"plan": "gold"}}, "response_status": status,
        "duration_ms": 5, "attempt_number": 1, "outcome": DeliveryAttempt.Outcome.FAILED,
    }  # fmt: skip
    values.update(fields)
    return DeliveryAttempt.objects.create(destination=destination, **values)


@pytest.mark.parametrize(
    ("choice", "expected"), [("2xx", [204]), ("4xx", [401]), ("5xx", [503]), ("none", [None])]
)
def test_attempts_filter_by_the_class_of_answer(login, operator, destination, choice, expected):
    for status in (204, 401, 503, None):
        attempt(destination, status, error="" if status else "Could not connect to Talon.One")

    response = login(operator).get(ATTEMPTS_URL, {"response_status": choice})

    assert [a.response_status for a in response.context["cl"].result_list] == expected


def test_an_attempts_page_shows_the_body_and_links_to_its_events(login, marketer, destination):
    sent = attempt(destination, 401, error="Talon.One answered 401: unauthorized")
    sent.events.add(event(destination, "m1"))

    page = login(marketer).get(f"{ATTEMPTS_URL}{sent.pk}/change/").content.decode()

    assert "&quot;plan&quot;: &quot;gold&quot;" in page
    assert f"{LIST_URL}?delivery_attempts__id__exact={sent.pk}" in page
    assert "Talon.One answered 401: unauthorized" in page
    assert BASE_URL not in page


def test_the_attempt_list_exports_its_filtered_rows_with_paths_only(login, marketer, destination):
    attempt(destination, 503, error="Talon.One answered 503: down", task_id="t-1")
    attempt(destination, 204, outcome=DeliveryAttempt.Outcome.SUCCESS)
    client = login(marketer)

    page = client.get(ATTEMPTS_URL, {"response_status": "5xx"}).content.decode()
    response = client.get(f"{ATTEMPTS_URL}export/", {"response_status": "5xx"})
    text = b"".join(response.streaming_content).decode()

    assert (
        f'href="{ATTEMPTS_URL}export/?response_status=5xx" class="viewlink">Export CSV</a>' in page
    )
    assert response["Content-Disposition"].startswith('attachment; filename="delivery-attempts-')
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [(r["response_status"], r["error"], r["path"], r["task_id"]) for r in rows] == [
        ("503", "Talon.One answered 503: down", "/v2/customer_profiles/u1", "t-1")
    ]
    for secret in (API_KEY, BASE_URL, "talon.one/"):
        assert secret not in text
