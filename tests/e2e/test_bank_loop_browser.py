"""The whole loop in a browser: the cashier shows a QR code, a "phone" scans it off the screen
and pays at the sandbox bank's wallet page, the bank calls the gateway back, and the cashier
screen flips to PAID; then the cashier refunds part of it and the bank confirms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import zxingcpp
from PIL import Image

from gateway.adapters.db import Database
from gateway.services import jobs
from gateway.services.registry import job_handlers
from tests.bank_loop import bank_loop
from tests.e2e.test_cashier_browser import start_sale

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_scan_pay_at_the_bank_then_refund(
    browser: Any, page: Any, demo: Any, db: Database, tmp_path: Path, screenshot: Any
) -> None:
    with bank_loop(db, tmp_path) as loop:
        payment_id = start_sale(page, loop.gateway, demo)
        qr = page.locator("img[data-qr]")
        page.wait_for_function("document.querySelector('img[data-qr]').naturalWidth > 0")
        qr.screenshot(path=str(tmp_path / "screen-qr.png"))
        found = zxingcpp.read_barcodes(Image.open(tmp_path / "screen-qr.png"))
        # The screen shows one payload: zxing-cpp once reported more than one find in this
        # screenshot on a loaded machine, so distinct payloads are counted (two would fail).
        [payload] = {code.text for code in found}

        phone = browser.new_page()
        phone.goto(f"{loop.bank.url}/sandbox/")
        phone.fill("#payload", payload)
        phone.fill("#wallet_id", "wallet-e2e")
        phone.click("button[type=submit]")
        phone.wait_for_load_state()
        assert "12.34" in phone.inner_text("body")
        phone.close()

        page.wait_for_selector("body[data-screen='paid']")
        assert page.locator(".state-paid").is_visible()
        screenshot("loop-paid")

        page.click("[data-refund-link]")
        page.fill("#refund-amount", "2,34")
        page.fill("#refund-reason", "damaged packaging")
        page.click("button[data-submit]")
        page.wait_for_selector("[data-refund-status='requested']")
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) >= 1  # the worker's job

        def refunded() -> bool:
            """the bank confirms the refund on the cashier's refund page"""
            page.reload()
            return page.locator("[data-refund-status='succeeded']").count() == 1

        loop.wait_for(refunded)
        screenshot("loop-refunded")
        with db.unit_of_work(readonly=True) as uow:
            from gateway.adapters.models import Payment

            payment = uow.session.get_one(Payment, payment_id)
            assert (payment.status, payment.refunded_minor) == ("partially_refunded", 234)
