"""The device host against the real drivers and simulators on pty pairs, on SQLite and PostgreSQL.

Card jobs run one at a time per terminal; results, live texts, receipts and heartbeats are
written back; a device host killed mid-authorisation is replaced by one that recovers the truth
from the terminal's journal, and the customer is charged once.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.simulators.pn532 import NTAG215, PAYMENT_CARD, Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.framing import LinkTimings
from gateway.adapters.db import Database
from gateway.adapters.models import CustomerTap, DeviceStatus, Payment, Refund, utcnow
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.services import jobs
from gateway.services.devices import cards, outcomes
from gateway.services.payments import cancellation, payment_reads, refunds
from gateway.services.payments.lifecycle import move_payment
from gateway.services.staff.auth import TillContext, authenticate_till
from tests.simulators import PinPadTerminal

KEY = b"test-tag-token-key"


# The ZVT link's T2 (§3.4.2): how long a terminal waits for a living ECR's ACK.
ZVT_ACK_SECONDS = LinkTimings().t2


def _till(db: Database, demo: dict[str, Any]) -> TillContext:
    with db.unit_of_work(readonly=True) as uow:
        return authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")


def _card_payment(db: Database, till: TillContext, amount: str = "23.45") -> str:
    with db.unit_of_work() as uow:
        payment = cards.create_card_payment(uow, till, money=Money.parse(amount, "EUR"))
        uow.commit()
        return payment.id


def _payment(db: Database, payment_id: str) -> Payment:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        uow.session.expunge(payment)
        return payment


def _until(check: Callable[[], bool], host: DeviceHost | None = None, seconds: float = 120) -> None:
    """Poll (stepping ``host``) until ``check()``; ``seconds`` is a ceiling for a loaded
    machine, not a deadline the product must meet."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if host is not None:
            host.step()
        if check():
            return
        time.sleep(0.01)
    raise AssertionError(f"not true after {seconds} s: {check.__doc__ or check}")


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        yield simulator  # type: ignore[misc]


@pytest.fixture
def pin_pad_terminal() -> Iterator[PinPadTerminal]:
    with PinPadTerminal(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        simulator.pin_delay = 0.1  # once the test has killed the host and says pin_typed
        yield simulator


@pytest.fixture
def host(db: Database, demo: Any, terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    till = _till(db, demo)
    device_host = DeviceHost(
        db,
        [
            TillDevices(
                till.till_id, till.label, terminal_url=terminal.port, terminal_baudrate=115200
            )
        ],
        token_key=KEY,
        heartbeat_seconds=0.2,
    )
    yield device_host
    for devices in device_host.tills:
        device_host._close(devices)


def test_approved_card_payment(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = _card_payment(db, _till(db, demo))

    def authorised() -> bool:
        """the payment is authorised"""
        return _payment(db, payment_id).status == "authorised"

    _until(authorised, host)
    payment = _payment(db, payment_id)
    assert payment.display_text == "Approved"
    assert payment.card is not None
    assert payment.card["masked_pan"] and "*" in payment.card["masked_pan"]
    assert payment.card["receipt_number"] == terminal.journal[0].receipt_number
    assert payment.receipt_text
    assert [b.amount_minor for b in terminal.journal] == [2345]
    with db.unit_of_work(readonly=True) as uow:
        kinds = [
            e.kind for e in payment_reads.get_payment(uow, payment_id, payment.merchant_id).events
        ]
    assert kinds == ["created", "sent_to_terminal", "card_approved"]


def test_declined_card_payment_says_why(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    terminal.decline_next = 0x05
    payment_id = _card_payment(db, _till(db, demo))
    _until(lambda: _payment(db, payment_id).status == "failed", host)
    payment = _payment(db, payment_id)
    assert payment.card and payment.card["result_code"] == 0x05
    assert payment.display_text and payment.display_text == payment.card["message"]
    assert payment.display_text.startswith("declined by the card issuer")
    assert terminal.journal == []


def test_refund_reversal_and_end_of_day_go_through_the_terminal(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    till = _till(db, demo)
    first = _card_payment(db, till, "10.00")
    _until(lambda: _payment(db, first).status == "authorised", host)
    with db.unit_of_work() as uow:  # cancelling an approved card payment reverses it
        cancellation.cancel_payment(uow, first, till.merchant_id, "staff:cashier")
        uow.commit()
    _until(lambda: _payment(db, first).status == "cancelled", host)

    second = _card_payment(db, till, "8.00")
    _until(lambda: _payment(db, second).status == "authorised", host)
    with db.unit_of_work() as uow:  # the day's batch: approved card payments become paid
        jobs.enqueue(uow, cards.END_OF_DAY_JOB, {}, queue=cards.device_queue(till.till_id))
        uow.commit()
    _until(lambda: _payment(db, second).status == "paid", host)
    with db.unit_of_work() as uow:
        refunds.request_refund(
            uow,
            second,
            till.merchant_id,
            amount=Money.parse("3.00", "EUR"),
            reason=None,
            actor="staff:cashier",
        )
        uow.commit()

    def refunded() -> bool:
        """the terminal refunded 3.00"""
        return _payment(db, second).refunded_minor == 300

    _until(refunded, host)
    assert _payment(db, second).status == "partially_refunded"
    kinds = [b.kind for b in terminal.journal]
    assert kinds.count("authorisation") == 2 and "reversal" in kinds and "refund" in kinds
    with db.unit_of_work(readonly=True) as uow:
        assert {r.status for r in uow.session.scalars(select(Refund))} == {"succeeded"}


def test_heartbeat_reports_each_device_to_the_portal(
    app: Any, db: Database, demo: Any, host: DeviceHost
) -> None:
    from tests.integration.test_portal_pages import log_in, staff

    host.heartbeat()
    _card_payment(db, _till(db, demo))
    _until(lambda: True, host, seconds=0.5)
    with db.unit_of_work(readonly=True) as uow:
        status = uow.session.scalars(select(DeviceStatus)).one()
        assert (status.kind, status.state) == ("card_terminal", "connected")
    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    page = manager.get("/portal/devices").get_data(as_text=True)
    assert 'data-device-state="connected"' in page and "Card terminal" in page


def test_nfc_tap_stores_a_keyed_token_never_the_uid(db: Database, demo: Any) -> None:
    till = _till(db, demo)
    with Pn532Simulator(baudrate=115200) as reader:
        device_host = DeviceHost(
            db,
            [TillDevices(till.till_id, till.label, reader_url=reader.port)],
            token_key=KEY,
            heartbeat_seconds=60,
        )
        reader.present(NTAG215)  # type: ignore[attr-defined]

        def tapped() -> bool:
            """a tap is recorded"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.scalars(select(CustomerTap)).first() is not None

        _until(tapped, device_host)
        reader.present(PAYMENT_CARD)  # type: ignore[attr-defined]
        _until(lambda: _taps(db) == 2, device_host)
        device_host._close(device_host.tills[0])
    with db.unit_of_work(readonly=True) as uow:
        ntag, card = uow.session.scalars(select(CustomerTap).order_by(CustomerTap.id)).all()
        assert ntag.token == device_host.tag_token(NTAG215.uid)
        assert NTAG215.uid.hex() not in ntag.token and ntag.kind != "iso_dep"
        assert card.kind == "iso_dep" and "VISA DEBIT" in card.applications


def _taps(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return len(uow.session.scalars(select(CustomerTap)).all())


def test_device_host_killed_mid_authorisation_never_charges_twice(
    db: Database, demo: Any, tmp_path: Path, pin_pad_terminal: PinPadTerminal
) -> None:
    terminal = pin_pad_terminal
    terminal.ack_timeout = 0.3  # the terminal soon stops waiting for the dead ECR's ACK
    config = tmp_path / "devices.toml"
    config.write_text(
        "[devices]\nsimulated = false\nheartbeat_seconds = 1\ntag_token_key = 'k'\n"
        f"log_dir = '{tmp_path / 'device-logs'}'\n"
        "[[devices.tills]]\nstore = 'Berlin Mitte'\ntill = 'T01'\n"
        f"terminal_url = '{terminal.port}'\nterminal_baudrate = 115200\nreader_url = ''\n"
    )
    env = {**os.environ, "KASSA_CONFIG": str(config), "KASSA_DATABASE_URL": db.url}
    command = [sys.executable, "-m", "gateway.entrypoints.cli", "devices"]
    payment_id = _card_payment(db, _till(db, demo), "42.00")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _until(lambda: terminal.phase == "pin")
        os.kill(first.pid, signal.SIGKILL)  # kill -9 while the customer types the PIN
        first.wait(60)
        terminal.pin_typed.set()  # the customer finishes at the terminal, without the host
        _until(lambda: len(terminal.journal) == 1)  # the terminal books it alone
        terminal.ack_timeout = ZVT_ACK_SECONDS  # a living ECR's ACK is waited for as usual
        assert _payment(db, payment_id).status == "pending"
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            # The second host first makes the interrupted payment ``unknown`` (committed), then
            # its resolution job asks the terminal for the last receipt: on a loaded machine
            # the poll can see the first step, so it waits for the settled outcome.
            _until(lambda: _payment(db, payment_id).status not in ("pending", "unknown"))
        finally:
            second.terminate()
            second.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    payment = _payment(db, payment_id)
    assert payment.status == "authorised"
    assert payment.card and payment.card["receipt_number"] == terminal.journal[0].receipt_number
    assert [b.kind for b in terminal.journal] == ["authorisation"]  # charged exactly once


def test_device_host_killed_mid_refund_never_refunds_twice(
    db: Database, demo: Any, tmp_path: Path, pin_pad_terminal: PinPadTerminal
) -> None:
    """The same for a refund: the terminal pays the customer back alone after the host dies;
    the next host asks for the last receipt instead of refunding again."""
    terminal = pin_pad_terminal
    terminal.ack_timeout = 0.3
    config = tmp_path / "devices.toml"
    config.write_text(
        "[devices]\nsimulated = false\nheartbeat_seconds = 1\ntag_token_key = 'k'\n"
        f"log_dir = '{tmp_path / 'device-logs'}'\n"
        "[[devices.tills]]\nstore = 'Berlin Mitte'\ntill = 'T01'\n"
        f"terminal_url = '{terminal.port}'\nterminal_baudrate = 115200\nreader_url = ''\n"
    )
    env = {**os.environ, "KASSA_CONFIG": str(config), "KASSA_DATABASE_URL": db.url}
    command = [sys.executable, "-m", "gateway.entrypoints.cli", "devices"]
    till = _till(db, demo)
    payment_id = _card_payment(db, till, "30.00")
    approved = cards.TerminalOutcome(
        approved=True, result_code=0, message="Approved", amount_minor=3000, receipt_number=900
    )
    with db.unit_of_work() as uow:
        cards.apply_charge(uow, payment_id, approved, "test")
        payment = uow.session.get_one(Payment, payment_id)  # the day's batch closed: paid
        move_payment(uow, payment, PaymentStatus.PAID, "card_batch_closed", "test")
        refund = refunds.request_refund(
            uow,
            payment_id,
            till.merchant_id,
            amount=Money.parse("12.00", "EUR"),
            reason=None,
            actor="test",
        )
        uow.commit()
        refund_id = refund.id

    def refund_status() -> str:
        with db.unit_of_work(readonly=True) as uow:
            return uow.session.get_one(Refund, refund_id).status

    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        _until(lambda: terminal.phase == "pin")
        os.kill(first.pid, signal.SIGKILL)  # kill -9 while the customer is at the terminal
        first.wait(60)
        terminal.pin_typed.set()  # the customer finishes at the terminal, without the host
        _until(lambda: len(terminal.journal) == 1)  # the terminal refunds alone
        terminal.ack_timeout = ZVT_ACK_SECONDS  # a living ECR's ACK is waited for as usual
        assert refund_status() == "requested"
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            # On a loaded machine the second host's first question may go unanswered: the
            # refund is then ``unknown`` for a while, and settled by its next question.
            _until(lambda: refund_status() in ("succeeded", "failed"))
        finally:
            second.terminate()
            second.wait(60)
    finally:
        if first.poll() is None:
            first.kill()
    assert [b.kind for b in terminal.journal] == ["refund"]  # paid back exactly once
    with db.unit_of_work(readonly=True) as uow:
        done = uow.session.get_one(Refund, refund_id)
        assert done.status == "succeeded"
        assert done.bank_refund_id == f"receipt-{terminal.journal[0].receipt_number}"
        assert uow.session.get_one(Payment, payment_id).refunded_minor == 1200


def test_a_receipt_already_booked_as_a_refund_is_not_taken_for_a_charge(
    db: Database, demo: Any
) -> None:
    """Charge recovery reads the terminal's last receipt; if that receipt is a refund Kassa
    already recorded (same amount by chance), the interrupted charge did not happen."""
    till = _till(db, demo)
    paid_id = _card_payment(db, till, "5.00")
    approved = cards.TerminalOutcome(
        approved=True, result_code=0, message="Approved", amount_minor=500, receipt_number=76
    )
    with db.unit_of_work() as uow:
        cards.apply_charge(uow, paid_id, approved, "test")
        payment = uow.session.get_one(Payment, paid_id)
        move_payment(uow, payment, PaymentStatus.PAID, "card_batch_closed", "test")
        refund = refunds.request_refund(
            uow,
            paid_id,
            till.merchant_id,
            amount=Money.parse("5.00", "EUR"),
            reason=None,
            actor="test",
        )
        uow.commit()
    with db.unit_of_work() as uow:
        refunds.record_bank_result(
            uow, refund_id=refund.id, succeeded=True, bank_refund_id="receipt-77",
            amount_minor=500, currency="EUR", reason=None,
        )  # fmt: skip
        uow.commit()
    pending = _card_payment(db, till, "5.00")
    with db.unit_of_work() as uow:
        cards.begin_attempt(uow, pending)
        last = cards.TerminalOutcome(
            approved=True, result_code=0, message="Approved", amount_minor=500,
            receipt_number=77, timestamp=utcnow(),
        )  # fmt: skip
        verdict = outcomes.judge(uow, uow.session.get_one(Payment, pending), last)
    assert verdict == outcomes.Verdict.NOT_CHARGED


@pytest.mark.parametrize(
    ("entry", "link"),
    [
        ({"terminal_url": "/dev/ttyUSB0"}, "serial"),
        ({"terminal_url": "rfc2217://10.0.0.9:4001"}, "serial"),
        ({"terminal_url": "socket://10.0.0.5:20007"}, "tcp"),
        ({"terminal_url": "socket://10.0.0.6:7000", "terminal_link": "serial"}, "serial"),
    ],
)
def test_the_terminal_link_follows_the_url_unless_set(entry: dict[str, str], link: str) -> None:
    from gateway.entrypoints.device_host import terminal_link
    from gateway.settings import TillDeviceSettings

    assert terminal_link(TillDeviceSettings(store="S", till="T", **entry)) == link  # type: ignore[arg-type]


def test_a_bad_terminal_link_is_a_configuration_error() -> None:
    from gateway.config import load_config
    from gateway.errors import ConfigurationError

    till = {"store": "S", "till": "T", "terminal_url": "/dev/ttyS0", "terminal_link": "usb"}
    with pytest.raises(ConfigurationError, match=r"\[devices\] tills\.0\.terminal_link: Input"):
        load_config(env={}, overrides={"devices": {"tills": [till]}})


def test_a_card_payment_through_a_terminal_on_its_lan_port(db: Database, demo: Any) -> None:
    """ZVT over TCP/IP (unframed APDUs) to a terminal's own port, as configured with
    terminal_url = socket://…, which defaults terminal_link to tcp (the RS-232 framing there
    never gets an answer: checked by hand)."""
    from drivers.simulators.zvt import ZvtTcpSimulator
    from gateway.entrypoints.device_host import terminal_link
    from gateway.settings import TillDeviceSettings

    with ZvtTcpSimulator() as terminal:
        till = _till(db, demo)
        devices = TillDevices(
            till.till_id,
            till.label,
            terminal_url=terminal.port,
            terminal_link=terminal_link(
                TillDeviceSettings(store="Berlin Mitte", till="T01", terminal_url=terminal.port)
            ),
        )
        host = DeviceHost(db, [devices], token_key=KEY, heartbeat_seconds=0.2)
        try:
            payment_id = _card_payment(db, till, "19.99")
            _until(lambda: _payment(db, payment_id).status == "authorised", host)
        finally:
            host._close(devices)
    payment = _payment(db, payment_id)
    assert payment.card and payment.card["masked_pan"] == "6799********0019"
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == [("authorisation", 1999)]
