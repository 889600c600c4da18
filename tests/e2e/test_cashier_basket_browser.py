"""The basket with promotions in a real browser (Debian chromium) against a live server.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from gateway.adapters.models import Payment
from tests.e2e.test_cashier_browser import PAYMENT_URL, credentials, sign_in
from tests.integration.test_cashier_sales import threshold_promotions

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_cashier_checks_promotions_then_shows_the_qr_code(
    page: Any, live_server: Any, demo: Any, db: Database, screenshot: Any
) -> None:
    threshold_promotions(db)  # "2 off 20" applies to this basket, "5 off 50" does not
    sign_in(page, f"{live_server.url}/cashier/", *credentials(demo, "cashier"))
    page.get_by_role("button", name=re.compile("T01")).click()
    page.get_by_role("link", name="Basket with promotions").click()

    names, rows = page.locator("input[name=line_name]"), page.locator(".basket-line")
    expect(rows).to_have_count(5)
    page.get_by_role("button", name="+ Add line").click()  # basket.js: a sixth, empty row
    expect(rows).to_have_count(6)
    expect(page.locator("input[name=line_quantity]").nth(5)).to_have_value("1")
    names.nth(0).fill("Flat white")
    page.locator("input[name=line_quantity]").nth(0).fill("4")
    page.locator("input[name=line_price]").nth(0).fill("3,50")
    names.nth(1).fill("Cheesecake")
    page.locator("input[name=line_category]").nth(1).fill("cakes")
    page.locator("input[name=line_price]").nth(1).fill("6,90")
    page.get_by_label("Member code").fill("M-1001")
    screenshot("basket-1-form")
    page.get_by_role("button", name="Check promotions").click()

    expect(page.locator("[data-saves]")).to_have_text("Customer saves €2.00")
    expect(page.locator("[data-to-pay]")).to_contain_text("€18.90")
    expect(page.locator("[data-applied]")).to_contain_text("2 off 20")
    expect(page.locator("[data-rejected]")).to_contain_text(
        "5 off 50: spend 29.10 EUR more to save 5.00 EUR"
    )
    screenshot("basket-2-sale")
    page.get_by_role("button", name="Pay by wallet QR").click()

    page.wait_for_url(PAYMENT_URL)
    summary = page.locator(".state-open [data-sale-summary]")
    expect(page.locator("img[data-qr]")).to_be_visible()
    expect(summary).to_contain_text("Customer saves €2.00")
    expect(summary).to_contain_text("2 off 20")
    expect(page.locator(".state-open [data-amount]")).to_have_text("€18.90")
    screenshot("basket-3-qr")
    match = PAYMENT_URL.match(page.url)
    assert match
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, match.group(1))
        assert (payment.amount_minor, payment.method) == (1890, "qr")
