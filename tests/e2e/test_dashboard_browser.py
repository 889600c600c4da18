"""The dashboard and an experiment's results in a real browser (Debian chromium) at 1280 px:
the charts are drawn and the experiment table fits, last column included.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from tests.e2e.test_cashier_browser import credentials, sign_in

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


@pytest.fixture
def demo_month(db: Database, tmp_path: Path) -> dict[str, Any]:
    """The demo as `kassa run` seeds it: promotions, the A/B test and a month of sales."""
    from gateway.services.demo import seed_demo

    with db.unit_of_work() as uow:
        return seed_demo(uow, tmp_path / "demo-credentials.json", history=True)


def test_dashboard_charts_and_the_whole_experiment_table_at_1280(
    page: Any, live_server: Any, demo_month: Any, screenshot: Any
) -> None:
    page.set_viewport_size({"width": 1280, "height": 900})
    sign_in(page, f"{live_server.url}/portal/login", *credentials(demo_month, "manager"))
    expect(page.get_by_role("heading", name="Dashboard", exact=True)).to_be_visible()
    charts = page.locator("svg.chart")
    expect(charts.first).to_be_visible()
    assert charts.count() >= 6
    bars = page.locator('[data-chart="turnover-day"] svg.chart rect')
    assert bars.count() > 30  # a month of days, wallet QR and card
    numbers = page.locator('[data-chart="turnover-day"] details')
    numbers.locator("summary").click()
    expect(numbers.locator("table tbody tr").first).to_be_visible()
    screenshot("dashboard-1280")

    page.get_by_role("link", name="Experiments").click()
    page.locator('a[href$="/experiments/wallet-10"]').first.click()
    table = page.locator("#results")
    expect(table).to_be_visible()
    last = table.locator("thead th").last
    expect(last).to_have_text("Cost")
    expect(last).to_be_in_viewport(ratio=1)
    retention = table.locator("thead th").nth(8)
    expect(retention).to_be_in_viewport(ratio=1)
    wrap = page.locator(".table-wrap").filter(has=table)
    fits = wrap.evaluate("el => el.scrollWidth <= el.clientWidth")
    assert fits, "the experiment table scrolls sideways at 1280 px"
    box = last.bounding_box()
    assert box is not None and box["x"] + box["width"] <= 1280
    expect(page.locator(".ci-chart svg").first).to_be_visible()
    expect(page.locator("#method-note")).to_contain_text("mSPRT")
    screenshot("experiment-1280")
