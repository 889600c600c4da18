"""A card payment on the cashier screen: the device host drives the simulated ZVT terminal and
the screen follows the terminal's texts live until it shows APPROVED with the receipt."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.services.staff.auth import authenticate_till
from tests.e2e.test_cashier_browser import PAYMENT_URL, credentials, sign_in
from tests.simulators import PinPadTerminal

pytestmark = [pytest.mark.e2e, pytest.mark.parametrize("db", ["sqlite"], indirect=True)]


@pytest.fixture
def terminal(db: Database, demo: Any) -> Iterator[PinPadTerminal]:
    """A simulated terminal at till T01 and a device host stepping in a thread."""
    with db.unit_of_work(readonly=True) as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
    with PinPadTerminal(baudrate=115200) as simulator:
        simulator.pin_delay = 0.1  # after the screen has shown the PIN step (pin_typed)
        host = DeviceHost(
            db,
            [
                TillDevices(
                    till.till_id, till.label, terminal_url=simulator.port, terminal_baudrate=115200
                )
            ],
            token_key=b"k",
        )
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                if not host.step():
                    stop.wait(0.02)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        yield simulator
        stop.set()
        thread.join(10)
        host._close(host.tills[0])


def test_card_payment_follows_the_terminal_to_approved(
    page: Any, live_server: Any, demo: Any, terminal: PinPadTerminal, screenshot: Any
) -> None:
    sign_in(page, f"{live_server.url}/cashier/", *credentials(demo, "cashier"))
    page.get_by_role("button", name=re.compile("T01")).click()
    page.wait_for_selector("form[data-sale-form]")
    page.fill("#amount", "31,50")
    page.click("button[data-submit][value=card]")
    page.wait_for_url(PAYMENT_URL)
    page.wait_for_selector("body[data-screen='terminal']")
    expect(page.locator("[data-terminal-text]")).to_contain_text("PIN")
    screenshot("card-pin")
    terminal.pin_typed.set()
    page.wait_for_selector("body[data-screen='paid']")
    assert page.locator(".state-paid h1").inner_text() == "APPROVED"
    receipt = page.locator("[data-receipt]")
    assert receipt.is_visible() and receipt.inner_text().strip()
    screenshot("card-approved")
    assert [b.amount_minor for b in terminal.journal] == [3150]
