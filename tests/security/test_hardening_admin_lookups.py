"""Issue #10, item 4: Marketers recovered the hidden base URL through list filters.

The admin lets any lookup on a model field through the querystring, so
`?base_url__startswith=https://a` on destinations (or `?url__startswith=` on
attempts) answered yes or no, one character at a time. Marketers now filter and
search only on fields they see; every list filter they are offered still works.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.utils import timezone

from destinations.admin import DeliveryAttemptAdmin
from destinations.models import DeliveryAttempt, Destination, InboundEvent
from tests.security.conftest import API_KEY, BASE_URL, SECRET

pytestmark = pytest.mark.django_db

DESTINATIONS = "/admin/destinations/destination/"
EVENTS = "/admin/destinations/inboundevent/"
ATTEMPTS = "/admin/destinations/deliveryattempt/"
HISTORY = "/admin/admin/logentry/"


@pytest.fixture
def audit_rows(destination):
    # A second destination: the admin offers a destination filter only when there is a choice.
    Destination.objects.create(
        name="Beta", slug="beta", base_url=BASE_URL, api_key=API_KEY, shared_secret=SECRET
    )
    event = InboundEvent.objects.create(
        destination=destination,
        message_id="m-1",
        type="identify",
        kind=InboundEvent.Kind.PROFILE,
        user_id="user-1",
        payload={"type": "identify", "userId": "user-1"},
        timestamp=timezone.now(),
        attributes={"plan": "gold"},
        status=InboundEvent.Status.FAILED,
        reason="Talon.One answered 400",
    )
    attempt = DeliveryAttempt.objects.create(
        destination=destination,
        integration_id="user-1",
        profile_count=1,
        method="PUT",
        url=f"{BASE_URL}/v2/customer_profiles?silent=yes",
        request_body={"customerProfiles": []},
        response_status=400,
        duration_ms=12,
        attempt_number=1,
        outcome=DeliveryAttempt.Outcome.FAILED,
    )
    attempt.events.add(event)
    return event, attempt


def filter_links(client, url):
    """Every choice of every list filter the page offers, as a querystring."""
    response = client.get(url)
    assert response.status_code == 200
    changelist = response.context["cl"]
    links = [
        choice["query_string"]
        for spec in changelist.filter_specs
        for choice in spec.choices(changelist)
    ]
    return [spec.title for spec in changelist.filter_specs], links


@pytest.mark.parametrize(
    ("url", "filters"),
    [
        (DESTINATIONS, ["enabled"]),
        (EVENTS, ["status", "mapping notes", "type", "destination", "received at"]),
        (ATTEMPTS, ["outcome", "Talon.One answered", "destination", "created at"]),
    ],
)
def test_every_list_filter_works_for_a_marketer(login, marketer, audit_rows, url, filters):
    client = login(marketer)
    titles, links = filter_links(client, url)

    assert titles == filters
    for query in links:
        response = client.get(url + query)
        assert response.status_code == 200, query
        assert "e=1" not in response.get("Location", "")
    assert (
        client.get(url + "?q=acme" if url == DESTINATIONS else url + "?q=user-1").status_code == 200
    )


def test_every_history_filter_works_for_an_operator_and_marketers_have_no_history_list(
    login, operator, marketer, audit_rows
):
    client = login(operator)
    _titles, links = filter_links(client, HISTORY)
    for query in links:
        assert client.get(HISTORY + query).status_code == 200, query

    client = login(marketer)
    assert client.get(HISTORY).status_code == 403
    assert client.get(HISTORY + "?change_message__contains=base_url").status_code == 403


HIDDEN_LOOKUPS = [
    (DESTINATIONS, f"base_url__startswith={BASE_URL[:12]}"),
    (DESTINATIONS, "base_url__contains=talon"),
    (DESTINATIONS, "api_key__isnull=False"),
    (DESTINATIONS, "shared_secret__exact="),
    (DESTINATIONS, "previous_shared_secret__exact="),
    (DESTINATIONS, "previous_secret_expires_at__isnull=True"),
    (DESTINATIONS, "accept_unsigned__exact=1"),
    (ATTEMPTS, f"url__startswith={BASE_URL[:12]}"),
    (ATTEMPTS, "url__regex=^https"),
]


@pytest.mark.parametrize(("url", "query"), HIDDEN_LOOKUPS)
def test_a_marketer_cannot_filter_on_what_they_cannot_see(
    login, marketer, operator, audit_rows, url, query
):
    assert login(operator).get(f"{url}?{query}").status_code == 200  # a lookup Django allows
    response = login(marketer).get(f"{url}?{query}")

    assert response.status_code == 400  # as Django answers a disallowed lookup


@pytest.mark.parametrize(
    ("url", "query"),
    [
        (EVENTS, f"destination__base_url__startswith={BASE_URL[:12]}"),
        (ATTEMPTS, f"destination__base_url__startswith={BASE_URL[:12]}"),
        (EVENTS, "delivery_attempts__url__startswith=https"),
        (DESTINATIONS, "no_such_field=1"),
    ],
)
def test_related_and_unknown_lookups_are_refused_for_marketers(
    login, marketer, audit_rows, url, query
):
    response = login(marketer).get(f"{url}?{query}")

    assert response.status_code == 400


def test_the_links_between_events_and_attempts_still_work_for_marketers(
    login, marketer, audit_rows
):
    event, attempt = audit_rows
    client = login(marketer)

    attempts = client.get(f"{ATTEMPTS}?events__id__exact={event.pk}")
    events = client.get(f"{EVENTS}?delivery_attempts__id__exact={attempt.pk}")
    failed = client.get(
        f"{EVENTS}?destination__id__exact={event.destination_id}&status__exact=failed"
    )

    assert [a.pk for a in attempts.context["cl"].result_list] == [attempt.pk]
    assert [e.pk for e in events.context["cl"].result_list] == [event.pk]
    assert [e.pk for e in failed.context["cl"].result_list] == [event.pk]


def test_a_search_field_or_list_filter_on_a_hidden_field_is_dropped_for_marketers(
    rf, marketer, operator
):
    """None of today's lists searches or filters on a hidden field; one that did
    would not offer it to Marketers."""

    class AttemptsByUrl(DeliveryAttemptAdmin):
        search_fields = ["integration_id", "=url", "destination__name"]
        list_filter = ["outcome", ("url", admin.AllValuesFieldListFilter), "destination"]

    model_admin = AttemptsByUrl(DeliveryAttempt, admin.site)
    request = rf.get(ATTEMPTS)

    request.user = marketer
    assert model_admin.get_search_fields(request) == ["integration_id", "destination__name"]
    assert model_admin.get_list_filter(request) == ["outcome", "destination"]
    request.user = operator
    assert model_admin.get_search_fields(request) == AttemptsByUrl.search_fields
    assert model_admin.get_list_filter(request) == AttemptsByUrl.list_filter
