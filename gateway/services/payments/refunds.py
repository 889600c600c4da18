"""Refunds: requested here, carried out by the bank, confirmed by its callback.

A card payment's money goes back through the till's terminal instead: after end of day
(``paid``) as a refund (ZVT 06 31), before it (``authorised``, still in the open batch) as a
reversal of the whole payment (06 30). Both take the same Idempotency-Key and cap rules.

A refund is ``requested`` (stored, and a job queued in the same transaction), then ``submitted``
(the bank accepted it), then ``succeeded`` or ``failed`` (the bank's callback). What may still be
refunded is what was paid minus every refund not failed, checked with the payment row locked, so
concurrent requests can never refund more than was paid.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select

from gateway.adapters.bank_client import BankClient
from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, Refund, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import Money
from gateway.domain.payment import (
    COUNTED_REFUND_STATES,
    OPEN_REFUND_STATES,
    PaymentStatus,
    RefundStatus,
)
from gateway.domain.sentences import N_, say
from gateway.errors import BankRejected, Conflict, InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.devices import cards
from gateway.services.payments.lifecycle import (
    flag_attention,
    move_refund,
    record_event,
    refund_detail,
)
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope, narrow

SUBMIT_JOB = "submit_refund"
REFUNDED_OTHER_AMOUNT = N_(
    "the bank reported refund %(refund)s as %(reported)s, but %(requested)s was requested"
)
POLL_JOB = "poll_bank_refund"
REFUNDABLE_STATES = frozenset(
    {PaymentStatus.PAID, PaymentStatus.SETTLED, PaymentStatus.PARTIALLY_REFUNDED}
)


def reversed_whole(payment: Payment) -> bool:
    """Whether money goes back by reversing the whole payment (a card payment before its
    terminal's end of day)."""
    return payment.method == "card" and payment.status == PaymentStatus.AUTHORISED


def can_refund(payment: Payment) -> bool:
    """Whether a refund may be asked for in the payment's state (the amount is checked apart)."""
    return payment.status in REFUNDABLE_STATES or reversed_whole(payment)


def refundable_minor(uow: UnitOfWork, payment: Payment) -> int:
    """What may still be refunded: paid minus every refund that has not failed."""
    taken = uow.session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment.id,
            Refund.status.in_([s.value for s in COUNTED_REFUND_STATES]),
        )
    )
    return payment.amount_minor - int(taken or 0)


def request_refund(
    uow: UnitOfWork,
    payment_id: str,
    scope: Scope | int,
    *,
    amount: Money | None,
    reason: str | None,
    actor: str,
) -> Refund:
    """Record a refund of ``amount`` (all that is left if None) and queue it for the bank."""
    if reason is not None:
        reason = scrub_card_numbers(reason)  # typed at the till: stored and sent to the bank
    payment = uow.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id, narrow(scope, Payment.merchant_id, Payment.store_id))
        .with_for_update()
    )
    if payment is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    if reversed_whole(payment):
        void = _void(uow, payment, amount, reason, actor)
        _audit_refund(uow, payment, void, "refund.void_requested", actor)
        return void
    if payment.status not in REFUNDABLE_STATES:
        raise Conflict(
            f"only a paid payment can be refunded; this one is {payment.status}",
            current_status=payment.status,
        )
    left = refundable_minor(uow, payment)
    money = Money(left, payment.currency) if amount is None else amount
    if money.currency != payment.currency:
        raise InvalidInput(
            f"a refund of a {payment.currency} payment must be in {payment.currency}, "
            f"not {money.currency}"
        )
    if money.minor <= 0:
        raise InvalidInput(f"a refund must be greater than zero, not {money}")
    if money.minor > left:
        raise Conflict(
            f"a refund of {money} is more than the {Money(left, payment.currency)} "
            f"still refundable on this payment of {Money(payment.amount_minor, payment.currency)}"
        )
    refund = Refund(
        # 32 hex characters: it travels as an ISO 20022 end-to-end id (Max35Text).
        id=uuid.uuid4().hex,
        payment_id=payment.id,
        amount_minor=money.minor,
        currency=money.currency,
        status=RefundStatus.REQUESTED.value,
        reason=reason,
        created_by=actor,
    )
    uow.session.add(refund)
    record_event(
        uow, payment, "refund_requested", actor, _with_reason(refund_detail(refund), reason)
    )
    _audit_refund(uow, payment, refund, "refund.requested", actor)
    if payment.method == "card":  # card money goes back through the till's terminal
        jobs.enqueue(
            uow,
            cards.REFUND_JOB,
            {"refund_id": refund.id},
            queue=cards.device_queue(payment.till_id),
            dedupe_key=f"card-refund:{refund.id}",
            max_attempts=cards.RETRY_ATTEMPTS,
        )
        cards.watch_refund(uow, refund.id)
        uow.session.flush()
        return refund
    jobs.enqueue(
        uow,
        SUBMIT_JOB,
        {
            "refund_id": refund.id,
            "payment_reference": payment.reference,
            "amount": money.to_decimal_string(),
            "currency": money.currency,
        },
        dedupe_key=f"refund:{refund.id}",
        max_attempts=20,  # a bank outage of hours must not lose a refund
    )
    uow.session.flush()
    return refund


def _audit_refund(
    uow: UnitOfWork, payment: Payment, refund: Refund, action: str, actor: str
) -> None:
    audit.record(
        uow,
        action,
        actor=actor,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        target=("refund", refund.id),
        after={
            "payment_id": payment.id,
            "amount": Money(refund.amount_minor, refund.currency).to_decimal_string(),
            "currency": refund.currency,
            "reason": refund.reason,
        },
    )


def _void(
    uow: UnitOfWork, payment: Payment, amount: Money | None, reason: str | None, actor: str
) -> Refund:
    """A card payment still in the terminal's open batch is given back by reversing it whole
    (ZVT 06 30): nothing was captured yet, so there is nothing to refund in part."""
    whole = Money(payment.amount_minor, payment.currency)
    if amount is not None and amount != whole:
        raise Conflict(
            f"this card payment of {whole} is still in the terminal's open batch: a part of it "
            f"cannot be given back now; reverse it whole or refund after end of day",
            current_status=payment.status,
        )
    if refundable_minor(uow, payment) < payment.amount_minor:
        raise Conflict("this card payment is already being reversed", current_status=payment.status)
    refund = Refund(
        id=uuid.uuid4().hex,
        payment_id=payment.id,
        amount_minor=whole.minor,
        currency=whole.currency,
        status=RefundStatus.REQUESTED.value,
        reason=reason,
        created_by=actor,
    )
    uow.session.add(refund)
    uow.session.flush()
    cards.request_reversal(uow, payment, actor, refund_id=refund.id)
    cards.watch_refund(uow, refund.id)
    record_event(
        uow, payment, "refund_requested", actor, _with_reason(refund_detail(refund), reason)
    )
    return refund


def submit_to_bank(client: Callable[[], BankClient], *, poll_after: float = 0) -> jobs.Handler:
    """Job handler: send a requested refund to the bank (idempotent by the refund id).

    The bank is called before the handler's first query, so no database lock is held while
    waiting for it. :class:`BankUnavailable` propagates and the job is retried with backoff.
    A submitted refund is asked of the bank after ``poll_after`` seconds (0: never) in case
    its result callback is lost (gateway.services.bank.polling).
    """

    def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        try:
            answer = client().create_refund(
                refund_id=payload["refund_id"],
                payment_reference=payload["payment_reference"],
                amount=payload["amount"],
                currency=payload["currency"],
            )
        except BankRejected as exc:
            _fail(uow, payload["refund_id"], f"the bank refused the refund: {exc}")
            return
        refund = _locked_refund(uow, payload["refund_id"])
        if refund is not None and refund.status == RefundStatus.REQUESTED:
            payment = _locked_payment(uow, refund.payment_id)
            move_refund(
                uow,
                payment,
                refund,
                RefundStatus.SUBMITTED,
                "bank",
                bank_refund_id=answer.bank_refund_id,
            )
            if poll_after:
                jobs.enqueue(
                    uow,
                    POLL_JOB,
                    {"refund_id": refund.id, "n": 0},
                    run_at=utcnow() + timedelta(seconds=poll_after),
                    dedupe_key=f"refund-watch:{refund.id}:0",
                )

    return handle


def record_bank_result(
    uow: UnitOfWork,
    *,
    refund_id: str,
    succeeded: bool,
    bank_refund_id: str | None,
    amount_minor: int,
    currency: str,
    reason: str | None,
    actor: str = "bank",
) -> None:
    """Apply the bank's (or the terminal's) refund result; a repeat changes nothing."""
    refund = _locked_refund(uow, refund_id)
    if refund is None:
        raise NotFound(f"the bank reported refund {refund_id!r}, which Kassa does not know")
    if refund.status in (RefundStatus.SUCCEEDED, RefundStatus.FAILED):
        return
    payment = _locked_payment(uow, refund.payment_id)
    if (amount_minor, currency) != (refund.amount_minor, refund.currency):
        flag_attention(
            uow,
            payment,
            say(
                REFUNDED_OTHER_AMOUNT,
                refund=refund_id,
                reported=Money(amount_minor, currency),
                requested=Money(refund.amount_minor, refund.currency),
            ),
            actor,
            refund_detail(refund),
        )
        return
    target = RefundStatus.SUCCEEDED if succeeded else RefundStatus.FAILED
    move_refund(uow, payment, refund, target, actor, failure=reason, bank_refund_id=bank_refund_id)


def _fail(uow: UnitOfWork, refund_id: str, why: str) -> None:
    refund = _locked_refund(uow, refund_id)
    if refund is None or refund.status not in (RefundStatus.REQUESTED, RefundStatus.SUBMITTED):
        return
    payment = _locked_payment(uow, refund.payment_id)
    move_refund(uow, payment, refund, RefundStatus.FAILED, "bank", failure=why)


def _locked_refund(uow: UnitOfWork, refund_id: str) -> Refund | None:
    return uow.session.scalar(select(Refund).where(Refund.id == refund_id).with_for_update())


def _locked_payment(uow: UnitOfWork, payment_id: str) -> Payment:
    return uow.session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).one()


def _with_reason(detail: dict[str, Any], reason: str | None) -> dict[str, Any]:
    return {**detail, "reason": reason} if reason is not None else detail


def list_refunds(uow: UnitOfWork, payment_id: str) -> list[Refund]:
    return list(
        uow.session.scalars(
            select(Refund).where(Refund.payment_id == payment_id).order_by(Refund.created_at)
        )
    )


def open_refunds(uow: UnitOfWork, payment_id: str) -> list[Refund]:
    """The payment's refunds still on their way (requested, sent to the bank, or with an
    outcome the terminal has not confirmed yet)."""
    return list(
        uow.session.scalars(
            select(Refund).where(
                Refund.payment_id == payment_id,
                Refund.status.in_([s.value for s in OPEN_REFUND_STATES]),
            )
        )
    )


def refund_version(uow: UnitOfWork, payment_id: str) -> tuple[int, Any]:
    """How many refunds the payment has and when one last changed: a live screen's cheap
    look at whether its refunds moved."""
    count, latest = uow.session.execute(
        select(func.count(Refund.id), func.max(Refund.updated_at)).where(
            Refund.payment_id == payment_id
        )
    ).one()
    return int(count), latest
