"""No outage leaves a card payment pending, a till locked or a refund silently waiting, and none
charges or refunds twice.

The real device host (in this process, or as `kassa devices` killed with SIGKILL) and the ZVT
driver against the simulator; the watch job run by the general worker's handlers; SQLite and
PostgreSQL. Steps of a payment are held by the simulator until the test lets it go on, so no
clock decides what a test sees.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from drivers.zvt.framing import LinkTimings
from drivers.zvt.protocol import Timeouts
from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, PaymentEvent, Refund
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.entrypoints.device_host import DeviceHost
from gateway.errors import Conflict
from gateway.services import jobs
from gateway.services.devices import cards
from gateway.services.payments import refunds
from gateway.services.payments.lifecycle import move_payment
from gateway.services.registry import job_handlers
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until
from tests.conftest import app_config
from tests.integration.test_portal_pages import log_in, staff
from tests.simulators import SteppedTerminal

FAST = {"timeouts": Timeouts(t3=1.0, t4=1.0), "link_timings": LinkTimings(t2=0.3)}
RETRY_SECONDS = 120  # a job that met a silent terminal is tried again after 1–3 s, 2–6 s, …


# The ZVT link's T2 (§3.4.2): how long a terminal waits for a living ECR's ACK.
ZVT_ACK_SECONDS = LinkTimings().t2


@pytest.fixture
def terminal() -> Iterator[SteppedTerminal]:
    with SteppedTerminal(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.05
        simulator.ack_timeout = 0.3  # it soon stops waiting for a dead ECR's ACK
        yield simulator


def worker(db: Database, **devices: float) -> Any:
    """One pass of `kassa worker` (its real job handlers) with these [devices] deadlines."""
    handlers = job_handlers(app_config(db, devices=devices))
    return lambda: jobs.run_due_jobs(db, handlers)


def events(db: Database, payment_id: str) -> list[dict[str, Any]]:
    """The details of the payment's history entries, oldest first."""
    with db.unit_of_work(readonly=True) as uow:
        rows = uow.session.scalars(
            select(PaymentEvent.detail)
            .where(PaymentEvent.payment_id == payment_id)
            .order_by(PaymentEvent.id)
        )
        return [dict(detail) for detail in rows]


def till_is_free(db: Database, demo: Any) -> bool:
    """A new card sale is taken at the till (and rolled back: nothing is charged)."""
    with db.unit_of_work() as uow:
        cards.create_card_payment(uow, first_till(db, demo), money=Money.parse("1.00", "EUR"))
    return True


@pytest.mark.parametrize("claimed", [False, True])
def test_a_payment_no_device_host_sends_fails_cleanly_and_is_never_sent(
    app: Any, db: Database, demo: Any, terminal: SteppedTerminal, claimed: bool
) -> None:
    """No device host running (``claimed``: one took the job and died before its attempt):
    no attempt is recorded, so no byte of the payment reached a terminal. The watch fails it,
    "no money taken", and frees the till; a device host that comes back never sends it."""
    from tests.integration.test_cashier_pages import at_till

    till = first_till(db, demo)
    payment_id = card_payment(db, till, "42.00")
    with pytest.raises(Conflict, match="busy"):
        till_is_free(db, demo)
    if claimed:
        with db.unit_of_work() as uow:
            job = uow.session.scalars(select(Job).where(Job.kind == cards.CHARGE_JOB)).one()
            job.status, job.locked_by = "running", "dead-device-host"
            uow.commit()
    run = worker(db, card_pickup_seconds=0.2)
    until(lambda: run() >= 0 and read_payment(db, payment_id).status == "failed", seconds=60)
    payment = read_payment(db, payment_id)
    assert payment.display_text and "no money was taken" in payment.display_text
    assert payment.attention is None
    last = events(db, payment_id)[-1]
    assert last["charged"] is False and last["charge_job"] == ("running" if claimed else "pending")
    assert "terminal not reachable, no money taken" in last["reason"]
    assert till_is_free(db, demo)
    cashier = app.test_client()
    at_till(cashier, demo)
    page = cashier.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert "no money was taken" in page

    # The device host comes back: the old charge job finds the payment failed and never sends
    # it. The next sale goes through as usual.
    nextone = card_payment(db, till, "3.00")
    host = host_for(db, till, terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        host.take_over_interrupted_jobs()
        until(lambda: read_payment(db, nextone).status == "authorised", host, 60)
    finally:
        close(host)
    assert read_payment(db, payment_id).status == "failed"
    assert [b.amount_minor for b in terminal.journal] == [300]
    assert not any(a.data[1:7] == bytes.fromhex("000000004200") for a in terminal.received)


def test_a_payment_given_up_mid_attempt_takes_the_terminals_late_answer(
    db: Database, demo: Any, terminal: SteppedTerminal
) -> None:
    """The watch gives up while the customer is still at the terminal (a slow PIN): the
    terminal's own answer, when it comes, settles the payment."""
    till = first_till(db, demo)
    terminal.hold_at = "pin"
    payment_id = card_payment(db, till, "12.00")
    host = host_for(db, till, terminal.port, timezone="Europe/Berlin")
    run = worker(db, card_attempt_seconds=0.2)
    with running(host):
        until(lambda: terminal.held.is_set())
        until(lambda: run() >= 0 and read_payment(db, payment_id).status == "unknown")
        terminal.go_on.set()
        until(lambda: read_payment(db, payment_id).status != "unknown", seconds=60)
    payment = read_payment(db, payment_id)
    assert payment.status == "authorised" and payment.attention is None
    assert payment.card and payment.card["receipt_number"] == terminal.journal[0].receipt_number
    assert events(db, payment_id)[-1]["by"] == "terminal_answer"


@contextmanager
def running(host: DeviceHost) -> Iterator[None]:
    """The device host's loop in a thread (its jobs block while the terminal talks)."""
    stop = threading.Event()
    thread = threading.Thread(target=host.run, args=(stop.is_set,), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(60)


def _config(tmp_path: Path, terminal: SteppedTerminal) -> Path:
    config = tmp_path / "devices.toml"
    config.write_text(
        "[devices]\nsimulated = false\nheartbeat_seconds = 1\ntag_token_key = 'k'\n"
        f"log_dir = '{tmp_path / 'device-logs'}'\n"
        "[[devices.tills]]\nstore = 'Berlin Mitte'\ntill = 'T01'\n"
        f"terminal_url = '{terminal.port}'\nterminal_baudrate = 115200\nreader_url = ''\n"
        "terminal_timeout_seconds = 2\n"
    )
    return config


def _device_host(db: Database, config: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KASSA_CONFIG": str(config), "KASSA_DATABASE_URL": db.url}
    command = [sys.executable, "-m", "gateway.entrypoints.cli", "devices"]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        process.terminate()
        process.wait(30)


@pytest.mark.parametrize(
    ("step", "booked"),
    [
        # The authorisation sent, not yet acknowledged: the terminal cannot confirm it to the
        # dead ECR and gives up without booking.
        ("command", False),
        # From here the customer goes on at the terminal alone, and it books the payment.
        ("card", True),  # after the intermediate status "Insert card"
        ("status", True),  # before the Status-Information
        ("completion", True),  # the Status-Information acknowledged (booked), no Completion
    ],
)
def test_kill_9_of_the_device_host_at_any_step_never_charges_twice_or_locks_the_till(
    db: Database, demo: Any, tmp_path: Path, terminal: SteppedTerminal, step: str, booked: bool
) -> None:
    """kill -9 at a step of the dialogue; nobody restarts the device host for a while. The
    watch calls the outcome unknown and frees the till; the device host, once back, settles it
    from the terminal's last receipt: charged once if the terminal booked it, else not."""
    till = first_till(db, demo)
    config = _config(tmp_path, terminal)
    terminal.hold_at = step
    payment_id = card_payment(db, till, "42.00")
    first = _device_host(db, config)
    second = None
    try:
        until(lambda: terminal.held.is_set(), seconds=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        terminal.go_on.set()  # the customer finishes at the terminal, without the host
        until(terminal.over.is_set, seconds=30)
        # The dead ECR was given up on; the next device host's ACKs are waited for as usual
        # (0.3 s is a deadline a loaded machine's new process can miss).
        terminal.ack_timeout = ZVT_ACK_SECONDS
        run = worker(db, card_attempt_seconds=0.5)
        until(lambda: run() >= 0 and read_payment(db, payment_id).status == "unknown")
        assert till_is_free(db, demo)
        second = _device_host(db, config)
        until(lambda: read_payment(db, payment_id).status != "unknown", seconds=RETRY_SECONDS)
    finally:
        _stop(first)
        _stop(second)
    payment = read_payment(db, payment_id)
    assert payment.attention is None
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == (
        [("authorisation", 4200)] if booked else []
    )  # never twice
    assert payment.status == ("authorised" if booked else "failed")
    if booked:
        assert payment.card and payment.card["receipt_number"] == terminal.journal[0].receipt_number


def test_kill_9_after_the_attempt_is_recorded_before_a_byte_is_sent(
    db: Database, demo: Any, terminal: SteppedTerminal
) -> None:
    """The state a device host leaves when it dies between recording its attempt and sending:
    the outcome is unknown (the watch says so, the till is free), and the terminal's records
    (no receipt newer than the attempt) show it was not charged."""
    till = first_till(db, demo)
    payment_id = card_payment(db, till, "42.00")
    with db.unit_of_work() as uow:
        cards.begin_attempt(uow, payment_id)
        uow.commit()
    run = worker(db, card_attempt_seconds=0.2)
    until(lambda: run() >= 0 and read_payment(db, payment_id).status == "unknown")
    assert till_is_free(db, demo)
    host = host_for(db, till, terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: read_payment(db, payment_id).status != "unknown", host, 60)
    finally:
        close(host)
    assert read_payment(db, payment_id).status == "failed"
    assert events(db, payment_id)[-1] == {"by": "last_receipt", "charged": False}
    assert terminal.journal == []


# -- refunds and reversals ---------------------------------------------------------------------


def _paid_card_payment(db: Database, demo: Any, amount_minor: int, *, paid: bool) -> str:
    payment_id = card_payment(db, first_till(db, demo), f"{amount_minor / 100:.2f}")
    approved = cards.TerminalOutcome(
        approved=True,
        result_code=0,
        message="Approved",
        amount_minor=amount_minor,
        receipt_number=900,
    )
    with db.unit_of_work() as uow:
        cards.apply_charge(uow, payment_id, approved, "test")
        if paid:  # the day's batch closed
            payment = uow.session.get_one(Payment, payment_id)
            move_payment(uow, payment, PaymentStatus.PAID, "card_batch_closed", "test")
        uow.commit()
    return payment_id


def _refund(db: Database, demo: Any, payment_id: str, amount: Money | None) -> str:
    with db.unit_of_work() as uow:
        refund = refunds.request_refund(
            uow,
            payment_id,
            first_till(db, demo).merchant_id,
            amount=amount,
            reason=None,
            actor="staff:cashier",
        )
        uow.commit()
        return refund.id


def refund_status(db: Database, refund_id: str) -> str:
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.get_one(Refund, refund_id).status


def test_a_refund_the_terminal_cannot_take_is_flagged_retried_and_done_once(
    app: Any, db: Database, demo: Any, terminal: SteppedTerminal
) -> None:
    from tests.integration.test_cashier_pages import at_till

    payment_id = _paid_card_payment(db, demo, 3000, paid=True)
    terminal.fall_silent()  # unplugged before a byte of the refund is sent
    refund_id = _refund(db, demo, payment_id, Money.parse("12.00", "EUR"))
    host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(
            lambda: "waits for the terminal" in (read_payment(db, payment_id).attention or ""), host
        )
        assert refund_status(db, refund_id) == "requested"
        with db.unit_of_work(readonly=True) as uow:
            job = uow.session.scalars(select(Job).where(Job.kind == cards.REFUND_JOB)).one()
            assert job.status == "pending" and job.max_attempts >= 1000  # tried for weeks
        cashier = app.test_client()
        at_till(cashier, demo)
        page = cashier.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
        assert "waits for the terminal" in page
        manager = app.test_client()
        log_in(manager, *staff(demo, "manager"))
        page = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
        assert "waits for the terminal" in page
        terminal.speak()
        until(lambda: refund_status(db, refund_id) != "requested", host, RETRY_SECONDS)
    finally:
        close(host)
    assert refund_status(db, refund_id) == "succeeded"
    assert read_payment(db, payment_id).attention is None
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == [("refund", 1200)]


@pytest.mark.parametrize(
    ("step", "booked"), [("command", False), ("pin", True), ("status", True), ("completion", True)]
)
def test_a_refund_cut_off_mid_dialogue_is_unknown_then_settled_from_the_last_receipt(
    db: Database, demo: Any, terminal: SteppedTerminal, step: str, booked: bool
) -> None:
    """The line breaks at a step of the refund (unplugged); from "pin" on the terminal pays
    the customer back alone. The refund's outcome is unknown at once (counted, flagged); once
    the terminal answers, its last receipt settles it: refunded once, or not at all."""
    payment_id = _paid_card_payment(db, demo, 3000, paid=True)
    terminal.silent_at = step
    refund_id = _refund(db, demo, payment_id, Money.parse("12.00", "EUR"))
    host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: refund_status(db, refund_id) == "unknown", host, 60)
        assert "outcome unknown" in (read_payment(db, payment_id).attention or "")
        with db.unit_of_work() as uow:  # still counted: never given back twice
            payment = uow.session.get_one(Payment, payment_id)
            assert refunds.refundable_minor(uow, payment) == 1800
        terminal.speak()
        until(lambda: refund_status(db, refund_id) != "unknown", host, RETRY_SECONDS)
    finally:
        close(host)
    assert refund_status(db, refund_id) == ("succeeded" if booked else "failed")
    assert read_payment(db, payment_id).attention is None
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == (
        [("refund", 1200)] if booked else []
    )


def test_a_void_cut_off_mid_dialogue_is_settled_from_the_last_receipt(
    db: Database, demo: Any, terminal: SteppedTerminal
) -> None:
    """A refund of an open-batch payment is a reversal; the line breaks after the terminal
    booked it. The refund is unknown at once; the terminal's last receipt, once it answers,
    shows the reversal: reversed once, the refund succeeded."""
    till = first_till(db, demo)
    payment_id = card_payment(db, till, "20.00")
    host = host_for(db, till, terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: read_payment(db, payment_id).status == "authorised", host)
        terminal.silent_at = "completion"  # the reversal booked, its Completion never sent
        refund_id = _refund(db, demo, payment_id, None)
        until(lambda: refund_status(db, refund_id) == "unknown", host, 60)
        until(lambda: len(terminal.journal) == 2)  # it reversed alone
        terminal.speak()
        until(lambda: refund_status(db, refund_id) != "unknown", host, RETRY_SECONDS)
    finally:
        close(host)
    assert refund_status(db, refund_id) == "succeeded"
    payment = read_payment(db, payment_id)
    assert payment.status == "cancelled" and payment.attention is None
    assert [b.kind for b in terminal.journal] == ["authorisation", "reversal"]
