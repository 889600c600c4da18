"""In a real browser (Debian chromium): a manager refunds money the bank took after the
payment expired, from the payment's page, then replays a bank event from the Events page.

SQLite only: the pages are the same on PostgreSQL, which the integration tests cover.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import InboundEvent, Payment, Refund
from tests.e2e.test_cashier_browser import credentials, sign_in
from tests.integration.test_bank_money import expired_then_paid_at_the_bank
from tests.integration.test_inbound_events import pending_payment, stored_callback

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


def test_manager_refunds_money_taken_after_expiry_and_replays_an_event(
    page: Any, live_server: Any, demo: Any, db: Database, screenshot: Any
) -> None:
    payment_id = expired_then_paid_at_the_bank(db)
    sign_in(page, f"{live_server.url}/portal/login", *credentials(demo, "manager"))
    page.goto(f"{live_server.url}/portal/payments/{payment_id}")
    box = page.locator("#bank-money")
    expect(box).to_contain_text("bp_late")
    screenshot("bank-money-question")
    page.fill("#bank-money-note", "Customer asked for the money back")
    page.click("[data-bank-money='refund']")
    expect(page.locator(".flash")).to_contain_text("refund is on its way")
    expect(page.locator("#bank-money")).to_have_count(0)
    expect(page.locator("#refunds")).to_contain_text("Requested")
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Payment, payment_id).status == "paid"
        [refund] = uow.session.scalars(select(Refund)).all()
        assert refund.created_by.startswith("staff:")

    other = pending_payment(db)
    event_id = stored_callback(db, "evt_browser", other.reference, amount="9.99")
    page.get_by_role("link", name="Events").click()
    page.locator(f"tr[data-event-id='{event_id}'] a").click()
    expect(page.locator("#event-body")).to_contain_text(other.reference)
    expect(page.locator("#event-headers")).to_contain_text("evt_browser")
    page.click(f"[data-replay='{event_id}']")
    expect(page.locator(".flash")).to_contain_text("Processed → Processed")
    screenshot("event-replayed")
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(InboundEvent, event_id).status == "processed"
