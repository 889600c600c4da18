"""The portal in Simplified Chinese in a real browser (Debian chromium): a manager whose browser
asks for zh-CN signs in, reads the payments in Chinese with the amounts written the Chinese way,
follows the menu, then chooses German on their account page.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from tests.e2e.conftest import CEILING_MS
from tests.e2e.test_cashier_browser import credentials, sign_in
from tests.integration.test_portal_pages import create, till_of

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A browser whose language is Simplified Chinese (its Accept-Language says zh-CN)."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="zh-CN")
    context.set_default_timeout(CEILING_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    context.close()
    assert not errors, f"browser errors: {errors}"


def test_a_manager_reads_the_portal_in_chinese_then_chooses_german(
    page: Any, live_server: Any, demo: Any, db: Database
) -> None:
    payment_id = create(db, till_of(db), "1234.56")
    page.goto(f"{live_server.url}/portal/login")
    expect(page.locator("h1")).to_have_text("商户门户")
    sign_in(page, f"{live_server.url}/portal/login", *credentials(demo, "manager"))

    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    nav = page.get_by_role("navigation", name="门户")
    # The first page is the dashboard; the payments list is one click away.
    expect(nav.get_by_role("link", name="概览")).to_have_attribute("aria-current", "page")
    expect(page.get_by_role("heading", name="每日营业额")).to_be_visible()
    nav.get_by_role("link", name="付款").click()
    expect(nav.get_by_role("link", name="付款")).to_have_attribute("aria-current", "page")
    row = page.locator(f'tr[data-payment-id="{payment_id}"]')
    expect(row).to_contain_text("€1,234.56")
    expect(row).to_contain_text("待处理")
    expect(page.locator("#from")).to_have_attribute("placeholder", "年-月-日")

    nav.get_by_role("link", name="设备").click()
    expect(page.get_by_role("heading", name="日结")).to_be_visible()
    expect(page).to_have_title(re.compile(r"^设备 · Kassa$"))

    page.goto(f"{live_server.url}/portal/password")
    page.select_option("#language", "de")
    page.get_by_role("button", name="保存语言").click()
    expect(page.locator("html")).to_have_attribute("lang", "de")  # the browser still asks zh
    expect(page.get_by_role("button", name="Sprache speichern")).to_be_visible()
    page.goto(f"{live_server.url}/portal/payments")
    expect(page.locator(f'tr[data-payment-id="{payment_id}"]')).to_contain_text("1.234,56\xa0€")
