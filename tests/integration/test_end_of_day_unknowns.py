"""End of day settles card refunds and reversals whose answer was lost, jointly with payments.

The real device host and ZVT driver against the simulator on a pty, SQLite and PostgreSQL. A
refund (06 31) or the reversal carrying it out (06 30) gets no answer; meanwhile another
cash register books and reverses at the same terminal, so the last receipt cannot tell; the
end of day's totals then settle it when exactly one answer fits, and leave it to a manager,
saying so, when more than one does.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from drivers.transport import Transport
from drivers.zvt import CardTerminal
from gateway.adapters.db import Database
from gateway.adapters.models import CardBatch, Payment, Refund
from gateway.domain.money import Money
from gateway.entrypoints.device_host import DeviceHost
from gateway.services.devices import cards, end_of_day, outcomes
from tests.card_helpers import (
    approved_card_payment,
    card_payment,
    first_till,
    read_payment,
    until,
)
from tests.integration import test_card_outcomes
from tests.integration.test_card_never_stuck import (
    RETRY_SECONDS,
    _paid_card_payment,
    _refund,
    events,
    refund_status,
)
from tests.integration.test_cashier_pages import at_till
from tests.integration.test_decline_texts import speaking
from tests.integration.test_end_of_day import _batches
from tests.integration.test_portal_pages import log_in, staff
from tests.simulators import SteppedTerminal

# The fixtures of the card outcome tests: a SteppedTerminal on a pty and its device host with
# short protocol timeouts (a silent terminal is noticed within about a second).
terminal = test_card_outcomes.terminal
host = test_card_outcomes.host


def _authorised(db: Database, demo: Any, host: DeviceHost, amount: str) -> str:
    payment_id = card_payment(db, first_till(db, demo), amount)
    until(lambda: read_payment(db, payment_id).status == "authorised", host)
    return payment_id


def _receipt_cannot_tell(
    db: Database, host: DeviceHost, terminal: SteppedTerminal, payment_id: str
) -> None:
    """Another cash register books and reverses a payment at the terminal, so its last
    receipt is a booking Kassa does not know (and the batch's totals stay as they were);
    the device host then gives the unknown refund up to the end of day or a manager."""
    host.close_devices(host.tills[0])
    terminal.speak()
    stranger = CardTerminal(Transport(terminal.port, baudrate=115200).open())
    try:
        charged = stranger.charge(777)
        assert charged.approved and charged.receipt_number is not None
        assert stranger.reverse(charged.receipt_number).approved
    finally:
        stranger.transport.close()
    _jobs_due(db, "card-resolve%")  # ask it now, not after the backoff that met its silence
    until(
        lambda: "cannot tell" in (read_payment(db, payment_id).attention or ""),
        host,
        RETRY_SECONDS,
    )


def _end_of_day(db: Database, demo: Any, host: DeviceHost, batches: int = 1) -> CardBatch:
    till = first_till(db, demo)
    with db.unit_of_work() as uow:
        end_of_day.request_end_of_day(uow, till.till_id, till.merchant_id, "test")
        uow.commit()
    until(lambda: len(_batches(db)) == batches, host)
    return _batches(db)[-1]


@pytest.mark.parametrize("booked", [True, False])
def test_end_of_day_settles_a_reversal_whose_answer_was_lost(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: SteppedTerminal, booked: bool
) -> None:
    kept = _authorised(db, demo, host, "3.00")
    payment_id = _authorised(db, demo, host, "10.00")
    if booked:
        terminal.silent_at = "completion"  # it reverses; its answer never arrives
    else:
        terminal.fall_silent()  # the reversal never reaches it
    refund_id = _refund(db, demo, payment_id, None)  # in the open batch: a reversal
    until(lambda: refund_status(db, refund_id) == "unknown", host, RETRY_SECONDS)
    _receipt_cannot_tell(db, host, terminal, payment_id)
    assert refund_status(db, refund_id) == "unknown"

    batch = _end_of_day(db, demo, host)
    assert batch.difference is None
    assert (batch.terminal_total_minor, batch.terminal_count) == ((300, 1) if booked else (1300, 2))
    assert batch.payment_ids == ([kept] if booked else [kept, payment_id])
    assert refund_status(db, refund_id) == ("succeeded" if booked else "failed")
    payment = read_payment(db, payment_id)
    assert payment.status == ("cancelled" if booked else "paid")
    assert payment.attention is None
    settled = [e for e in events(db, payment_id) if e.get("by") == "end_of_day"]
    assert settled and settled[0]["batch_id"] == batch.id
    assert [b.kind for b in terminal.journal].count("reversal") == (2 if booked else 1)
    if not booked:
        with db.unit_of_work(readonly=True) as uow:
            failure = uow.session.get_one(Refund, refund_id).failure or ""
        assert "end-of-day totals" in failure
        cashier = speaking(app.test_client(), "de-DE,de;q=0.9")
        at_till(cashier, demo)
        status = cashier.get(f"/cashier/payments/{payment_id}/status").get_json()
        (shown,) = [r["failure"] for r in status["refunds"] if r["id"] == refund_id]
        assert "Kassenschnitt" in shown


@pytest.mark.parametrize(("booked", "settled"), [(True, "succeeded"), (False, "unknown")])
def test_end_of_day_settles_a_refund_whose_answer_was_lost_when_one_answer_fits(
    app: Any,
    db: Database,
    demo: Any,
    host: DeviceHost,
    terminal: SteppedTerminal,
    booked: bool,
    settled: str,
) -> None:
    """A refund (06 31) the terminal booked lowers its netted total: only that fits. One it
    did not book leaves the totals as a terminal that does not net refunds would show them
    with it booked: two answers fit, so it stays unknown and the manager is told."""
    earlier = _paid_card_payment(db, demo, 3000, paid=True)  # yesterday's batch
    today = _authorised(db, demo, host, "20.00")
    if booked:
        terminal.silent_at = "completion"  # it pays out; its answer never arrives
    else:
        terminal.silent_at = "command"  # it never takes the refund
    refund_id = _refund(db, demo, earlier, Money.parse("12.00", "EUR"))
    until(lambda: refund_status(db, refund_id) == "unknown", host, RETRY_SECONDS)
    _receipt_cannot_tell(db, host, terminal, earlier)

    batch = _end_of_day(db, demo, host)
    assert batch.payment_ids == [today]
    assert batch.terminal_total_minor == (800 if booked else 2000)
    assert refund_status(db, refund_id) == settled
    assert read_payment(db, today).status == "paid"
    payment = read_payment(db, earlier)
    if booked:
        assert batch.difference is None
        assert (payment.status, payment.refunded_minor) == ("partially_refunded", 1200)
        assert payment.attention is None
        assert any(e.get("by") == "end_of_day" for e in events(db, earlier))
    else:
        assert payment.refunded_minor == 0
        assert payment.attention and "end of day's totals cannot tell" in payment.attention
        (flagged,) = [
            e for e in events(db, earlier) if e.get("refund_id") == refund_id and "why" in e
        ]
        assert flagged["why"] == "its totals fit more than one answer (2)"
        manager = app.test_client()
        log_in(manager, *staff(demo, "manager"))
        page = manager.get(f"/portal/payments/{earlier}").get_data(as_text=True)
        assert f'data-resolve-refund="{refund_id}"' in page
        # A second end of day (a retried job, the next day) does not take it as this batch's.
        again = _end_of_day(db, demo, host, batches=2)
        assert again.payment_ids == [] and refund_status(db, refund_id) == "unknown"


def _unknown_payment(db: Database, demo: Any, amount: str) -> str:
    payment_id = card_payment(db, first_till(db, demo), amount)
    with db.unit_of_work() as uow:
        cards.begin_attempt(uow, payment_id)
        outcomes.mark_unknown(uow, payment_id, "the line broke", "test")
        uow.session.get_one(Payment, payment_id).card = {
            **(uow.session.get_one(Payment, payment_id).card or {}),
            "resolvable": False,
        }
        uow.commit()
    return payment_id


def _approved(db: Database, demo: Any, amount: str, receipt: int) -> str:
    return approved_card_payment(db, first_till(db, demo), amount, receipt)


def _unknown_reversal(db: Database, demo: Any, payment_id: str) -> str:
    refund_id = _refund(db, demo, payment_id, None)
    with db.unit_of_work() as uow:
        cards.begin_reversal_attempt(uow, payment_id, refund_id)
        uow.commit()
    with db.unit_of_work() as uow:
        from gateway.services.devices import refund_outcomes

        refund_outcomes.mark_unknown(uow, refund_id, "the line broke", "test")
        uow.commit()
    return refund_id


@pytest.mark.parametrize(
    ("terminal_total", "count", "receipts", "payment", "refund"),
    [
        (1500, 3, (1, 3), "paid", "failed"),  # the unknown payment booked, the reversal not
        (500, 1, (1, 3), "failed", "succeeded"),  # the reversal booked, the payment not
        # Both or neither: 1000 and 2 either way. Two answers fit: a manager decides.
        (1000, 2, (1, 3), "unknown", "unknown"),
        # The payment booked, the reversal not, in a batch that holds neither receipt 1 nor 2:
        # it opened after the reversal was tried, which may be in the batch before.
        (1500, 3, (3, 3), "paid", "unknown"),
        (1500, 3, None, "paid", "unknown"),  # no receipt range sent: nothing proves it
    ],
)
def test_unknown_payments_and_reversals_are_settled_together_or_not_at_all(
    db: Database,
    demo: Any,
    terminal_total: int,
    count: int,
    receipts: tuple[int, int] | None,
    payment: str,
    refund: str,
) -> None:
    till = first_till(db, demo)
    kept = _approved(db, demo, "5.00", 1)
    reversed_ = _approved(db, demo, "5.00", 2)
    refund_id = _unknown_reversal(db, demo, reversed_)
    unknown = _unknown_payment(db, demo, "5.00")
    totals = end_of_day.TerminalTotals(terminal_total, count, receipts=receipts)
    with db.unit_of_work() as uow:
        end_of_day.close_batch(uow, till.till_id, totals, "EUR", "test")
        uow.commit()
    assert read_payment(db, unknown).status == payment
    assert refund_status(db, refund_id) == refund
    assert read_payment(db, kept).status == "paid"
    if payment == "unknown":
        for flagged in (unknown, reversed_):
            assert "totals cannot tell" in (read_payment(db, flagged).attention or "")
    elif refund == "unknown":
        assert "totals cannot tell" in (read_payment(db, reversed_).attention or "")
        assert read_payment(db, unknown).attention is None


def _hold_reversal(db: Database, payment_id: str, *, until_: Any) -> None:
    """Move the cancel's retry to ``until_`` (None: now): the test decides what the terminal
    does before Kassa asks it again, not the backoff's clock."""
    _jobs_due(db, f"card-reverse:{payment_id}", until_)


def _jobs_due(db: Database, keys: str, at: Any = None) -> None:
    """Move the waiting jobs whose dedupe key is like ``keys`` to ``at`` (None: now)."""
    from datetime import UTC, datetime

    from gateway.adapters.models import Job

    with db.unit_of_work() as uow:
        waiting = uow.session.scalars(
            select(Job).where(Job.dedupe_key.like(keys), Job.status == "pending")
        ).all()
        assert waiting, f"no job {keys} waits"
        for job in waiting:
            job.run_at = at or datetime.now(UTC)
        uow.commit()


@pytest.mark.parametrize("then", ["sale", "end_of_day"])
def test_a_cancel_whose_answer_was_lost_ends_cancelled_once(
    db: Database, demo: Any, host: DeviceHost, terminal: SteppedTerminal, then: str
) -> None:
    """The cashier cancels an approved card payment; the terminal reverses it and its answer
    is lost. Before Kassa asks again, the till takes another sale (so the last receipt is
    that sale's), or the day is closed. The payment ends cancelled, reversed once, and the
    batch agrees: never captured as paid while the terminal gave the money back."""
    from datetime import UTC, datetime, timedelta

    from gateway.services.payments import cancellation

    till = first_till(db, demo)
    payment_id = _authorised(db, demo, host, "10.00")
    terminal.silent_at = "completion"  # it reverses; its answer never arrives
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, payment_id, till.merchant_id, "staff:cashier")
        uow.commit()
    until(
        lambda: "waits for the terminal" in (read_payment(db, payment_id).attention or ""),
        host,
        RETRY_SECONDS,
    )
    _hold_reversal(db, payment_id, until_=datetime.now(UTC) + timedelta(days=1))
    terminal.speak()
    assert [b.kind for b in terminal.journal] == ["authorisation", "reversal"]
    assert read_payment(db, payment_id).status == "authorised"
    if then == "sale":
        other = _authorised(db, demo, host, "4.00")
        _hold_reversal(db, payment_id, until_=None)

        def answered() -> bool:
            """the terminal answered the cancel's retry"""
            payment = read_payment(db, payment_id)
            return payment.status != "authorised" or "refused" in (payment.attention or "")

        until(answered, host, RETRY_SECONDS)
        batch = _end_of_day(db, demo, host)
        assert batch.payment_ids == [other]
    else:
        batch = _end_of_day(db, demo, host)
        assert batch.payment_ids == []
    assert batch.difference is None
    payment = read_payment(db, payment_id)
    assert payment.status == "cancelled" and payment.attention is None
    assert [b.kind for b in terminal.journal].count("reversal") == 1  # reversed once


def test_a_close_retried_after_its_commit_failed_leaves_what_it_cannot_see_to_a_manager(
    db: Database,
    demo: Any,
    host: DeviceHost,
    terminal: SteppedTerminal,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The terminal books a payment whose answer is lost and closes the batch holding it;
    Kassa's commit of that close fails. The retried close finds the terminal's next batch
    empty, whose totals fit "nothing booked": the customer was charged, so the payment must
    not fail. The empty batch holds no receipt of Kassa's from before the attempt: it stays
    unknown, flagged for a manager."""
    from sqlalchemy import event
    from sqlalchemy.exc import OperationalError

    terminal.silent_at = "completion"  # it charges; its answer never arrives
    payment_id = card_payment(db, first_till(db, demo), "25.00")
    until(lambda: read_payment(db, payment_id).status == "unknown", host, RETRY_SECONDS)
    _receipt_cannot_tell(db, host, terminal, payment_id)

    close_batch, seen = end_of_day.close_batch, []

    def close_then_fail_commit(uow: Any, *args: Any, **kwargs: Any) -> CardBatch:
        batch = close_batch(uow, *args, **kwargs)
        if not seen:  # the first close: its commit fails (the database went away)
            seen.append((batch.terminal_total_minor, read_payment(db, payment_id).status))

            def refuse(session: Any) -> None:
                raise OperationalError("COMMIT", None, ConnectionError("the database went away"))

            event.listen(uow.session, "before_commit", refuse, once=True)
        return batch

    monkeypatch.setattr(end_of_day, "close_batch", close_then_fail_commit)
    batch = _end_of_day(db, demo, host)
    assert seen == [(2500, "unknown")] and terminal.batches_closed == 2
    assert (batch.terminal_total_minor, batch.terminal_count) == (0, 0)
    payment = read_payment(db, payment_id)
    assert payment.status == "unknown"
    assert "totals cannot tell" in (payment.attention or "")
    (flagged,) = [e for e in events(db, payment_id) if e.get("batch_id") == batch.id]
    assert "earlier batch" in flagged["why"]
    charges = [b.amount_minor for b in terminal.journal if b.kind == "authorisation"]
    assert charges == [2500, 777]  # it was charged (777: the other cash register's)


def test_a_cancel_never_sent_is_carried_out_before_the_close(
    db: Database, demo: Any, host: DeviceHost, terminal: SteppedTerminal
) -> None:
    """The cashier cancels an approved card payment; before the device host sends the cancel,
    the day is closed. The close carries the cancel out first: the money goes back and the
    payment leaves the batch (it was captured as paid, the cancel silently dropped)."""
    from datetime import UTC, datetime, timedelta

    from gateway.services.payments import cancellation

    till = first_till(db, demo)
    kept = _authorised(db, demo, host, "4.00")
    payment_id = _authorised(db, demo, host, "10.00")
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, payment_id, till.merchant_id, "staff:cashier")
        uow.commit()
    _hold_reversal(db, payment_id, until_=datetime.now(UTC) + timedelta(days=1))  # not sent
    assert [b.kind for b in terminal.journal] == ["authorisation", "authorisation"]

    batch = _end_of_day(db, demo, host)
    assert batch.payment_ids == [kept] and batch.difference is None
    assert batch.terminal_total_minor == 400
    payment = read_payment(db, payment_id)
    assert payment.status == "cancelled" and payment.attention is None
    assert [b.kind for b in terminal.journal].count("reversal") == 1


def test_a_cancel_the_close_overtook_is_flagged_for_a_manager(db: Database, demo: Any) -> None:
    """A cancel asked while the end of day ran finds its payment captured: the terminal can
    no longer reverse it, and a manager is told to refund it, never silence."""
    till = first_till(db, demo)
    payment_id = _approved(db, demo, "10.00", 1)
    with db.unit_of_work() as uow:
        cards.request_reversal(uow, uow.session.get_one(Payment, payment_id), "staff:cashier")
        end_of_day.close_batch(
            uow, till.till_id, end_of_day.TerminalTotals(1000, 1, receipts=(1, 1)), "EUR", "test"
        )
        uow.commit()
    with db.unit_of_work() as uow:
        cards.apply_reversal(uow, payment_id, None, "terminal:T01")  # the cancel's job, late
        uow.commit()
    payment = read_payment(db, payment_id)
    assert payment.status == "paid"
    assert payment.attention and "cancel not carried out" in payment.attention
