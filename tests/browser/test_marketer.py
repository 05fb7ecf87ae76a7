"""A marketer in a real browser: the destination page, its attribute rows,
and never a URL, key or secret of the connection."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from destinations.models import AttributeMapping
from tests.browser.conftest import SHARED_SECRET, screenshot
from tests.conftest import API_KEY

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_marketer_edits_rows_and_never_sees_a_key(stack, make_shop, marketer, log_in):
    destination = make_shop()
    page = log_in(marketer)
    page.click("#content-main a[href$='/destinations/destination/']")
    page.get_by_role("link", name="Shop", exact=True).click()
    expect(page.locator("h1")).to_contain_text("Change destination")
    screenshot(page, "destination")
    html = page.content()
    for leak in (API_KEY, SHARED_SECRET, "localhost", str(stack.sandbox_port)):
        assert leak not in html
    assert AttributeMapping.objects.filter(destination=destination).count() == 3
