"""Card refunds and reversals never stay "requested": unsent ones fail cleanly, uncertain ones
become "outcome unknown" and are settled from the terminal's records or by a manager, and none
is ever paid out twice (kill -9 of the device host at every step of the refund dialogue).

The real device host (in this process, or as `kassa devices` killed with SIGKILL), the ZVT
driver against the simulator, the watch run by the general worker's handlers, the portal and the
cashier pages over Flask's client; SQLite and PostgreSQL.
"""

from __future__ import annotations

import html
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, Job, Payment, PaymentEvent, Refund
from gateway.domain.money import Money
from gateway.services.devices import cards, refund_outcomes
from gateway.services.payments import refunds
from tests.card_helpers import close, first_till, host_for, read_payment, until
from tests.integration.test_card_never_stuck import (
    FAST,
    RETRY_SECONDS,
    _config,
    _device_host,
    _paid_card_payment,
    _refund,
    _stop,
    refund_status,
    worker,
)
from tests.integration.test_cashier_pages import at_till
from tests.integration.test_portal_pages import log_in, staff
from tests.simulators import SteppedTerminal


@pytest.fixture
def terminal() -> Any:
    with SteppedTerminal(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.05
        simulator.ack_timeout = 0.3
        yield simulator


def _refundable(db: Database, payment_id: str) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return refunds.refundable_minor(uow, uow.session.get_one(Payment, payment_id))


@pytest.mark.parametrize("void", [False, True])
def test_a_refund_no_terminal_was_sent_fails_cleanly_and_is_never_sent(
    db: Database, demo: Any, terminal: SteppedTerminal, void: bool
) -> None:
    """No device host running: the refund (or the reversal carrying it out) was never sent.
    The watch fails it, "no money went back", the amount may be refunded again, and a device
    host that comes back never sends it."""
    payment_id = _paid_card_payment(db, demo, 3000, paid=not void)
    refund_id = _refund(db, demo, payment_id, None if void else Money.parse("12.00", "EUR"))
    run = worker(db, card_refund_wait_seconds=0.2)
    until(lambda: run() >= 0 and refund_status(db, refund_id) == "failed", seconds=60)
    with db.unit_of_work(readonly=True) as uow:
        refund = uow.session.get_one(Refund, refund_id)
        assert refund.failure and "no money went back" in refund.failure
    assert _refundable(db, payment_id) == 3000
    assert read_payment(db, payment_id).status == ("authorised" if void else "paid")

    host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: _device_jobs_done(db), host, 60)
    finally:
        close(host)
    assert refund_status(db, refund_id) == "failed"
    assert terminal.journal == []  # nothing reached the terminal, ever
    again = _refund(db, demo, payment_id, None if void else Money.parse("12.00", "EUR"))
    assert refund_status(db, again) == "requested"  # and it may be given back again


def _device_jobs_done(db: Database) -> bool:
    with db.unit_of_work(readonly=True) as uow:
        kinds = (cards.REFUND_JOB, cards.REVERSE_JOB)
        found = uow.session.scalars(select(Job).where(Job.kind.in_(kinds))).all()
        return bool(found) and all(job.status == "done" for job in found)


@pytest.mark.parametrize(
    ("step", "booked"),
    [("command", False), ("card", True), ("status", True), ("completion", True)],
)
def test_kill_9_of_the_device_host_mid_refund_never_refunds_twice(
    db: Database, demo: Any, tmp_path: Path, terminal: SteppedTerminal, step: str, booked: bool
) -> None:
    """kill -9 at a step of the refund dialogue; the terminal goes on alone. The watch makes
    the refund unknown; the device host, once back, settles it from the last receipt:
    refunded once if the terminal did, else failed (to be refunded again). Never twice."""
    payment_id = _paid_card_payment(db, demo, 3000, paid=True)
    config = _config(tmp_path, terminal)
    terminal.hold_at = step
    refund_id = _refund(db, demo, payment_id, Money.parse("12.00", "EUR"))
    first = _device_host(db, config)
    second = None
    try:
        until(lambda: terminal.held.is_set(), seconds=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(30)
        terminal.go_on.set()
        until(terminal.over.is_set, seconds=30)
        run = worker(db, card_attempt_seconds=0.5)
        until(lambda: run() >= 0 and refund_status(db, refund_id) == "unknown", seconds=60)
        assert _refundable(db, payment_id) == 1800  # still counted: not refundable twice
        second = _device_host(db, config)
        until(lambda: refund_status(db, refund_id) != "unknown", seconds=RETRY_SECONDS)
    finally:
        _stop(first)
        _stop(second)
    assert refund_status(db, refund_id) == ("succeeded" if booked else "failed")
    assert read_payment(db, payment_id).attention is None
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == (
        [("refund", 1200)] if booked else []
    )  # never twice
    assert read_payment(db, payment_id).refunded_minor == (1200 if booked else 0)


def test_an_unknown_refund_the_cashier_sees_and_a_manager_resolves_with_a_note(
    app: Any, db: Database, demo: Any, terminal: SteppedTerminal
) -> None:
    payment_id = _paid_card_payment(db, demo, 3000, paid=True)
    terminal.silent_at = "completion"  # the terminal pays out, its answer never arrives
    refund_id = _refund(db, demo, payment_id, Money.parse("12.00", "EUR"))
    host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: refund_status(db, refund_id) == "unknown", host, 60)
    finally:
        close(host)

    cashier = app.test_client()
    at_till(cashier, demo)
    page = cashier.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    assert "data-refund-unknown" in page and "do not refund again" in page
    assert 'data-refund-status="unknown"' in page

    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    page = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert f'data-resolve-refund="{refund_id}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    path = f"/portal/payments/{payment_id}/resolve-refund"
    form = {"csrf_token": token.group(1), "refund_id": refund_id, "refunded": "yes"}
    refused = manager.post(path, data=form)  # no note
    assert refused.status_code == 303 and refund_status(db, refund_id) == "unknown"
    note = "the terminal's journal shows refund receipt 0001 of 12,00"
    done = manager.post(path, data={**form, "note": note})
    assert done.status_code == 303
    assert refund_status(db, refund_id) == "succeeded"
    payment = read_payment(db, payment_id)
    assert payment.refunded_minor == 1200 and payment.status == "partially_refunded"
    assert payment.attention is None
    with db.unit_of_work(readonly=True) as uow:
        resolved = uow.session.scalars(
            select(PaymentEvent)
            .where(PaymentEvent.payment_id == payment_id)
            .order_by(PaymentEvent.id.desc())
            .limit(1)
        ).one()
        assert resolved.actor.startswith("staff:")
        assert resolved.detail["by"] == "hand" and resolved.detail["note"] == note
        audited = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "refund.resolved_by_hand")
        ).one()
        assert audited.after["note"] == note and audited.after["refunded"] is True
    history = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert note in html.unescape(history) and "data-resolve-refund" not in history
    again = manager.post(path, data={**form, "note": note})  # settled: refused, nothing moves
    assert again.status_code == 303 and read_payment(db, payment_id).refunded_minor == 1200

    # The terminal answers later: the resolution job finds nothing left to ask.
    terminal.speak()
    host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST)
    try:
        until(lambda: _resolve_jobs_done(db), host, RETRY_SECONDS)
    finally:
        close(host)
    assert read_payment(db, payment_id).refunded_minor == 1200
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == [("refund", 1200)]


def _resolve_jobs_done(db: Database) -> bool:
    with db.unit_of_work(readonly=True) as uow:
        jobs = uow.session.scalars(
            select(Job).where(Job.dedupe_key.like("card-resolve-refund:%"))
        ).all()
        return bool(jobs) and all(job.status == "done" for job in jobs)


def test_the_manager_cannot_resolve_a_refund_that_is_not_unknown(db: Database, demo: Any) -> None:
    payment_id = _paid_card_payment(db, demo, 3000, paid=True)
    refund_id = _refund(db, demo, payment_id, Money.parse("5.00", "EUR"))
    from gateway.errors import Conflict, InvalidInput

    with db.unit_of_work() as uow, pytest.raises(Conflict, match="only a refund"):
        refund_outcomes.resolve_by_hand(
            uow, payment_id, refund_id, first_till(db, demo).merchant_id,
            refunded=True, note="sure", actor="staff:m",
        )  # fmt: skip
    with db.unit_of_work() as uow, pytest.raises(InvalidInput, match="has no refund"):
        refund_outcomes.resolve_by_hand(
            uow, payment_id, "nope", first_till(db, demo).merchant_id,
            refunded=True, note="sure", actor="staff:m",
        )  # fmt: skip
