"""A card payment on the cashier screen: the device host drives the simulated ZVT terminal and
the screen follows the terminal's texts live (its event stream, else polling) until it shows
APPROVED with the receipt. No wait relies on the network going idle: a live stream never does."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import expect

from gateway.adapters.db import Database
from gateway.entrypoints.app import create_app
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.services.staff.auth import authenticate_till
from tests.conftest import LiveServer, app_config
from tests.e2e.conftest import CEILING_MS
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


def _pay_by_card(page: Any, url: str, demo: Any, amount: str) -> None:
    sign_in(page, f"{url}/cashier/", *credentials(demo, "cashier"))
    page.get_by_role("button", name=re.compile("T01")).click()
    page.wait_for_selector("form[data-sale-form]")
    page.fill("#amount", amount)
    page.click("button[data-submit][value=card]")
    page.wait_for_url(PAYMENT_URL)


def test_the_terminals_text_arrives_over_the_live_stream(
    page: Any, live_server: Any, demo: Any, terminal: PinPadTerminal
) -> None:
    """While the customer is at the PIN step (the simulator waits there), the screen shows the
    terminal's text, delivered by the server-sent event stream rather than the poll."""
    _pay_by_card(page, live_server.url, demo, "7,50")
    assert page.locator("body").get_attribute("data-events-url")
    text = page.locator("[data-terminal-text][data-via='stream']")
    expect(text).to_contain_text("PIN")
    terminal.pin_typed.set()
    page.wait_for_selector("body[data-screen='paid']")
    expect(page.locator("[data-receipt]")).to_be_visible()


def test_the_terminals_text_in_the_cashiers_language(
    browser: Any, live_server: Any, demo: Any, terminal: PinPadTerminal
) -> None:
    """A browser that asks for German sees the terminal's 04 FF text 01 ("Please watch
    PIN-Pad", ZVT §3.7 Table 17) in German while the customer is at the PIN step."""
    context = browser.new_context(viewport={"width": 1024, "height": 768}, locale="de-DE")
    context.set_default_timeout(CEILING_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        _pay_by_card(page, live_server.url, demo, "7,50")
        expect(page.locator("html")).to_have_attribute("lang", "de")
        expect(page.locator("[data-terminal-text]")).to_have_text("Bitte PIN-Pad beachten")
        terminal.pin_typed.set()
        page.wait_for_selector("body[data-screen='paid']")
        expect(page.locator("[data-receipt]")).to_be_visible()
    finally:
        context.close()
    assert not errors, f"browser errors: {errors}"


def test_without_the_stream_the_screen_polls_the_terminals_text(
    page: Any, db: Database, demo: Any, terminal: PinPadTerminal
) -> None:
    polling = create_app(app_config(db, web={"event_stream_seconds": 0}), db=db)
    with LiveServer(polling) as server:
        _pay_by_card(page, server.url, demo, "7,50")
        assert page.locator("body").get_attribute("data-events-url") is None
        expect(page.locator("[data-terminal-text][data-via='poll']")).to_contain_text("PIN")
        terminal.pin_typed.set()
        page.wait_for_selector("body[data-screen='paid']")
