"""The cashier screen and the portal in a real browser (Debian chromium) against a live server.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, Payment
from tests.factories import paid_by_bank
from tests.staff_helpers import KNOWN_TOTP, totp_code

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]

PAYMENT_URL = re.compile(r".*/cashier/payments/([0-9a-f-]{36})$")


def credentials(demo: dict[str, Any], role: str) -> tuple[str, str]:
    user = next(s for s in demo["staff"] if s["role"] == role)
    return user["username"], user["password"]


def sign_in(page: Any, url: str, username: str, password: str) -> None:
    """Sign in as a person does; portal staff then type their authenticator's code."""
    page.goto(url)
    page.fill("#username", username)
    page.fill("#password", password)
    page.click("button[type=submit]")
    page.wait_for_load_state()
    if username in KNOWN_TOTP and page.url.endswith("/portal/mfa"):
        for ahead in (0, 1):  # a code already used in this 30-second step is refused
            page.fill("#code", totp_code(KNOWN_TOTP[username], ahead))
            page.click("button[type=submit]")
            page.wait_for_load_state()
            if not page.url.endswith("/portal/mfa"):
                return
        raise AssertionError("the second factor was refused")


def start_sale(page: Any, server: Any, demo: dict[str, Any], screenshot: Any = None) -> str:
    """Sign in as the demo cashier at till T01, type 12.34 on the keypad, show the QR code."""
    sign_in(page, f"{server.url}/cashier/", *credentials(demo, "cashier"))
    page.get_by_role("button", name=re.compile("T01")).click()
    page.wait_for_selector("form[data-sale-form]")
    for key in ("1", "2", "sep", "3", "4"):
        page.click(f".key[data-key='{key}']")
    assert page.input_value("#amount") == "12.34"  # an English page writes a decimal point
    page.fill("#reference", "BON-4711")
    if screenshot:
        screenshot("1-new-sale")
    page.click("button[data-submit]")
    page.wait_for_url(PAYMENT_URL)
    match = PAYMENT_URL.match(page.url)
    assert match
    return match.group(1)


def no_horizontal_scroll(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def test_qr_payment_is_shown_and_flips_to_paid(
    page: Any, live_server: Any, demo: Any, db: Database, tmp_path: Path, screenshot: Any
) -> None:
    payment_id = start_sale(page, live_server, demo, screenshot)
    qr = page.locator("img[data-qr]")
    qr.wait_for(state="visible")
    page.wait_for_function("document.querySelector('img[data-qr]').naturalWidth > 0")
    qr.screenshot(path=str(tmp_path / "qr.png"))
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        payload = payment.qr_payload
        assert (payment.amount_minor, payment.bill_number) == (1234, "BON-4711")
    decoded = zxingcpp.read_barcodes(Image.open(tmp_path / "qr.png"))
    assert [d.text for d in decoded] == [payload]
    open_state = page.locator(".state-open")
    assert open_state.locator("[data-amount]").inner_text() == "€12.34"
    assert open_state.locator(".merchant-name").inner_text() == "Kassa Demo Markt"
    assert "BON-4711" in open_state.inner_text()
    # Five minutes to pay, counting down: how far depends on how fast this machine got here.
    minutes, seconds = page.locator("[data-countdown]").inner_text().split(":")
    assert 0 < int(minutes) * 60 + int(seconds) <= 300 and len(seconds) == 2
    screenshot("2-qr")

    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    paid = page.locator(".state-paid")
    paid.wait_for(state="visible")
    assert "PAID" in paid.inner_text() and "€12.34" in paid.inner_text()
    assert not qr.is_visible()  # nobody scans a paid code again
    screenshot("3-paid")
    paid.get_by_role("link", name="New sale").click()
    page.wait_for_selector("form[data-sale-form]")


def test_cancel_from_the_screen(page: Any, live_server: Any, demo: Any, db: Database) -> None:
    payment_id = start_sale(page, live_server, demo)
    page.get_by_role("button", name="Cancel payment").click()
    dialog = page.locator("dialog#confirm-cancel")
    dialog.wait_for(state="visible")
    dialog.get_by_role("button", name="Keep waiting").click()
    assert page.locator(".state-open").is_visible()
    page.get_by_role("button", name="Cancel payment").click()
    dialog.get_by_role("button", name="Cancel payment").click()
    page.locator(".state-cancelled").wait_for(state="visible")
    assert "CANCELLED" in page.locator(".state-cancelled").inner_text()
    with db.unit_of_work() as uow:
        assert uow.session.get_one(Payment, payment_id).status == "cancelled"


@pytest.mark.parametrize(
    "size", [(1024, 768), (768, 1024)], ids=["till-1024x768", "tablet-768x1024"]
)
def test_no_horizontal_scroll_and_qr_fits(
    page: Any, live_server: Any, demo: Any, db: Database, size: tuple[int, int], screenshot: Any
) -> None:
    width, height = size
    with db.unit_of_work() as uow:  # the long amount below is far above the approval limit
        for merchant in uow.session.scalars(select(Merchant)):
            merchant.approval_limits = {"refund_above_minor": 5000, "payment_above_minor": 10**15}
        uow.commit()
    page.set_viewport_size({"width": width, "height": height})
    sign_in(page, f"{live_server.url}/cashier/", *credentials(demo, "cashier"))
    assert no_horizontal_scroll(page)
    page.get_by_role("button", name=re.compile("T01")).click()
    page.wait_for_selector("form[data-sale-form]")
    page.locator("details.lines summary").click()
    assert no_horizontal_scroll(page)
    page.fill("#amount", "1234567,89")
    screenshot(f"sale-{width}x{height}")
    page.click("button[data-submit]")
    page.wait_for_url(PAYMENT_URL)
    page.locator("img[data-qr]").wait_for(state="visible")
    assert no_horizontal_scroll(page)
    box = page.locator("img[data-qr]").bounding_box()
    assert box["width"] >= 300, box  # large enough to scan from a phone
    assert box["x"] >= 0 and box["x"] + box["width"] <= width
    assert box["y"] >= 0 and box["y"] + box["height"] <= height  # no scrolling to see it
    cancel = page.get_by_role("button", name="Cancel payment").bounding_box()
    assert cancel["height"] >= 44 and cancel["y"] + cancel["height"] <= height
    screenshot(f"qr-{width}x{height}")


def test_manager_finds_the_payment_in_the_portal(
    page: Any, live_server: Any, demo: Any, screenshot: Any
) -> None:
    payment_id = start_sale(page, live_server, demo)
    page.goto("about:blank")  # the cashier's screen stops following its payment first
    page.context.clear_cookies()
    sign_in(page, f"{live_server.url}/portal/", *credentials(demo, "manager"))
    page.get_by_role("navigation").get_by_role("link", name="Payments").click()  # the list
    row = page.locator(f"tr[data-payment-id='{payment_id}']")
    row.wait_for(state="visible")
    assert "€12.34" in row.inner_text() and "Berlin Mitte" in row.inner_text()
    assert no_horizontal_scroll(page)
    screenshot("4-portal-list")
    row.get_by_role("link").click()
    page.wait_for_url(f"**/portal/payments/{payment_id}")
    history = page.locator("#history tbody tr")
    assert history.count() == 2
    assert "qr issued" in history.nth(1).inner_text()
    assert "BON-4711" in page.inner_text("main")
    screenshot("5-portal-detail")
