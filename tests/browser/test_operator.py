"""An operator in a real browser: a wrong API key found with the connection
test and fixed, a failed delivery found by userId and redelivered from its
page, and the audit log exported as CSV; the dashboard, the customer view and
the audit lists as they read at 1280 px."""

from __future__ import annotations

import csv
import io
import re

import pytest
from playwright.sync_api import Locator, Page, expect

from destinations.models import Destination, InboundEvent
from tests.browser.conftest import Stack, screenshot
from tests.conftest import API_KEY, identify
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

Status = InboundEvent.Status
WRONG_KEY = "expired-integration-key"
GRACE = identify(
    "grace-42",
    "m-grace",
    traits={"email": "grace@example.com", "plan": "platinum", "age": "eighty-five"},
)


# How far the page, or the widest list in it, would scroll sideways (px).
SIDEWAYS = """() => Math.max(
    ...[document.documentElement, ...document.querySelectorAll('.results')]
        .map(e => e.scrollWidth - e.clientWidth))"""


# Pairs of a dashboard chart's labels that cover each other.
OVERLAPPING_LABELS = """() => [...document.querySelectorAll('#dashboard svg')].flatMap(svg => {
    const texts = [...svg.querySelectorAll('text')];
    const boxes = texts.map(t => t.getBoundingClientRect());
    const pairs = [];
    boxes.forEach((a, i) => boxes.slice(i + 1).forEach((b, k) => {
        if (a.left < b.right && b.left < a.right && a.top < b.bottom && b.top < a.bottom) {
            pairs.push([texts[i].textContent, texts[i + 1 + k].textContent]);
        }
    }));
    return pairs;
})"""


def status_of(user_id: str) -> str:
    return InboundEvent.objects.get(user_id=user_id).status


def test_operator_tests_the_connection_redelivers_and_exports(
    stack: Stack, make_shop, operator, log_in
):
    destination = make_shop(api_key=WRONG_KEY)
    stack.send("shop", GRACE, identify("ada-7", "m-ada"))
    wait_for(lambda: status_of("grace-42") == status_of("ada-7") == Status.FAILED)

    page = log_in(operator)
    page.goto(f"/admin/destinations/destination/{destination.pk}/change/")
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".messagelist .error")).to_contain_text(
        "Talon.One refused the API key (401)"
    )

    page.click("input[name=_continue]")  # saving checks too: a warning, saved all the same
    expect(page.locator(".messagelist .warning")).to_contain_text(
        "Saved, but the connection test failed"
    )

    page.fill("#id_api_key", API_KEY)
    page.click("input[name=_continue]")
    expect(page.locator(".messagelist .success")).to_contain_text("was changed successfully")
    expect(page.locator(".messagelist .warning")).to_have_count(0)
    page.get_by_role("button", name="Test connection").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Connected")

    event = find_by_user_id(page, "grace-42")
    page.get_by_role("button", name="Redeliver").click()
    expect(page.locator(".messagelist .success")).to_contain_text("Queued for redelivery")
    wait_for(lambda: status_of("grace-42") == Status.DELIVERED, timeout=30)
    page.reload()
    expect(field(page, "Status")).to_contain_text("delivered", ignore_case=True)
    assert stack.sandbox.profile("grace-42")["attributes"] == {
        "email": "grace@example.com",
        "plan": "platinum",
    }
    assert status_of("ada-7") == Status.FAILED  # only what was asked for
    screenshot(page, "event-detail")

    rows = export_csv(page, "/admin/destinations/inboundevent/?q=grace-42")
    assert [(r["id"], r["user_id"], r["status"]) for r in rows] == [
        (str(event.pk), "grace-42", "delivered")
    ]
    assert rows[0]["dropped"] == "1"


def find_by_user_id(page: Page, user_id: str) -> InboundEvent:
    """Through the list's search box, as an operator would, then its row's link."""
    page.goto("/admin/destinations/inboundevent/?status__exact=failed")
    page.fill("#searchbar", user_id)
    page.press("#searchbar", "Enter")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("failed", ignore_case=True)
    rows.first.locator("th a, td a").first.click()
    expect(field(page, "UserId")).to_have_text(user_id)
    return InboundEvent.objects.get(user_id=user_id)


def field(page: Page, label: str) -> Locator:
    """A read-only field's value on an admin page, by how its label starts."""
    starts = re.compile(rf"^{re.escape(label)}", re.IGNORECASE)
    row = page.locator(".form-row").filter(has=page.locator("label", has_text=starts))
    return row.locator(".readonly")


def export_csv(page: Page, list_url: str) -> list[dict[str, str]]:
    page.goto(list_url)
    with page.expect_download() as download:
        page.get_by_role("link", name="Export CSV").click()
    text = download.value.path().read_text(encoding="utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def test_the_audit_log_shows_what_happened(stack: Stack, make_shop, operator, log_in):
    send_a_mix(stack, make_shop())
    page = log_in(operator)

    dashboard = page.locator("#dashboard")
    expect(dashboard).to_contain_text("Shop")
    expect(dashboard).to_contain_text("received 5; delivered 2, skipped 2, failed 1, pending 0")
    expect(dashboard.locator("svg").first).to_be_visible()
    screenshot(page, "dashboard")

    page.fill("#id_customer_integration_id", "grace-42")
    page.get_by_role("button", name="Show").click()
    values = page.locator(".customer-values")
    expect(values.locator("tr").filter(has_text="email")).to_contain_text("grace@example.com")
    expect(values.locator("tr").filter(has_text="plan")).to_contain_text("platinum")
    expect(values).not_to_contain_text("eighty-five")  # dropped: never sent
    screenshot(page, "customer")

    page.goto("/admin/destinations/inboundevent/")
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(5)
    grace = rows.filter(has_text="grace-42")
    expect(grace).to_contain_text("delivered", ignore_case=True)
    expect(grace).to_contain_text("dropped 1")
    expect(rows.filter(has_text="mallory-13")).to_contain_text("failed", ignore_case=True)
    screenshot(page, "inbound-events")

    page.get_by_role("link", name="Failed", exact=True).click()
    expect(rows).to_have_count(1)
    screenshot(page, "failed-events")

    page.goto("/admin/destinations/inboundevent/")
    page.fill("#searchbar", "grace@example.com")  # a trait, not only userId or messageId
    page.press("#searchbar", "Enter")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text("grace-42")

    page.goto("/admin/destinations/deliveryattempt/")
    screenshot(page, "delivery-attempts")
    page.fill("#searchbar", "mallory-13")
    page.press("#searchbar", "Enter")
    rejected = page.locator("#result_list tbody tr").filter(has_text="✗ failed")
    # Talon.One's own message, not "-".
    expect(rejected.first).to_contain_text("Talon.One answered 400: customer profile 'mallory-13'")


def test_pages_fit_1280_px(stack: Stack, make_shop, operator, log_in):
    """Readable at 1280 px, the admin's sidebar open as it is by default: neither
    the page nor a list scrolls sideways."""
    destination = make_shop()
    send_a_mix(stack, destination)
    event = InboundEvent.objects.get(user_id="grace-42")
    page = log_in(operator)
    overflows = {}
    for path in [
        "/admin/",
        f"/admin/destinations/destination/{destination.pk}/change/",
        "/admin/destinations/inboundevent/",
        f"/admin/destinations/inboundevent/{event.pk}/change/",
        "/admin/destinations/deliveryattempt/",
    ]:
        page.goto(path)
        overflows[path] = page.evaluate(SIDEWAYS)
    assert overflows == dict.fromkeys(overflows, 0)


def test_dashboard_labels_do_not_overlap(stack: Stack, make_shop, operator, log_in):
    send_a_mix(stack, make_shop())
    page = log_in(operator)
    expect(page.locator("#dashboard svg").first).to_be_visible()
    assert page.evaluate(OVERLAPPING_LABELS) == []


def send_a_mix(stack: Stack, destination: Destination) -> None:
    """Delivered (one with a value dropped), skipped (no userId; a track call no
    mapping lists) and failed (Talon.One refuses the profile: 400)."""
    stack.sandbox.set_faults(reject_profiles=["mallory-13"])
    stack.send(
        destination.slug,
        GRACE,
        identify("ada-7", "m-ada"),
        identify("mallory-13", "m-mallory"),
        identify(None, "m-anonymous", anonymousId="anon-1"),
        {"type": "track", "event": "Order Completed", "userId": "ada-7", "messageId": "m-order"},
    )
    wait_for(
        lambda: InboundEvent.objects.count() == 5
        and not InboundEvent.objects.filter(status=Status.PENDING).exists()
    )
