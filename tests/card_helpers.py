"""Helpers for tests that drive the device host against a simulated terminal."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from gateway.adapters.db import Database
from gateway.adapters.models import Payment
from gateway.domain.money import Money
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.services.devices import cards
from gateway.services.staff.auth import TillContext, authenticate_till

KEY = b"test-tag-token-key"


def first_till(db: Database, demo: dict[str, Any], index: int = 0) -> TillContext:
    with db.unit_of_work(readonly=True) as uow:
        return authenticate_till(uow, f"Bearer {demo['tills'][index]['api_key']}")


def card_payment(db: Database, till: TillContext, amount: str = "23.45", cur: str = "EUR") -> str:
    with db.unit_of_work() as uow:
        payment = cards.create_card_payment(uow, till, money=Money.parse(amount, cur))
        uow.commit()
        return payment.id


def approved_card_payment(db: Database, till: TillContext, amount: str, receipt: int) -> str:
    """A card payment the terminal approved with ``receipt`` (its attempt recorded and its
    answer applied, no terminal)."""
    payment_id = card_payment(db, till, amount)
    with db.unit_of_work() as uow:
        cards.begin_attempt(uow, payment_id)
        outcome = cards.TerminalOutcome(
            approved=True, result_code=0, message="Approved",
            amount_minor=Money.parse(amount, "EUR").minor, receipt_number=receipt,
        )  # fmt: skip
        cards.apply_charge(uow, payment_id, outcome, "test")
        uow.commit()
    return payment_id


def read_payment(db: Database, payment_id: str) -> Payment:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        uow.session.expunge(payment)
        return payment


def status_of(db: Database, payment_id: str) -> str:
    return read_payment(db, payment_id).status


def until(check: Callable[[], bool], host: DeviceHost | None = None, seconds: float = 20) -> None:
    """Step the host (if any) until ``check`` holds; a generous ceiling, never a deadline."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if host is not None:
            host.step()
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not true after {seconds} s: {check.__doc__ or check}")


def host_for(db: Database, till: TillContext, terminal_url: str, **devices: Any) -> DeviceHost:
    """A device host owning the till's terminal at ``terminal_url`` (115200 baud ptys)."""
    devices.setdefault("terminal_baudrate", 115200)
    return DeviceHost(
        db,
        [TillDevices(till.till_id, till.label, terminal_url=terminal_url, **devices)],
        token_key=KEY,
        heartbeat_seconds=0.2,
    )


def close(host: DeviceHost) -> None:
    for devices in host.tills:
        host.close_devices(devices)
