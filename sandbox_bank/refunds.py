"""Refunds: accepted as ``pending``, finished shortly after with a callback.

The ceiling (never more than paid minus refunded) is enforced by one conditional ``UPDATE`` of
the payment's reserved amount, which the database serialises per row: concurrent refunds can
never together exceed the payment, on SQLite or PostgreSQL, in one process or many. A failed
refund gives its reservation back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from gateway.adapters import logging_setup
from gateway.domain.money import Money
from gateway.errors import InvalidMoney
from sandbox_bank import events, faults, idempotency
from sandbox_bank.errors import Conflict, InvalidRequest, NotFound, RefundExceedsPayment
from sandbox_bank.models import Merchant, Payment, Refund, Wallet, utcnow
from sandbox_bank.settings import SandboxSettings

FAULT_REASON = "declined by the wallet's issuer (sandbox fault refund_fail)"


@dataclass(frozen=True)
class RefundRequest:
    refund_id: str
    payment_reference: str
    amount: Money


def parse(body: Any) -> RefundRequest:
    """Validate ``{refund_id, payment_reference, amount, currency}``."""
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object")
    refund_id, reference = body.get("refund_id"), body.get("payment_reference")
    if not isinstance(refund_id, str) or not 1 <= len(refund_id) <= 35 or not refund_id.isascii():
        raise InvalidRequest("refund_id must be 1 to 35 ASCII characters (it goes into camt files)")
    if not isinstance(reference, str) or not 1 <= len(reference) <= 25:
        raise InvalidRequest("payment_reference must be the payment's reference label (62-05)")
    code = body.get("currency")
    try:
        money = Money.parse(body.get("amount"), code if isinstance(code, str) else "")
    except InvalidMoney as exc:
        raise InvalidRequest(f"amount/currency: {exc}") from None
    if money.minor <= 0:
        raise InvalidRequest(f"a refund needs a positive amount, not {money}")
    return RefundRequest(refund_id, reference, money)


def request(
    session: Session,
    settings: SandboxSettings,
    merchant: Merchant,
    body: Any,
    key: str,
    now: datetime | None = None,
) -> idempotency.Answer:
    """``POST /v1/refunds``: reserve the amount and answer 201 pending (replayed per key)."""
    wanted = parse(body)
    fingerprint = idempotency.request_hash("POST", "/v1/refunds", body)

    def create() -> idempotency.Answer:
        return _create(session, settings, merchant, wanted, key, now or utcnow())

    def refund_id_taken() -> idempotency.Answer:
        raise Conflict(f"refund_id {wanted.refund_id!r} is already used by another refund")

    return idempotency.run_once(
        session, merchant.merchant_id, key, fingerprint, create, refund_id_taken
    )


def _create(
    session: Session,
    settings: SandboxSettings,
    merchant: Merchant,
    wanted: RefundRequest,
    key: str,
    now: datetime,
) -> idempotency.Answer:
    payment = _payment(session, merchant, wanted.payment_reference)
    if wanted.amount.currency != payment.currency:
        raise InvalidRequest(
            f"payment {payment.reference} was paid in {payment.currency},"
            f" not {wanted.amount.currency}"
        )
    taken = session.scalar(
        select(Refund.bank_refund_id).where(
            Refund.merchant_id == merchant.merchant_id, Refund.refund_id == wanted.refund_id
        )
    )
    if taken is not None:
        raise Conflict(f"refund_id {wanted.refund_id!r} is already used by refund {taken}")
    _reserve(session, payment, wanted.amount.minor)
    refund = Refund(
        bank_refund_id=events.new_id("rfd"),
        merchant_id=merchant.merchant_id,
        refund_id=wanted.refund_id,
        payment_id=payment.id,
        amount_minor=wanted.amount.minor,
        currency=payment.currency,
        status="pending",
        idempotency_key=key,
        request_id=logging_setup.request_id.get(),
        created_at=now,
        process_after=now + timedelta(milliseconds=settings.refund_delay_ms),
    )
    session.add(refund)
    session.flush()
    return 201, events.refund_json(refund, payment)


def _payment(session: Session, merchant: Merchant, reference: str) -> Payment:
    payment = session.scalar(
        select(Payment).where(
            Payment.merchant_id == merchant.merchant_id, Payment.reference == reference
        )
    )
    if payment is None:
        raise NotFound(f"no wallet has paid a payment with reference {reference!r}")
    return payment


def _reserve(session: Session, payment: Payment, minor: int) -> None:
    reserved = session.execute(
        update(Payment)
        .where(Payment.id == payment.id, Payment.amount_minor - Payment.refunded_minor >= minor)
        .values(refunded_minor=Payment.refunded_minor + minor)
        .execution_options(synchronize_session=False)
    )
    if reserved.rowcount != 1:  # type: ignore[attr-defined]
        session.refresh(payment)
        left = payment.amount_minor - payment.refunded_minor
        raise RefundExceedsPayment(
            f"payment {payment.reference} has {events.amount(left, payment.currency)}"
            f" {payment.currency} left to refund (paid minus refunded or pending refunds)",
            refundable=events.amount(left, payment.currency),
        )


def get(session: Session, merchant: Merchant, refund_id: str) -> dict[str, Any]:
    refund = session.scalar(
        select(Refund).where(
            Refund.merchant_id == merchant.merchant_id, Refund.refund_id == refund_id
        )
    )
    if refund is None:
        raise NotFound(f"no refund with refund_id {refund_id!r}")
    payment = session.get_one(Payment, refund.payment_id)
    return events.refund_json(refund, payment)


def complete_due(session: Session, now: datetime | None = None) -> int:
    """Finish pending refunds whose delay has passed; queue their callbacks. Returns how many."""
    now = now or utcnow()
    due = session.scalars(
        select(Refund)
        .where(Refund.status == "pending", Refund.process_after <= now)
        .order_by(Refund.id)
    ).all()
    for refund in due:
        _complete(session, refund, now)
        session.commit()
    return len(due)


def _complete(session: Session, refund: Refund, now: datetime) -> None:
    payment = session.get_one(Payment, refund.payment_id)
    merchant = session.get_one(Merchant, refund.merchant_id)
    refund.processed_at = now
    if faults.effective(merchant)["refund_fail"]:
        refund.status, refund.reason = "failed", FAULT_REASON
        session.execute(  # give the reservation back
            update(Payment)
            .where(Payment.id == payment.id)
            .values(refunded_minor=Payment.refunded_minor - refund.amount_minor)
            .execution_options(synchronize_session=False)
        )
    else:
        refund.status = "succeeded"
        session.execute(
            update(Wallet)
            .where(Wallet.wallet_id == payment.wallet_id)
            .values(balance_minor=Wallet.balance_minor + refund.amount_minor)
            .execution_options(synchronize_session=False)
        )
    session.flush()
    data = events.refund_json(refund, payment)
    data.pop("status")
    events.queue_callback(
        session,
        merchant.merchant_id,
        f"refund.{refund.status}",
        data,
        now,
        request_id=refund.request_id,
    )
