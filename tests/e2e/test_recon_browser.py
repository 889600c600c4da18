"""The settlement pages in a real browser (Debian chromium): run a day, write off an exception.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from tests.e2e.test_cashier_browser import credentials, sign_in
from tests.integration.test_recon_pages import DAY, settlement_day

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_manager_runs_a_day_and_writes_off_an_exception(
    page: Any, live_server: Any, demo: Any, db: Database, tmp_path: Path, screenshot: Any
) -> None:
    ids = settlement_day(db, demo, tmp_path)
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, f"{live_server.url}/portal/login", *credentials(demo, "manager"))
    page.get_by_role("link", name="Settlement").click()
    page.goto(f"{live_server.url}/portal/settlement?month={DAY:%Y-%m}")
    row = page.locator(f'tr[data-day="{DAY}"]')
    expect(row).to_have_attribute("data-status", "not-run")

    row.get_by_role("button", name=f"Run reconciliation for {DAY}").click()
    expect(page.locator(".notice")).to_contain_text("Reconciled 2025-03-10")
    expect(row).to_have_attribute("data-status", "exceptions")
    expect(row.locator(".badge")).to_have_text("4 exceptions")
    screenshot("recon-1-calendar")
    page.screenshot(path="/tmp/recon/calendar.png", full_page=True)

    row.locator(".badge").click()
    page.locator(f'tr[data-subject-id="{ids["missing"]}"] a.mono').click()
    expect(page.locator("#verdict .badge")).to_have_attribute("data-outcome", "paid_not_settled")
    screenshot("recon-2-exception")
    page.screenshot(path="/tmp/recon/exception.png", full_page=True)

    page.fill("#note", "Customer paid cash; card slip voided")
    page.get_by_role("button", name="Write off").click()
    expect(page.locator("#verdict .badge")).to_have_attribute("data-outcome", "written_off")
    expect(page.locator("#decisions")).to_contain_text("Customer paid cash; card slip voided")
    page.screenshot(path="/tmp/recon/written-off.png", full_page=True)

    page.get_by_role("link", name=re.compile("Settlement 2025-03-10")).click()
    expect(page.locator(f'tr[data-subject-id="{ids["missing"]}"]')).to_have_attribute(
        "data-outcome", "written_off"
    )
