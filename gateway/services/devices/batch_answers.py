"""What a closed batch's totals tell about the till's card outcomes nobody knows.

A card payment, a refund (ZVT 06 31) or the reversal carrying a refund out (06 30) whose
answer was lost stays ``unknown`` until the terminal's records tell. At end of day the
terminal's totals do, when exactly one set of them, booked, makes the totals agree:

=================  ===============================  ==================================
booked             the terminal's total (BMP 04)    its count (BMP 60)
=================  ===============================  ==================================
a payment          + its amount                     + 1
a reversal         − its payment's amount           − 1 (its payment leaves the batch)
a refund (06 31)   − its amount, if refunds netted  + 1, if refunds counted
=================  ===============================  ==================================

The ZVT spec leaves open whether a terminal nets refunds in its total and counts them
(:mod:`gateway.services.devices.end_of_day`), so all four readings are tried, with the
refunds Kassa already knows in the batch too. Every set of the questions is tried, not only
"none, all or one": the answer is the one set that fits under some reading; when none or
more than one does, all stay unknown and each is flagged for a manager, saying why. A
refund the terminal did not book looks, to a terminal that does not net, like one it did:
so it is told only when the batch's own refunds or count show how the terminal reads them.

Only questions whose attempt began after the till's previous close belong to this batch: an
older one was booked (or not) in a batch these totals do not cover, and is left as it is.

"Not booked" is said only of an attempt the closed batch provably holds (:func:`covered`): a
close whose commit failed and was tried again finds the terminal's batch already closed, and
the second, empty batch's totals fit "nothing booked" while the first batch held the booking.
So the batch's receipt range (BMP 60, receipt-no start and end) must hold a booking Kassa
knows the terminal answered before the attempt began; then the batch was open before the
attempt and closed after it, and would hold its booking. Else the question stays unknown and
is flagged for a manager. A booked answer needs no such proof: the batch's totals show it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from itertools import product
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, Refund
from gateway.domain.payment import PaymentMethod
from gateway.services.devices import cards, outcomes, refund_outcomes
from gateway.services.payments.lifecycle import flag_attention

# 2**12 sets under four readings: beyond this many open questions, none is settled.
MAX_QUESTIONS = 12
PAYMENT, REFUND, REVERSAL = "payment", "refund", "reversal"


@dataclass(frozen=True, slots=True)
class Question:
    """An unknown outcome in the batch: what booking it would change."""

    kind: str  # PAYMENT, REFUND or REVERSAL
    id: str  # the payment's id (PAYMENT), else the refund's
    payment_id: str
    amount_minor: int
    started: datetime  # when its attempt at the terminal began

    def effect(self, netted: bool, counted: bool) -> tuple[int, int]:
        """What booking it adds to the terminal's total and count under a reading."""
        if self.kind == PAYMENT:
            return self.amount_minor, 1
        if self.kind == REVERSAL:
            return -self.amount_minor, -1
        return (-self.amount_minor if netted else 0), int(counted)


@dataclass(frozen=True, slots=True)
class KassaSide:
    """Kassa's batch before the questions: its payments, and its refunds at the terminal."""

    paid_minor: int
    count: int
    refunded_minor: int
    refund_count: int


@dataclass(frozen=True, slots=True)
class Answer:
    """The questions the totals show booked (``booked`` is None: they cannot tell, ``why``)."""

    booked: frozenset[str] | None
    why: str = ""


def questions(
    uow: UnitOfWork, till_id: int, in_batch: list[Payment], since: datetime | None
) -> list[Question]:
    """The till's unknown card payments, refunds and reversals attempted since ``since``
    (the previous close); a reversal only of a payment in this batch."""
    found: list[Question] = []
    for payment in uow.session.scalars(
        select(Payment)
        .where(
            Payment.till_id == till_id,
            Payment.method == PaymentMethod.CARD.value,
            Payment.status == "unknown",
        )
        .order_by(Payment.created_at, Payment.id)
        .with_for_update()
    ):
        started = outcomes.attempt_started(payment)
        if started is not None and (since is None or started > since):
            found.append(Question(PAYMENT, payment.id, payment.id, payment.amount_minor, started))
    batch_ids = {p.id for p in in_batch}
    for refund in refund_outcomes.unknown_at_till(uow, till_id, locked=True):
        started = refund.terminal_attempt_at
        if started is None or (since is not None and started <= since):
            continue
        if refund_outcomes.is_reversal(uow, refund):
            if refund.payment_id in batch_ids:
                found.append(
                    Question(REVERSAL, refund.id, refund.payment_id, refund.amount_minor, started)
                )
        else:
            found.append(
                Question(REFUND, refund.id, refund.payment_id, refund.amount_minor, started)
            )
    return found


def explain(
    asked: list[Question], total: int | None, count: int | None, kassa: KassaSide
) -> Answer:
    """Which of ``asked`` the terminal's ``total`` and ``count`` (None: not sent, or not to
    be relied on) show booked, if exactly one set of them fits."""
    if not asked:
        return Answer(frozenset())
    if total is None:
        return Answer(None, "the terminal sent no total")
    if len(asked) > MAX_QUESTIONS:
        return Answer(None, f"{len(asked)} open outcomes are too many to try every answer")
    fitting: set[frozenset[str]] = set()
    for netted, counted in product((True, False), repeat=2):
        base_total = kassa.paid_minor - (kassa.refunded_minor if netted else 0)
        base_count = kassa.count + (kassa.refund_count if counted else 0)
        effects = [q.effect(netted, counted) for q in asked]
        for chosen in product((False, True), repeat=len(asked)):
            expected = base_total + sum(e[0] for e, c in zip(effects, chosen, strict=True) if c)
            expected_count = base_count + sum(
                e[1] for e, c in zip(effects, chosen, strict=True) if c
            )
            agrees = total == expected or (netted and expected < 0 and total == 0)
            if agrees and (count is None or count == expected_count):
                fitting.add(frozenset(q.id for q, c in zip(asked, chosen, strict=True) if c))
    if len(fitting) == 1:
        return Answer(next(iter(fitting)))
    if fitting:
        return Answer(None, f"its totals fit more than one answer ({len(fitting)})")
    return Answer(None, "its totals fit no answer (the batch differs)")


def covered(
    uow: UnitOfWork,
    till_id: int,
    asked: list[Question],
    since: datetime | None,
    receipts: tuple[int, int] | None,
) -> frozenset[str]:
    """The questions whose attempt the closed batch holds: it began after a booking the batch
    holds (its receipt number in the batch's range ``receipts``) whose attempt began after
    the previous close ``since``. Receipt numbers are taken to count on across batches; an
    empty batch, a range that wrapped past 9999, or none sent proves nothing."""
    if receipts is None or not asked:
        return frozenset()
    first, last = receipts
    held = [
        started
        for started, number in _known_bookings(uow, till_id, since)
        if first <= number <= last
    ]
    if not held:
        return frozenset()
    opened_by = min(held)
    return frozenset(q.id for q in asked if q.started > opened_by)


def uncovered_why(receipts: tuple[int, int] | None) -> str:
    """Why a question the totals show not booked is left to a manager (see :func:`covered`)."""
    if receipts is None:
        return "the terminal sent no receipt range, so its batch may not hold the attempt"
    return (
        f"the closed batch (receipts {receipts[0]}-{receipts[1]}) holds no booking known from "
        "before the attempt: it may have been booked in an earlier batch"
    )


def _known_bookings(
    uow: UnitOfWork, till_id: int, since: datetime | None
) -> list[tuple[datetime, int]]:
    """(attempt start, receipt number) of the till's card payments and refunds the terminal
    answered with a receipt, attempted since ``since``."""
    found: list[tuple[datetime, int]] = []
    payments = select(Payment.card).where(
        Payment.till_id == till_id,
        Payment.method == PaymentMethod.CARD.value,
        Payment.status.in_(cards.BOOKED_STATUSES),
    )
    if since is not None:  # one attempted after the close was created after it too
        payments = payments.where(Payment.created_at > since)
    for card in uow.session.scalars(payments):
        started, number = (card or {}).get("attempt_started_at"), (card or {}).get("receipt_number")
        if started and isinstance(number, int) and number > 0:
            found.append((datetime.fromisoformat(started), number))
    refunds = (
        select(Refund.terminal_attempt_at, Refund.bank_refund_id)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.till_id == till_id,
            Refund.bank_refund_id.like("receipt-%"),  # see cards.refund_receipt_id
            Refund.terminal_attempt_at.is_not(None),
        )
    )
    if since is not None:
        refunds = refunds.where(Refund.terminal_attempt_at > since)
    for started, receipt in uow.session.execute(refunds):
        number = (receipt or "").removeprefix("receipt-")
        if started is not None and number.isdigit():
            found.append((started, int(number)))
    if since is not None:
        found = [(started, number) for started, number in found if started > since]
    return found


def settle(
    uow: UnitOfWork, asked: list[Question], booked: frozenset[str], actor: str, batch_id: int
) -> None:
    """Settle each question as the totals show, in the payment's history "by end of day"."""
    detail: dict[str, Any] = {"by": "end_of_day", "batch_id": batch_id, "end_of_day": True}
    for question in asked:
        if question.kind == PAYMENT:
            payment = uow.session.get_one(Payment, question.id)
            outcomes.settle(
                uow, payment, charged=question.id in booked, actor=actor, detail=detail,
                captured=True,
            )  # fmt: skip
        else:
            refunded = question.id in booked
            refund_outcomes.settle(uow, question.id, refunded=refunded, actor=actor, detail=detail)


def leave_unknown(
    uow: UnitOfWork, asked: list[Question], why: str, actor: str, batch_id: int
) -> None:
    """The totals cannot tell: each question waits for a manager, who is told why."""
    for question in asked:
        payment = uow.session.scalars(
            select(Payment).where(Payment.id == question.payment_id).with_for_update()
        ).one()
        detail: dict[str, Any] = {"batch_id": batch_id, "why": why}
        if question.kind == PAYMENT:
            reason = outcomes.TOTALS_UNTOLD_REASON
        else:
            refund = uow.session.get_one(Refund, question.id)
            reason = refund_outcomes.totals_untold_reason(refund)
            detail["refund_id"] = refund.id
        flag_attention(uow, payment, reason, actor, detail)
