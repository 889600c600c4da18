"""The cashier's paid screen shows the customer's e-receipt link and its QR code, live, in a
real browser (Debian chromium); the code scans to the link and the link opens the receipt.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from gateway.adapters.db import Database
from tests.e2e.test_cashier_browser import start_sale
from tests.factories import paid_by_bank

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_the_paid_screen_shows_the_receipt_link_and_its_qr_code(
    page: Any, live_server: Any, demo: Any, db: Database, tmp_path: Path, screenshot: Any
) -> None:
    payment_id = start_sale(page, live_server, demo)
    assert not page.locator(".state-paid [data-receipt-link]").is_visible()
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    box = page.locator(".state-paid [data-receipt-link]")
    box.wait_for(state="visible")  # the screen turned paid and asked for a link by itself
    link = box.locator("[data-receipt-url]")
    url = link.get_attribute("href")
    assert url and url.startswith(f"{live_server.url}/r/") and link.inner_text() == url
    page.wait_for_function(
        "document.querySelector('.state-paid [data-receipt-qr]').naturalWidth > 0"
    )
    box.locator("[data-receipt-qr]").screenshot(path=str(tmp_path / "receipt-qr.png"))
    decoded = zxingcpp.read_barcodes(Image.open(tmp_path / "receipt-qr.png"))
    assert [d.text for d in decoded] == [url]
    screenshot("paid-with-receipt-link")

    customer = page.context.browser.new_context()  # the customer's phone: not signed in
    phone = customer.new_page()
    phone.goto(url)
    assert "12.34" in phone.locator("[data-receipt-total]").inner_text()  # en-US browser
    assert "Kassa Demo Markt" in phone.locator("[data-receipt-merchant]").inner_text()
    customer.close()
