"""The promotions pages in a real browser (Debian chromium): create a promotion with the form,
activate it and see it live.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.e2e.test_cashier_browser import credentials, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_manager_creates_and_activates_a_promotion(
    page: Any, live_server: Any, demo: Any, screenshot: Any
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, f"{live_server.url}/portal/login", *credentials(demo, "manager"))
    page.get_by_role("link", name="Promotions").click()
    page.get_by_role("link", name="New promotion").click()

    page.fill("#key", "spring-10")
    page.fill("#name", "Spring: spend 50, save 5")
    page.select_option("#kind", "percent")
    expect(page.locator("#percent_percent")).to_be_visible()
    expect(page.locator("#threshold_tiers")).to_be_hidden()
    page.select_option("#kind", "threshold")
    expect(page.locator("#threshold_tiers")).to_be_visible()
    page.fill("#threshold_tiers", "50.00:5.00, 100.00:15.00")
    page.get_by_label("QR").check()
    page.fill("#budget", "100.00")
    screenshot("promotions-1-form")
    page.get_by_role("button", name="Create draft").click()

    expect(page.locator("#status")).to_have_attribute("data-status", "draft")
    expect(page.locator("#rules")).to_contain_text("Spend 50.00 EUR, save 5.00 EUR.")
    page.get_by_role("button", name="Activate").click()
    expect(page.locator("#status")).to_have_text("Live")
    screenshot("promotions-2-live")

    page.get_by_role("link", name="← Promotions").click()
    row = page.locator('tr[data-promotion="spring-10"]')
    expect(row).to_have_attribute("data-status", "live")
    expect(row.locator(".badge")).to_have_text("Live")
    expect(row.locator(".budget")).to_contain_text("100.00")
