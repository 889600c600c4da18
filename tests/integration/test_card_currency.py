"""The terminal's currency: registered at every connect, sent with each payment, and a payment
in another currency refused before a byte reaches the terminal. SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from sqlalchemy import select

from drivers.errors import DeviceError
from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import DeviceStatus, Job, Payment
from gateway.entrypoints.device_host import DeviceHost
from gateway.services.devices import cards
from tests.card_helpers import close, first_till, host_for, read_payment, until
from tests.conftest import app_config


@pytest.fixture
def app(db: Database) -> Any:
    """The app with the demo's first store accepting yen as well ([payments.currencies])."""
    from gateway.entrypoints.app import create_app

    accepted = {"currencies": {"stores": {"Berlin Mitte": ["EUR", "JPY"]}}}
    application = create_app(app_config(db, payments=accepted), db=db)
    application.config["TESTING"] = True
    return application


@pytest.fixture
def yen_terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"
        simulator.currency = "392"  # the terminal takes yen
        yield simulator  # type: ignore[misc]


@pytest.fixture
def yen_host(db: Database, demo: Any, yen_terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    host = host_for(
        db,
        first_till(db, demo),
        yen_terminal.port,
        timezone="Europe/Berlin",
        terminal_currency="JPY",
    )
    host.heartbeat()  # the web tier learns which currency the terminal takes
    yield host
    close(host)


def _card(server: Any, demo: Any, amount: str, currency: str) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/payments",
        json={"amount": amount, "currency": currency, "method": "card"},
        headers={"Authorization": f"Bearer {demo['tills'][0]['api_key']}"},
        timeout=10,
    )


def _commands(terminal: ZvtSimulator) -> list[str]:
    return [f"{a.cls:02X} {a.instr:02X}" for a in terminal.received]


def test_a_yen_payment_goes_to_the_terminal_in_yen(
    live_server: Any, db: Database, demo: Any, yen_host: DeviceHost, yen_terminal: ZvtSimulator
) -> None:
    created = _card(live_server, demo, "1000", "JPY")
    assert created.status_code == 201, created.text
    payment_id = created.json()["id"]
    until(lambda: read_payment(db, payment_id).status == "authorised", yen_host)

    registration, authorisation = yen_terminal.received[:2]
    assert registration.control == (0x06, 0x00) and registration.data[4:6] == b"\x03\x92"
    assert yen_terminal.registered_currency == "392"
    # 04: 1000 minor units (yen have none), 49: 0392 (PA00P015 2.2)
    assert authorisation.encode() == bytes.fromhex("06 01 0A 04 000000001000 49 0392")
    payment = read_payment(db, payment_id)
    assert "Betrag JPY 1000" in (payment.receipt_text or "")
    assert "EUR" not in (payment.receipt_text or "")


def test_a_currency_the_terminal_does_not_take_is_refused_before_it_is_sent(
    live_server: Any, db: Database, demo: Any, yen_host: DeviceHost, yen_terminal: ZvtSimulator
) -> None:
    refused = _card(live_server, demo, "10.00", "EUR")
    assert refused.status_code == 409
    body = refused.json()
    assert body["type"] == "/problems/card-currency-not-accepted"
    assert body["terminal_currency"] == "JPY"
    assert "takes JPY only, and this payment is in EUR" in body["detail"]
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(Payment)).all() == []
        assert uow.session.scalars(select(Job)).all() == []
    until(lambda: True, yen_host, seconds=0.3)
    assert "06 01" not in _commands(yen_terminal)


def test_the_cashier_screen_says_why_a_card_sale_cannot_be_taken(
    app: Any, db: Database, demo: Any, yen_host: DeviceHost
) -> None:
    from tests.integration.test_cashier_pages import at_till

    client = app.test_client()
    at_till(client, demo)
    page = client.get("/cashier/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert token and key
    response = client.post(
        "/cashier/payments",
        data={
            "csrf_token": token.group(1),
            "idempotency_key": key.group(1),
            "amount": "12,00",
            "method": "card",
        },
    )
    assert response.status_code == 422
    assert "takes JPY only, and this payment is in EUR" in response.get_data(as_text=True)


def test_a_queued_payment_in_another_currency_never_reaches_the_terminal(
    db: Database, demo: Any, yen_terminal: ZvtSimulator
) -> None:
    """Queued while the web tier still thought the terminal took euros (before the device
    host first reported): the device host refuses it without sending a byte."""
    from gateway.domain.money import Money

    till = first_till(db, demo)
    with db.unit_of_work() as uow:
        payment_id = cards.create_card_payment(uow, till, money=Money.parse("5.00", "EUR")).id
        uow.commit()
    host = host_for(db, till, yen_terminal.port, terminal_currency="JPY")
    try:
        until(lambda: read_payment(db, payment_id).status == "failed", host)
    finally:
        close(host)
    payment = read_payment(db, payment_id)
    assert payment.display_text and "takes JPY only, not EUR" in payment.display_text
    assert "06 01" not in _commands(yen_terminal)


def test_registration_at_start_and_after_every_reconnect(
    db: Database, demo: Any, yen_host: DeviceHost, yen_terminal: ZvtSimulator
) -> None:
    till = yen_host.tills[0]
    yen_host.terminal(till)
    yen_host.close_devices(till)  # the line went away; the next use reconnects
    yen_host.terminal(till)
    assert _commands(yen_terminal) == ["06 00", "06 00"]
    with db.unit_of_work(readonly=True) as uow:
        status = uow.session.scalars(select(DeviceStatus)).one()
        assert (status.state, status.currency) == ("connected", "JPY")


def test_a_terminal_that_takes_another_currency_than_configured_is_not_used(
    db: Database, demo: Any, yen_terminal: ZvtSimulator
) -> None:
    host = host_for(db, first_till(db, demo), yen_terminal.port, terminal_currency="EUR")
    try:
        with pytest.raises(DeviceError, match="takes JPY, but its terminal_currency is EUR"):
            host.terminal(host.tills[0])
        assert host.tills[0].terminal is None
    finally:
        close(host)
