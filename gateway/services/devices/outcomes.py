"""Card payments whose outcome is unknown: said at once, resolved from the terminal's records.

When the line to the terminal breaks or the terminal stops answering in the middle of a payment,
the terminal may have booked it or not. Kassa never guesses and never charges again:

1. the payment becomes ``unknown``: the cashier sees it at once with what to do, a manager sees
   it flagged, and the till's terminal is free for other sales;
2. a resolution job asks the terminal for its last receipt (ZVT Repeat Receipt) as soon as it
   answers, and the device host does so before it sends the terminal anything else, so the
   last receipt is still the one that tells;
3. what a last receipt cannot tell, the end of day can: the terminal's totals against Kassa's
   (see :mod:`gateway.services.devices.end_of_day`);
4. a manager can always resolve it by hand, with a note that stays in its history.

A card payment never waits for a device host forever: the watch job (:func:`watch`, run by any
worker) fails a payment still ``pending`` when no device host began its attempt within
``[devices] card_pickup_seconds`` (:func:`not_sent`: an attempt begins only while the payment
is pending, under its row lock, and is committed before the first byte, so none means nothing
was sent and nothing ever will be: "terminal not reachable, no money taken"), and makes it
``unknown`` when its attempt began longer than ``card_attempt_seconds`` ago (the device host
died and nobody took over). One given up mid-attempt is settled from the terminal's records
like any other, and a terminal's answer that arrives after the watch gave up still settles it.
Unknown payments left by earlier versions that were never sent are settled as not charged by
the device host (:func:`settle_never_sent`).

:func:`judge` decides from a last receipt: the interrupted payment was charged if the receipt
is approved, for its amount, not older than the attempt and nobody else's; it was not charged
if the terminal has no receipt, or its last one is older than the attempt or one Kassa already
knows; anything else (a newer receipt Kassa does not know) is inconclusive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Job, Payment, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.payment import PaymentMethod, PaymentStatus
from gateway.domain.sentences import N_
from gateway.errors import Conflict, InvalidInput
from gateway.services import jobs
from gateway.services.devices.cards import (
    CLOCK_SKEW,
    WATCH_JOB,
    TerminalOutcome,
    apply_charge,
    device_queue,
    receipt_taken,
)
from gateway.services.payments.lifecycle import (
    clear_attention,
    flag_attention,
    move_payment,
    record_event,
)
from gateway.services.payments.payment_reads import get_payment
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope

RESOLVE_JOB = "card_resolve"
UNKNOWN_TEXT = N_(  # a terminal text: at most 120 characters (Payment.display_text)
    "Outcome unknown: the terminal did not confirm this payment. Do not charge again."
)


NOT_SENT_TEXT = N_(
    "Not charged: the terminal was not reachable, no money was taken. Check the terminal, "
    "then start the payment again."
)
UNKNOWN_REASON = N_("card payment outcome unknown: the terminal did not confirm it")
# What the payment shows once the terminal's records settled it (translated on the cashier's
# screen: gateway.entrypoints.terminal_texts), by its last receipt or by the totals.
CHARGED_TEXT = N_("Approved (the terminal's records show it)")
NOT_CHARGED_TEXT = N_("Not charged: the terminal has no record of it. Start it again.")
CHARGED_BY_TOTALS = N_("Approved (the terminal's end-of-day totals show it)")
NOT_CHARGED_BY_TOTALS = N_("Not charged: the terminal's end-of-day totals show it did not book it.")
TOTALS_UNTOLD_REASON = N_(
    "card payment outcome unknown: the end of day's totals cannot tell whether the terminal "
    "booked it: resolve it by hand from the terminal's journal"
)
UNTOLD_REASON = N_(
    "the terminal's last receipt cannot tell whether it was charged: the end of day "
    "compares totals, or resolve it by hand"
)


class Verdict(StrEnum):
    CHARGED = "charged"
    NOT_CHARGED = "not_charged"
    INCONCLUSIVE = "inconclusive"


def mark_unknown(uow: UnitOfWork, payment_id: str, why: str, actor: str) -> None:
    """The terminal may have booked the payment: say so, free the till, ask it when it can."""
    payment = _locked(uow, payment_id)
    if payment.status != PaymentStatus.PENDING:
        return
    payment.display_text = UNKNOWN_TEXT
    payment.card = {**(payment.card or {}), "resolvable": True}
    move_payment(uow, payment, PaymentStatus.UNKNOWN, "outcome_unknown", actor, {"reason": why})
    flag_attention(uow, payment, UNKNOWN_REASON, actor, {"reason": why})
    jobs.enqueue(
        uow,
        RESOLVE_JOB,
        {"payment_id": payment.id},
        queue=device_queue(payment.till_id),
        dedupe_key=f"card-resolve:{payment.id}",
        max_attempts=1000,  # backoff tops out at an hour: weeks of asking
    )


def open_questions(uow: UnitOfWork, till_id: int) -> list[Payment]:
    """The till's unknown payments a last receipt may still answer, newest attempt first."""
    rows = uow.session.scalars(
        select(Payment).where(
            Payment.till_id == till_id,
            Payment.method == PaymentMethod.CARD.value,
            Payment.status == PaymentStatus.UNKNOWN.value,
        )
    )
    found = [p for p in rows if (p.card or {}).get("resolvable")]
    return sorted(found, key=lambda p: (p.card or {}).get("attempt_started_at", ""), reverse=True)


def attempt_started(payment: Payment) -> datetime | None:
    started = (payment.card or {}).get("attempt_started_at")
    return datetime.fromisoformat(started) if started else None


def judge(uow: UnitOfWork, payment: Payment, last: TerminalOutcome | None) -> Verdict:
    """What the terminal's last receipt says about the payment's interrupted attempt."""
    started = attempt_started(payment)
    if last is None or started is None:
        return Verdict.NOT_CHARGED  # nothing booked at all, or this payment never sent
    newer = last.timestamp is None or started is None or last.timestamp >= started - CLOCK_SKEW
    taken = receipt_taken(uow, payment.till_id, last, payment_id=payment.id)
    if last.approved and last.amount_minor == payment.amount_minor and newer and not taken:
        return Verdict.CHARGED
    if taken or not newer:
        return Verdict.NOT_CHARGED  # the last booking is one Kassa knows, or came before
    return Verdict.INCONCLUSIVE


def resolve_from_receipt(
    uow: UnitOfWork, till_id: int, last: TerminalOutcome | None, actor: str
) -> None:
    """Answer the till's open questions from its terminal's last receipt.

    Newest attempt first: once the last receipt is one payment's, or a booking Kassa does not
    know, it says nothing about older attempts (the terminal may have booked them before it).
    """
    questions = open_questions(uow, till_id)
    settle_never_sent(uow, till_id, actor)
    questions = [p for p in questions if attempt_started(p) is not None]
    for index, payment in enumerate(questions):
        verdict = judge(uow, payment, last)
        if verdict == Verdict.NOT_CHARGED:
            settle(uow, payment, charged=False, actor=actor, detail={"by": "last_receipt"})
            continue
        if verdict == Verdict.CHARGED and last is not None:
            settle(
                uow, payment, charged=True, actor=actor, detail={"by": "last_receipt"}, last=last
            )
        for older in questions[index + (verdict == Verdict.CHARGED) :]:
            _give_up(uow, older, actor)
        return


def settle_never_sent(uow: UnitOfWork, till_id: int, actor: str) -> int:
    """Settle the till's unknown payments that were never sent to the terminal (the watch gave
    up before any attempt began): nothing was charged. How many were settled."""
    never = [p for p in open_questions(uow, till_id) if attempt_started(p) is None]
    for payment in never:
        settle(
            uow, _locked(uow, payment.id), charged=False, actor=actor, detail={"by": "never_sent"}
        )
    return len(never)


def apply_answer(uow: UnitOfWork, payment_id: str, outcome: TerminalOutcome, actor: str) -> None:
    """The terminal's own answer to a charge: applied while pending, and also after the watch
    made the payment unknown meanwhile (the answer of this very attempt settles it)."""
    payment = _locked(uow, payment_id)
    if payment.status == PaymentStatus.PENDING:
        apply_charge(uow, payment_id, outcome, actor)
    elif payment.status == PaymentStatus.UNKNOWN:
        by = {"by": "terminal_answer"}
        settle(uow, payment, charged=outcome.approved, actor=actor, detail=by, last=outcome)
        if not outcome.approved:
            payment.display_text = scrub_card_numbers(outcome.message)[:120]


@dataclass(frozen=True, slots=True)
class CardDeadlines:
    """How long a card payment may stay pending before the watch calls its outcome unknown."""

    pickup: timedelta  # no device host has begun its attempt
    attempt: timedelta  # its attempt began, and no answer came
    refund_wait: timedelta = timedelta(seconds=120)  # a refund the terminal was not sent

    @classmethod
    def from_settings(cls, devices: Any) -> CardDeadlines:
        return cls(
            pickup=timedelta(seconds=devices.card_pickup_seconds),
            attempt=timedelta(seconds=devices.card_attempt_seconds),
            refund_wait=timedelta(seconds=devices.card_refund_wait_seconds),
        )


def watch(deadlines: CardDeadlines) -> jobs.Handler:
    """Job handler (any worker): give up on a card payment still pending past its deadline, so
    the till is free and the cashier sees it; else look again at the deadline."""

    def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        payment = _locked(uow, payload["payment_id"])
        if payment.status != PaymentStatus.PENDING:
            return
        started = attempt_started(payment)
        if started is None:
            if utcnow() >= payment.created_at + deadlines.pickup:
                not_sent(uow, payment, _charge_job_state(uow, payment.id), deadlines.pickup)
                return
            due = payment.created_at + deadlines.pickup
        else:
            due = started + deadlines.attempt
            if utcnow() >= due:
                why = (
                    f"the device host gave no answer {_seconds(deadlines.attempt)} into the "
                    "payment (it may have stopped)"
                )
                mark_unknown(uow, payment.id, why, "system:card-watch")
                return
        round_ = int(payload.get("round", 0)) + 1
        jobs.enqueue(
            uow,
            WATCH_JOB,
            {"payment_id": payment.id, "round": round_},
            run_at=due,
            dedupe_key=f"card-watch:{payment.id}:{round_}",
        )

    return handle


def not_sent(uow: UnitOfWork, payment: Payment, job_state: str, waited: timedelta) -> None:
    """A pending payment whose attempt never began fails: no money was taken.

    Proof, not a guess: the device host sends the authorisation only after it has committed
    the attempt (:func:`gateway.services.devices.cards.begin_attempt`), which it may do only
    while the payment is pending and under the payment's row lock, the lock the caller holds.
    So with no attempt recorded, no byte of this payment has reached the terminal, and after
    this move none ever will (a late device host finds it failed and leaves it). The charge
    job's state (never claimed, or claimed by a device host that has not got as far) only
    says why; whatever it is, nothing was sent.
    """
    who = (
        "no device host took it"
        if job_state in ("pending", "missing")
        else "the device host that took it never sent it"
    )
    why = (
        f"terminal not reachable, no money taken: {who} within {_seconds(waited)} (is "
        "`kassa devices` running for this till?)"
    )
    payment.display_text = NOT_SENT_TEXT
    move_payment(
        uow,
        payment,
        PaymentStatus.FAILED,
        "card_not_sent",
        "system:card-watch",
        {"reason": why, "charge_job": job_state, "charged": False},
    )


def _charge_job_state(uow: UnitOfWork, payment_id: str) -> str:
    """The payment's charge job as the device queue has it: pending (nobody claimed it),
    running (a device host claimed it), …; "missing" if there is none."""
    state = uow.session.scalar(
        select(Job.status).where(Job.dedupe_key == f"card-charge:{payment_id}")
    )
    return state or "missing"


def _seconds(span: timedelta) -> str:
    return f"{span.total_seconds():g} s"


def settle(
    uow: UnitOfWork,
    payment: Payment,
    *,
    charged: bool,
    actor: str,
    detail: dict[str, Any],
    last: TerminalOutcome | None = None,
    captured: bool = False,
) -> None:
    """Move an unknown payment to what the terminal's records (or a manager) say."""
    card = {k: v for k, v in (payment.card or {}).items() if k != "resolvable"}
    if last is not None:
        card.update(last.card_fields())
        payment.receipt_text = scrub_card_numbers(last.receipt_text) or payment.receipt_text
    payment.card = card
    for answered in (UNKNOWN_REASON, UNTOLD_REASON, TOTALS_UNTOLD_REASON):
        clear_attention(uow, payment, answered, actor)
    by_totals = detail.get("by") == "end_of_day"
    if charged:
        payment.display_text = CHARGED_BY_TOTALS if by_totals else CHARGED_TEXT
        target = PaymentStatus.PAID if captured else PaymentStatus.AUTHORISED
        move_payment(
            uow, payment, target, "card_outcome_resolved", actor, {**detail, "charged": True}
        )
    else:
        payment.display_text = NOT_CHARGED_BY_TOTALS if by_totals else NOT_CHARGED_TEXT
        move_payment(
            uow,
            payment,
            PaymentStatus.FAILED,
            "card_outcome_resolved",
            actor,
            {**detail, "charged": False},
        )


def resolve_by_hand(
    uow: UnitOfWork, payment_id: str, scope: Scope | int, *, charged: bool, note: str, actor: str
) -> Payment:
    """A manager's word on an unknown payment (from the terminal's journal, the customer's
    receipt or bank statement), with a note kept in its history."""
    if not note.strip():
        raise InvalidInput("say how you know: a note is required to resolve a payment by hand")
    payment = get_payment(uow, payment_id, scope)
    payment = _locked(uow, payment.id)
    if payment.status != PaymentStatus.UNKNOWN:
        raise Conflict(
            f"only a payment whose outcome is unknown can be resolved by hand; this one is "
            f"{payment.status}",
            current_status=payment.status,
        )
    settle(uow, payment, charged=charged, actor=actor, detail={"by": "hand", "note": note.strip()})
    audit.record(
        uow,
        "payment.resolved_by_hand",
        actor=actor,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        target=("payment", payment.id),
        before={"status": PaymentStatus.UNKNOWN.value},
        after={"charged": charged, "note": note.strip()},
    )
    return payment


def _give_up(uow: UnitOfWork, payment: Payment, actor: str) -> None:
    """The last receipt can no longer tell: the end of day or a manager must."""
    payment.card = {**(payment.card or {}), "resolvable": False}
    record_event(uow, payment, "outcome_not_in_last_receipt", actor)
    flag_attention(uow, payment, UNTOLD_REASON, actor, {})


def _locked(uow: UnitOfWork, payment_id: str) -> Payment:
    payment = uow.session.scalar(select(Payment).where(Payment.id == payment_id).with_for_update())
    if payment is None:
        raise InvalidInput(f"no payment {payment_id!r}")
    return payment
