"""A manager answers a payment's question about money the bank took: accept it, or refund it.

The bank's word is flagged for a person, not applied, when it does not fit the payment
(:func:`qr_payments.record_bank_payment`): paid after the payment expired (or was cancelled or
failed) here, a different amount than asked, a second payment under the same reference. The
flag's history entry keeps what the bank said (its ``bank_payment_id``, amount, currency and
when it was paid): that is the *claim* a manager answers, with a note, in one of two ways:

- **accept** (:func:`accept`): Kassa's payment becomes what the bank took under its reference.
  An expired, cancelled or failed payment moves to ``paid`` (a manager-only move of the domain's
  table) with the bank's payment id and, if it differs, the amount the bank took; a second
  payment adds its amount to the paid one. Reconciliation then matches the bank's line(s)
  for the reference to it.
- **refund** (:func:`refund`): accept as above, then ask the bank to give back what was not
  owed (the whole bank payment, or the second one) as an ordinary refund, with its job,
  callback and poll; the payment ends ``refunded`` (or ``partially_refunded`` after a second
  payment), and reconciliation matches both the payment's and the refund's lines.

Both are idempotent: the same answer again (a double click) changes nothing and says so; the
other answer after one was given is refused (an accepted payment is refunded the ordinary
way). Both write the acting manager and the note into the payment's history and leave the
commit to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, PaymentEvent, Refund
from gateway.domain.money import Money
from gateway.domain.payment import TRANSITIONS, PaymentStatus
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.payments import refunds
from gateway.services.payments.lifecycle import (
    PAID_STATES,
    clear_attention,
    move_payment,
    record_event,
)
from gateway.services.payments.qr_payments import EXPIRED_WITHOUT_BANK
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope, narrow

ACCEPTED = "bank_payment_accepted"
REFUNDED = "bank_payment_refunded"
Action = Literal["accepted", "refunded"]
MAX_NOTE = 500


@dataclass(frozen=True, slots=True)
class BankClaim:
    """What the bank said it took under the payment's reference, still waiting for a person."""

    bank_payment_id: str
    money: Money
    paid_at: datetime | None
    reason: str  # the attention flag it raised


@dataclass(frozen=True, slots=True)
class Answer:
    payment: Payment
    action: Action
    already: bool  # the same answer was given before: nothing changed now
    refund: Refund | None = None


def open_claim(uow: UnitOfWork, payment: Payment) -> BankClaim | None:
    """The newest flagged bank payment whose flag is still on the payment, if any."""
    flagged = [r for r in (payment.attention or "").split("; ") if r]
    if not flagged:
        return None
    entries = uow.session.scalars(
        select(PaymentEvent)
        .where(PaymentEvent.payment_id == payment.id, PaymentEvent.kind == "attention")
        .order_by(PaymentEvent.id.desc())
    )
    for entry in entries:
        claim = _claim(entry.detail or {})
        if claim is not None and claim.reason in flagged:
            return claim
    return None


def accept(
    uow: UnitOfWork, payment_id: str, scope: Scope | int, *, note: str, actor: str
) -> Answer:
    """The manager accepts the money the bank took as this payment's (see the module)."""
    payment, claim = _question(uow, payment_id, scope, "accepted")
    if claim is None:
        return Answer(payment, "accepted", already=True)
    before = payment.status
    _accept(uow, payment, claim, _note(note), actor, ACCEPTED)
    _audit(uow, payment, "payment.bank_money_accepted", actor, before, claim, note)
    return Answer(payment, "accepted", already=False)


def refund(
    uow: UnitOfWork, payment_id: str, scope: Scope | int, *, note: str, actor: str
) -> Answer:
    """The manager gives the money the bank took back to the customer (see the module)."""
    payment, claim = _question(uow, payment_id, scope, "refunded")
    if claim is None:
        return Answer(payment, "refunded", already=True)
    text = _note(note)
    before = payment.status
    _accept(uow, payment, claim, text, actor, REFUNDED)
    _audit(uow, payment, "payment.bank_money_refunded", actor, before, claim, note)
    given_back = refunds.request_refund(
        uow,
        payment.id,
        scope,
        amount=claim.money,
        reason=f"bank payment {claim.bank_payment_id} given back: {text}",
        actor=actor,
    )
    return Answer(payment, "refunded", already=False, refund=given_back)


def _audit(
    uow: UnitOfWork,
    payment: Payment,
    action: str,
    actor: str,
    before: str,
    claim: BankClaim,
    note: str,
) -> None:
    audit.record(
        uow,
        action,
        actor=actor,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        target=("payment", payment.id),
        before={"status": before},
        after={
            "status": payment.status,
            "bank_payment_id": claim.bank_payment_id,
            "amount": claim.money.to_decimal_string(),
            "currency": claim.money.currency,
            "note": note.strip(),
        },
    )


def _question(
    uow: UnitOfWork, payment_id: str, scope: Scope | int, wanted: Action
) -> tuple[Payment, BankClaim | None]:
    """The payment (row locked, inside the caller's scope) and its open claim; None if
    ``wanted`` was already done."""
    payment = uow.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id, narrow(scope, Payment.merchant_id, Payment.store_id))
        .with_for_update()
    )
    if payment is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    claim = open_claim(uow, payment)
    if claim is not None:
        if claim.money.currency != payment.currency:
            raise Conflict(
                f"the bank took {claim.money}, not in the payment's {payment.currency}: "
                "settle it with the bank",
                current_status=payment.status,
            )
        return payment, claim
    answered = uow.session.scalar(
        select(PaymentEvent.kind)
        .where(PaymentEvent.payment_id == payment.id, PaymentEvent.kind.in_([ACCEPTED, REFUNDED]))
        .order_by(PaymentEvent.id.desc())
        .limit(1)
    )
    if answered == (ACCEPTED if wanted == "accepted" else REFUNDED):
        return payment, None
    if answered is not None:
        raise Conflict(
            "this payment's bank money was already accepted; refund it the ordinary way"
            if answered == ACCEPTED
            else "this payment's bank money is already being refunded",
            current_status=payment.status,
        )
    raise Conflict(
        "this payment has no question about money the bank took: nothing to accept or refund",
        current_status=payment.status,
    )


def _accept(
    uow: UnitOfWork, payment: Payment, claim: BankClaim, note: str, actor: str, kind: str
) -> None:
    asked = Money(payment.amount_minor, payment.currency)
    detail = {
        "note": note,
        "bank_payment_id": claim.bank_payment_id,
        "amount": claim.money.to_decimal_string(),
        "currency": claim.money.currency,
        "reason": claim.reason,
    }
    if payment.status in PAID_STATES:  # a second payment under the reference: add it
        payment.amount_minor += claim.money.minor
        record_event(uow, payment, kind, actor, {**detail, "asked": asked.to_decimal_string()})
    else:
        if claim.money != asked:
            detail["asked"] = asked.to_decimal_string()
            payment.amount_minor = claim.money.minor
        payment.bank_payment_id = claim.bank_payment_id
        status = PaymentStatus(payment.status)
        move_payment(
            uow,
            payment,
            PaymentStatus.PAID,
            kind,
            actor,
            detail,
            paid_at=claim.paid_at,
            by_manager=PaymentStatus.PAID not in TRANSITIONS[status],
        )
    clear_attention(uow, payment, claim.reason, actor)
    clear_attention(uow, payment, EXPIRED_WITHOUT_BANK, actor)


def _claim(detail: dict[str, object]) -> BankClaim | None:
    bank_payment_id, amount = detail.get("bank_payment_id"), detail.get("amount")
    currency, reason = detail.get("currency"), detail.get("reason")
    if not all(isinstance(v, str) and v for v in (bank_payment_id, amount, currency, reason)):
        return None
    paid_at = detail.get("paid_at")
    return BankClaim(
        str(bank_payment_id),
        Money.parse(str(amount), str(currency)),
        datetime.fromisoformat(paid_at) if isinstance(paid_at, str) else None,
        str(reason),
    )


def _note(note: str) -> str:
    text = " ".join(note.split())
    if not text:
        raise InvalidInput("say why in a note: it stays in the payment's history")
    if len(text) > MAX_NOTE:
        raise InvalidInput(f"the note is longer than {MAX_NOTE} characters")
    return text
