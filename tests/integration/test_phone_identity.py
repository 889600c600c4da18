"""Identity never from a random UID: a phone tapped twice on the real reader driver (PN532
simulator on a pty) is never two new customers, and never gets a first-purchase offer twice.

ISO/IEC 14443-3 §6.4.4: a single-size (4-byte) NFCID1 whose first byte is 08 is a random ID,
drawn afresh at every anticollision; phones and most bank cards use one.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from drivers.pn532.reader import uid_is_random
from drivers.simulators.pn532 import (
    CLASSIC_1K,
    LOYALTY_PHONE,
    RANDOM_PHONE,
    Pn532Simulator,
    SimulatedTag,
)
from gateway.adapters.db import Database
from gateway.adapters.models import CustomerTap
from gateway.adapters.promotion_models import Customer
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.errors import InvalidInput
from tests.integration.test_device_host import KEY, _until
from tests.integration.test_sales import add_promotion, bank_pays, pay, quote, till_of


def _tap_twice(db: Database, demo: Any, tag: SimulatedTag) -> list[CustomerTap]:
    """Present ``tag``, take it away, present it again: two taps, as a customer makes them."""
    till = till_of(db, demo)
    with Pn532Simulator(baudrate=115200) as reader:
        host = DeviceHost(
            db,
            [TillDevices(till.till_id, till.label, reader_url=reader.port)],
            token_key=KEY,
            heartbeat_seconds=60,
        )
        for n in (1, 2):
            reader.present(tag)  # type: ignore[attr-defined]
            _until(lambda n=n: _taps(db) == n, host)  # type: ignore[misc]
            reader.remove()  # type: ignore[attr-defined]
            host.tills[0].last_tap = None  # a later tap, past the debounce
        host._close(host.tills[0])
    with db.unit_of_work(readonly=True) as uow:
        taps = list(uow.session.scalars(select(CustomerTap).order_by(CustomerTap.id)))
        uow.session.expunge_all()
        return taps


def _taps(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(CustomerTap)) or 0)


def _customers(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(Customer)) or 0)


def test_the_simulated_phone_shows_a_new_random_uid_at_every_tap(db: Database, demo: Any) -> None:
    seen: list[bytes] = []
    till = till_of(db, demo)
    with Pn532Simulator(baudrate=115200, seed=7) as reader:
        host = DeviceHost(
            db, [TillDevices(till.till_id, till.label, reader_url=reader.port)], token_key=KEY
        )
        device = host.reader(host.tills[0])
        for _ in range(3):
            reader.present(RANDOM_PHONE)  # type: ignore[attr-defined]
            event = device.poll(timeout=5)
            assert event is not None
            seen.append(event.uid)
            reader.remove()  # type: ignore[attr-defined]
        host._close(host.tills[0])
    assert all(uid_is_random(uid) for uid in seen)
    assert len(set(seen)) == 3


def test_a_random_uid_phone_tapped_twice_asks_for_the_member_code(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "welcome", "new_customer", {"amount_off_minor": 100})
    taps = _tap_twice(db, demo, RANDOM_PHONE)
    assert [t.token for t in taps] == ["", ""]  # nobody: the UID names no one
    for _ in taps:
        with pytest.raises(InvalidInput, match="member code or scan the wallet QR"):
            quote(db, demo, use_last_tap=True)
    assert _customers(db) == 0  # never a new customer per tap


def test_a_phone_with_the_loyalty_app_is_one_customer_and_gets_the_welcome_once(
    db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "welcome", "new_customer", {"amount_off_minor": 100})
    taps = _tap_twice(db, demo, LOYALTY_PHONE)
    first_token, second_token = (t.token for t in taps)
    assert first_token and first_token == second_token  # the member id, not the UID
    first = quote(db, demo, use_last_tap=True)
    assert first.total_after_minor == 1900  # the first-purchase offer
    payment = pay(db, demo, first.id)
    assert payment is not None
    bank_pays(db, payment)
    second = quote(db, demo, use_last_tap=True)
    assert second.total_after_minor == 2000  # known now: no first-purchase offer again
    assert _customers(db) == 1


def test_a_store_card_with_a_fixed_uid_is_still_recognised(db: Database, demo: Any) -> None:
    taps = _tap_twice(db, demo, CLASSIC_1K)
    assert not uid_is_random(CLASSIC_1K.uid)
    assert taps[0].token and taps[0].token == taps[1].token
