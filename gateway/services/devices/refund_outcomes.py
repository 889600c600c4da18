"""Card refunds and reversals whose outcome is unknown: said at once, resolved from the terminal.

The same rule as for card payments (:mod:`gateway.services.devices.outcomes`), for money going
back to the customer:

1. a refund (ZVT 06 31) or the reversal carrying it out (06 30) that reached the terminal and
   got no conclusive answer becomes ``unknown``: it stays counted against what may still be
   refunded (so it is never given back twice), the payment is flagged for the manager and the
   cashier with what to do, and the till is free (refunds never hold it);
2. the device host asks the terminal for its last receipt as soon as it answers, before it
   books anything else (:func:`resolve_from_receipt`, run with the payments' questions);
3. a manager can resolve it by hand with a note (:func:`resolve_by_hand`, audited);
4. the watch (:func:`watch`, run by any worker) never lets a refund stay ``requested``: one
   the terminal could not be sent within ``[devices] card_refund_wait_seconds`` fails (no
   money went back; refund again), one whose attempt began ``card_attempt_seconds`` ago
   without an answer (the device host died) becomes ``unknown``.

"No attempt recorded" proves nothing was sent: the device host records the attempt under the
refund's row lock, only while it is requested, and commits it before the first byte.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, Refund, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import Money
from gateway.domain.payment import PaymentMethod, PaymentStatus, RefundStatus
from gateway.domain.sentences import N_, say
from gateway.errors import Conflict, InvalidInput
from gateway.services import jobs
from gateway.services.devices import cards
from gateway.services.devices.outcomes import RESOLVE_JOB, CardDeadlines, Verdict
from gateway.services.payments.lifecycle import (
    clear_attention,
    flag_attention,
    move_refund,
    record_event,
    void_by_refund,
)
from gateway.services.payments.payment_reads import get_payment
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope

ACTOR = "system:card-watch"
NOT_REFUNDED = N_(
    "Not refunded: the terminal has no record of it, no money went back. Refund again."
)
NOT_REFUNDED_BY_TOTALS = N_(
    "Not refunded: the terminal's end-of-day totals show it did not book it, no money went "
    "back. Refund again."
)
UNKNOWN = N_(
    "card refund %(refund)s of %(amount)s: outcome unknown, the terminal did not confirm it. Do "
    "not refund again: Kassa asks the terminal as soon as it answers, or a manager settles it"
)
UNTOLD = N_(
    "card refund %(refund)s: the terminal's last receipt cannot tell whether it was paid out; "
    "check the terminal's journal and resolve it by hand"
)
TOTALS_UNTOLD = N_(
    "card refund %(refund)s: the end of day's totals cannot tell whether the terminal paid it "
    "out: check the terminal's journal and resolve it by hand"
)
NOT_SENT = N_(
    "Not refunded: the terminal at till %(till)s was not reachable within %(seconds)s s, no "
    "money went back. Refund again when it is on, or another way."
)


def unknown_reason(refund: Refund) -> str:
    """What the payment's attention says while a refund's outcome is unknown."""
    return say(UNKNOWN, refund=refund.id[:8], amount=Money(refund.amount_minor, refund.currency))


def untold_reason(refund: Refund) -> str:
    return say(UNTOLD, refund=refund.id[:8])


def totals_untold_reason(refund: Refund) -> str:
    return say(TOTALS_UNTOLD, refund=refund.id[:8])


def mark_unknown(uow: UnitOfWork, refund_id: str, why: str, actor: str) -> None:
    """The terminal may have given the money back: say so, and ask it when it can."""
    refund = _locked_refund(uow, refund_id)
    if refund.status != RefundStatus.REQUESTED:
        return
    payment = _locked_payment(uow, refund.payment_id)
    reason = scrub_card_numbers(why)[:500]
    move_refund(uow, payment, refund, RefundStatus.UNKNOWN, actor, detail={"reason": reason})
    clear_attention(uow, payment, cards.waiting_reason(uow, refund.id), actor)
    flag_attention(uow, payment, unknown_reason(refund), actor, {"refund_id": refund.id})
    jobs.enqueue(
        uow,
        RESOLVE_JOB,
        {"payment_id": payment.id, "refund_id": refund.id},
        queue=cards.device_queue(payment.till_id),
        dedupe_key=f"card-resolve-refund:{refund.id}",
        max_attempts=1000,  # backoff tops out at an hour: weeks of asking
    )


def unknown_at_till(uow: UnitOfWork, till_id: int, *, locked: bool = False) -> list[Refund]:
    """The till's card refunds (and reversals) whose outcome is unknown, oldest first."""
    query = (
        select(Refund)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.till_id == till_id,
            Payment.method == PaymentMethod.CARD.value,
            Refund.status == RefundStatus.UNKNOWN.value,
        )
        .order_by(Refund.created_at, Refund.id)
    )
    return list(uow.session.scalars(query.with_for_update(of=Refund) if locked else query))


def open_questions(uow: UnitOfWork, till_id: int) -> list[Refund]:
    """The till's unknown card refunds a last receipt may still answer, newest attempt first."""
    rows = unknown_at_till(uow, till_id)
    found = [r for r in rows if r.terminal_attempt_at is not None and not _given_up(uow, r)]
    return sorted(found, key=lambda r: r.terminal_attempt_at or utcnow(), reverse=True)


def is_reversal(uow: UnitOfWork, refund: Refund) -> bool:
    """Whether the refund is carried out by reversing its payment (ZVT 06 30)."""
    return cards.reversal_job(uow, refund) is not None


def judge(uow: UnitOfWork, refund: Refund, last: cards.TerminalOutcome | None) -> Verdict:
    """What the terminal's last receipt says about the refund's interrupted attempt: it was
    carried out if the receipt shows it (approved, its amount, newer than the attempt, nobody
    else's); it was not if the terminal booked nothing since; else the receipt cannot tell."""
    started = refund.terminal_attempt_at
    payment = uow.session.get_one(Payment, refund.payment_id)
    if started is None:
        return Verdict.NOT_CHARGED
    if is_reversal(uow, refund):
        if cards.recovered_reversal(uow, payment.id, started, last) is not None:
            return Verdict.CHARGED
    elif cards.recovered_refund(uow, refund.id, started, last).approved:
        return Verdict.CHARGED
    if cards.not_booked_since(uow, payment.till_id, started, last):
        return Verdict.NOT_CHARGED
    return Verdict.INCONCLUSIVE


def resolve_from_receipt(
    uow: UnitOfWork, till_id: int, last: cards.TerminalOutcome | None, actor: str
) -> None:
    """Answer the till's unknown refunds from the terminal's last receipt, newest attempt first;
    once the receipt is one refund's, or a booking Kassa does not know, it cannot tell about
    older ones (they are left to a manager)."""
    questions = open_questions(uow, till_id)
    for index, refund in enumerate(questions):
        verdict = judge(uow, refund, last)
        if verdict == Verdict.NOT_CHARGED:
            settle(uow, refund.id, refunded=False, actor=actor, detail={"by": "last_receipt"})
            continue
        if verdict == Verdict.CHARGED:
            by = {"by": "last_receipt"}
            settle(uow, refund.id, refunded=True, actor=actor, detail=by, last=last)
        for older in questions[index + (verdict == Verdict.CHARGED) :]:
            _give_up(uow, older, actor)
        return


def settle(
    uow: UnitOfWork,
    refund_id: str,
    *,
    refunded: bool,
    actor: str,
    detail: dict[str, Any],
    last: cards.TerminalOutcome | None = None,
) -> None:
    """Move an unknown refund to what the terminal's records (or a manager) say."""
    refund = _locked_refund(uow, refund_id)
    payment = _locked_payment(uow, refund.payment_id)
    for answered in (unknown_reason(refund), untold_reason(refund), totals_untold_reason(refund)):
        clear_attention(uow, payment, answered, actor)
    receipt = cards.refund_receipt_id(last.receipt_number if last else None)
    if not refunded:
        failure = NOT_REFUNDED_BY_TOTALS if detail.get("by") == "end_of_day" else NOT_REFUNDED
        move_refund(
            uow, payment, refund, RefundStatus.FAILED, actor, failure=failure, detail=detail
        )
    elif is_reversal(uow, refund) and payment.status == PaymentStatus.AUTHORISED:
        refund.bank_refund_id = receipt or refund.bank_refund_id
        void_by_refund(uow, payment, refund, actor, detail)
    else:
        move_refund(
            uow, payment, refund, RefundStatus.SUCCEEDED, actor, bank_refund_id=receipt,
            detail=detail,
        )  # fmt: skip


def resolve_by_hand(
    uow: UnitOfWork,
    payment_id: str,
    refund_id: str,
    scope: Scope | int,
    *,
    refunded: bool,
    note: str,
    actor: str,
) -> Refund:
    """A manager's word on an unknown card refund (from the terminal's journal, the customer's
    receipt or bank statement), with a note kept in the payment's history and the audit log."""
    if not note.strip():
        raise InvalidInput("say how you know: a note is required to resolve a refund by hand")
    payment = get_payment(uow, payment_id, scope)
    refund = uow.session.get(Refund, refund_id)
    if refund is None or refund.payment_id != payment.id:
        raise InvalidInput(f"this payment has no refund {refund_id!r}")
    refund = _locked_refund(uow, refund_id)
    if refund.status != RefundStatus.UNKNOWN:
        raise Conflict(
            f"only a refund whose outcome is unknown can be resolved by hand; this one is "
            f"{refund.status}",
            current_status=refund.status,
        )
    by = {"by": "hand", "note": note.strip()}
    settle(uow, refund.id, refunded=refunded, actor=actor, detail=by)
    audit.record(
        uow,
        "refund.resolved_by_hand",
        actor=actor,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        target=("refund", refund.id),
        before={"status": RefundStatus.UNKNOWN.value},
        after={"refunded": refunded, "note": note.strip(), "payment_id": payment.id},
    )
    return refund


def watch(deadlines: CardDeadlines) -> jobs.Handler:
    """Job handler (any worker): a card refund or reversal still requested past its deadline
    fails if it was never sent, or becomes unknown if it was; else look again then."""

    def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        refund = _locked_refund(uow, payload["refund_id"])
        if refund.status != RefundStatus.REQUESTED:
            return
        started = refund.terminal_attempt_at
        if started is None:
            due = refund.created_at + deadlines.refund_wait
            if utcnow() >= due:
                _not_sent(uow, refund, deadlines.refund_wait)
                return
        else:
            due = started + deadlines.attempt
            if utcnow() >= due:
                why = (
                    f"the device host gave no answer {deadlines.attempt.total_seconds():g} s "
                    "into the refund (it may have stopped)"
                )
                mark_unknown(uow, refund.id, why, ACTOR)
                return
        round_ = int(payload.get("round", 0)) + 1
        jobs.enqueue(
            uow,
            cards.REFUND_WATCH_JOB,
            {"refund_id": refund.id, "round": round_},
            run_at=due,
            dedupe_key=f"card-refund-watch:{refund.id}:{round_}",
        )

    return handle


def _not_sent(uow: UnitOfWork, refund: Refund, waited: timedelta) -> None:
    """A requested refund whose attempt never began fails: nothing went to the terminal, and
    with the refund no longer requested nothing ever will (see the module's docstring)."""
    payment = _locked_payment(uow, refund.payment_id)
    clear_attention(uow, payment, cards.waiting_reason(uow, refund.id), ACTOR)
    why = say(NOT_SENT, till=payment.till.label, seconds=f"{waited.total_seconds():g}")
    move_refund(uow, payment, refund, RefundStatus.FAILED, ACTOR, failure=why)
    # A reversal that was to carry it out is not sent either: its job finds it failed.


def _given_up(uow: UnitOfWork, refund: Refund) -> bool:
    payment = uow.session.get_one(Payment, refund.payment_id)
    return untold_reason(refund) in (payment.attention or "")


def _give_up(uow: UnitOfWork, refund: Refund, actor: str) -> None:
    """The last receipt can no longer tell: a manager must."""
    payment = _locked_payment(uow, refund.payment_id)
    detail = {"refund_id": refund.id}
    # The history's kind is 32 characters at most (payment_events.kind): PostgreSQL refuses more.
    record_event(uow, payment, "refund_not_in_last_receipt", actor, detail)
    flag_attention(uow, payment, untold_reason(refund), actor, detail)


def _locked_refund(uow: UnitOfWork, refund_id: str) -> Refund:
    refund = uow.session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update())
    if refund is None:
        raise InvalidInput(f"no refund {refund_id!r}")
    return refund


def _locked_payment(uow: UnitOfWork, payment_id: str) -> Payment:
    return uow.session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).one()
