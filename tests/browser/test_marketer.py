"""A marketer in a real browser: Talon.One's attributes beside the rows, a
flagged row, a suggested row added in one click, an event previewed, and never
a URL, key or secret of the connection on any page."""

from __future__ import annotations

import json

import pytest
from playwright.sync_api import Page, expect

from destinations.models import AttributeMapping
from talon_sandbox.server import DEFAULT_MANAGEMENT_KEYS
from tests.browser.conftest import SHARED_SECRET, Stack, screenshot
from tests.conftest import API_KEY, identify
from tests.e2e.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

MANAGEMENT_KEY = DEFAULT_MANAGEMENT_KEYS[0]
SEEN = identify(
    "lin-3",
    "m-lin",
    traits={"email": "lin@example.com", "plan": "gold", "firstName": "Lin", "shoeSize": 38},
)


def test_marketer_checks_rows_adds_one_previews_and_sees_no_key(
    stack: Stack, make_shop, marketer, log_in
):
    destination = make_shop(management_api_key=MANAGEMENT_KEY)
    AttributeMapping.objects.create(destination=destination, name="favouriteColour", type="string")
    stack.send("shop", SEEN)
    wait_for(lambda: destination.events.filter(status="delivered").exists())

    page = log_in(marketer)
    page.click("#content-main a[href$='/destinations/destination/']")
    page.get_by_role("link", name="Shop", exact=True).click()
    page.get_by_role("button", name="Read Talon.One's attributes now").click()
    section = page.locator("#talon-one-attributes")
    expect(section).to_contain_text("customer-profile attributes as read on")
    flagged = section.locator("tr").filter(has_text="favouriteColour")
    expect(flagged.locator(".catalog-flag")).to_contain_text("⚠")
    expect(section.locator("tr").filter(has_text="email")).to_contain_text("as in Talon.One")
    assert_no_secret(stack, page)
    screenshot(page, "destination")

    seen = section.locator("tr").filter(has_text="firstName").first
    seen.get_by_role("button", name="Add").click()
    expect(page.locator(".messagelist .success")).to_contain_text("firstName")
    checked = section.locator("tr").filter(has_text="firstName").first
    expect(checked).to_contain_text("as in Talon.One")
    assert destination.attributes.filter(name="firstName", type="string").exists()

    sent = len(stack.sandbox.requests_log())
    page.get_by_role("link", name="Preview an event").click()
    page.fill("#id_event", json.dumps(SEEN))
    page.get_by_role("button", name="Preview", exact=True).click()
    result = page.locator("#preview-result")
    expect(result).to_contain_text('"firstName": "Lin"')
    expect(result.locator("tr").filter(has_text="shoeSize")).to_contain_text("not listed")
    assert_no_secret(stack, page)
    screenshot(page, "preview")
    assert len(stack.sandbox.requests_log()) == sent  # a preview sends nothing

    page.get_by_role("button", name="Ask Talon.One (dry run)").click()
    expect(page.locator("#dry-run")).to_contain_text("Accepted")
    assert_no_secret(stack, page)
    assert "firstName" not in stack.sandbox.profile("lin-3")["attributes"]  # dry: not stored

    # Where the connection's URL could show: the attempts (their path only).
    page.goto("/admin/destinations/deliveryattempt/")
    page.locator("#result_list tbody tr a").first.click()
    expect(page.locator("body")).to_contain_text("/v2/customer_profiles")
    assert_no_secret(stack, page)


def assert_no_secret(stack: Stack, page: Page) -> None:
    html = page.content()
    for secret in (API_KEY, MANAGEMENT_KEY, SHARED_SECRET, "localhost", f":{stack.sandbox_port}"):
        assert secret not in html
