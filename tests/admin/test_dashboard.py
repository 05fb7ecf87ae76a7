"""The admin index's dashboard: events received per hour and per day by their
status now, and the oldest pending event's age, for known events at known times."""

from datetime import UTC, datetime, timedelta

import pytest

from destinations.admin.dashboard import _duration, dashboard
from destinations.models import Destination, InboundEvent
from destinations.selectors import dashboard as counts
from destinations.selectors.dashboard import activity

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 10, 14, 30, tzinfo=UTC)
Status = InboundEvent.Status


def received(destination, status, when, count=1):
    for _ in range(count):
        event = InboundEvent.objects.create(
            destination=destination,
            message_id=f"m-{InboundEvent.objects.count()}",
            type="identify",
            user_id="u1",
            payload={},
            timestamp=when,
            status=status,
        )
        # received_at is set on insert (auto_now_add): put it where the test needs it.
        InboundEvent.objects.filter(pk=event.pk).update(received_at=when)


@pytest.fixture
def destinations():
    shop = Destination.objects.create(name="Shop", slug="shop", base_url="https://x.talon.one",
                                      api_key="k" * 20)  # fmt: skip
    quiet = Destination.objects.create(name="Quiet", slug="quiet", base_url="https://x.talon.one",
                                       api_key="k" * 20)  # fmt: skip
    received(shop, Status.DELIVERED, NOW.replace(minute=10), count=2)  # this hour
    received(shop, Status.FAILED, NOW.replace(hour=13, minute=5))  # the hour before
    received(shop, Status.PENDING, NOW.replace(hour=12, minute=0))  # 2 h 30 min old
    received(shop, Status.DELIVERED, datetime(2026, 3, 9, 15, 0, tzinfo=UTC))  # first hour
    received(shop, Status.SKIPPED, datetime(2026, 3, 9, 14, 59, tzinfo=UTC))  # before it
    received(shop, Status.SKIPPED, datetime(2026, 3, 4, 0, 0, tzinfo=UTC))  # first day
    received(shop, Status.DELIVERED, datetime(2026, 3, 3, 23, 59, tzinfo=UTC))  # too old
    return shop, quiet


def test_counts_per_hour_and_day_by_status(destinations, django_assert_max_num_queries):
    with django_assert_max_num_queries(3):
        quiet, shop = activity(NOW)  # by name

    assert shop.hours[0].start == datetime(2026, 3, 9, 15, tzinfo=UTC)
    assert shop.hours[-1].start == datetime(2026, 3, 10, 14, tzinfo=UTC)
    assert shop.hours[-1].counts == {"delivered": 2, "skipped": 0, "failed": 0, "pending": 0}
    assert shop.hours[-2].counts["failed"] == 1
    assert shop.hours[-3].counts["pending"] == 1
    assert shop.hours[0].counts["delivered"] == 1
    assert shop.hours_total.counts == {"delivered": 3, "skipped": 0, "failed": 1, "pending": 1}
    assert shop.hours_total.received == 5

    assert [d.start.day for d in shop.days] == [4, 5, 6, 7, 8, 9, 10]
    assert shop.days[-1].counts == {"delivered": 2, "skipped": 0, "failed": 1, "pending": 1}
    assert shop.days[-2].counts == {"delivered": 1, "skipped": 1, "failed": 0, "pending": 0}
    assert shop.days[0].counts["skipped"] == 1
    assert shop.days_total.received == 7
    assert shop.oldest_pending == timedelta(hours=2, minutes=30)

    assert quiet.hours_total.received == quiet.days_total.received == 0
    assert quiet.oldest_pending is None


def test_the_charts_say_their_numbers_in_text(destinations):
    html = dashboard(activity(NOW), NOW)
    assert "by their status at 14:30:00 UTC (counted at most once a minute)" in html

    assert "<h3>Shop</h3>" in html
    assert "<h3>Quiet</h3>" in html
    assert (
        "<strong>Last 24 hours</strong>: received 5; delivered 3, skipped 0, failed 1, pending 1"
        in html
    )
    assert (
        "<strong>Last 7 days</strong>: received 7; delivered 3, skipped 2, failed 1, pending 1"
        in html
    )
    assert "<title>14:00: received 2 (delivered 2, skipped 0, failed 0, pending 0)</title>" in html
    assert "<title>Tue 10: received 4 (delivered 2, skipped 0, failed 1, pending 1)</title>" in html
    assert "Oldest pending event: <strong>2 h 30 min</strong> old" in html
    assert "Oldest pending event: none waiting" in html
    assert "<script" not in html
    assert "http" not in html.replace("http://www.w3.org", "")


def test_bars_are_scaled_to_the_busiest_bucket(destinations):
    html = dashboard(activity(NOW), NOW)

    # The busiest hour (2 delivered) fills the 110 px; the one failed event, half of it.
    assert 'height="110" fill="#2e7d32"' in html
    assert 'height="55" fill="#c62828"' in html


def test_no_destinations_no_charts(db):
    assert dashboard(activity(NOW), NOW) == "<p>No destinations yet.</p>"


@pytest.mark.parametrize(
    ("age", "shown"),
    [
        (timedelta(seconds=-3), "0 s"),
        (timedelta(seconds=119), "119 s"),
        (timedelta(minutes=119), "119 min"),
        (timedelta(hours=47, minutes=59), "47 h 59 min"),
        (timedelta(days=3, hours=4), "3 days 4 h"),
    ],
)
def test_ages_read_in_a_unit_that_fits(age, shown):
    assert _duration(age) == shown


def test_the_index_counts_at_most_once_a_minute(
    destinations, monkeypatch, django_assert_num_queries, django_assert_max_num_queries
):
    with monkeypatch.context() as patched:
        patched.setattr(counts, "CACHE_SECONDS", 0)  # Django's timeout 0: not kept
        counts.recent_activity()
        with django_assert_max_num_queries(3) as queries:
            counts.recent_activity()
        assert len(queries) == 3
    counted_at, first = counts.recent_activity()
    with django_assert_num_queries(0):
        assert counts.recent_activity() == (counted_at, first)


def test_the_index_says_when_it_counted(admin_client, destinations):
    html = admin_client.get("/admin/").content.decode()
    assert "counted at most once a minute" in html
