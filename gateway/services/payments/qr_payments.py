"""Dynamic-QR payments: issue the EMV payload, expire it, and take the bank's word it was paid."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Payment, Store, utcnow
from gateway.domain import emv_qr
from gateway.domain.money import Money
from gateway.domain.payment import OPEN_STATES, TRANSITIONS, PaymentMethod, PaymentStatus
from gateway.domain.sentences import N_, say
from gateway.errors import Conflict, InvalidInput
from gateway.services import jobs
from gateway.services.payments.currencies import check_accepted
from gateway.services.payments.lifecycle import (
    PAID_STATES,
    flag_attention,
    move_payment,
    new_payment,
)
from gateway.services.staff.auth import TillContext
from gateway.services.webhooks import outbox
from gateway.settings import PaymentSettings

# Crockford's base32 without I, L, O, U: readable aloud and on a receipt.
_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EXPIRE_JOB = "expire_payment"  # queued by earlier versions; the watcher handles it too
POLL_JOB = "poll_bank_payment"
# The attention flag of a payment expired while the bank could not be asked.
EXPIRED_WITHOUT_BANK = N_(
    "expired without the bank's word (it did not answer): check with the bank whether the "
    "customer paid"
)
# The attention flags of the bank's word that does not fit the payment (a manager answers).
PAID_TWICE = N_(
    "the bank reported a second payment (%(bank_payment)s) for this reference, already paid as "
    "%(paid_as)s: refund the customer one of them"
)
PAID_OTHER_AMOUNT = N_(
    "the bank reported %(paid)s paid, but the payment is for %(expected)s: check with the "
    "customer and the bank before handing over the goods"
)
PAID_TOO_LATE = N_(
    "paid at the bank after it was %(status)s here: refund the customer or accept the payment"
)


def new_reference() -> str:
    """A payment reference for EMV tag 62-05: 'K' + 12 base32 characters (60 random bits)."""
    return "K" + "".join(secrets.choice(_REFERENCE_ALPHABET) for _ in range(12))


def merchant_profile(merchant: Merchant) -> emv_qr.MerchantProfile:
    accounts = tuple(
        emv_qr.MerchantAccount(
            tag=a["tag"],
            gui=a.get("gui"),
            fields=tuple((k, v) for k, v in (a.get("fields") or {}).items()),
            value=a.get("value"),
        )
        for a in merchant.qr_accounts
    )
    return emv_qr.MerchantProfile(
        name=merchant.qr_name,
        city=merchant.qr_city,
        country=merchant.country,
        mcc=merchant.mcc,
        accounts=accounts,
        postal_code=merchant.postal_code,
        language=merchant.language,
        local_name=merchant.local_name,
        local_city=merchant.local_city,
    )


def create_qr_payment(
    uow: UnitOfWork,
    till: TillContext,
    *,
    money: Money,
    settings: PaymentSettings,
    bill_number: str | None = None,
    expires_in: int | None = None,
    actor: str | None = None,
) -> Payment:
    """Create a dynamic-QR payment, issue its payload and schedule its expiry (not committed)."""
    seconds = settings.default_expiry_seconds if expires_in is None else expires_in
    if not settings.min_expiry_seconds <= seconds <= settings.max_expiry_seconds:
        raise InvalidInput(
            f"expires_in must be between {settings.min_expiry_seconds} and "
            f"{settings.max_expiry_seconds} seconds, got {seconds}"
        )
    check_accepted(uow, till, money, settings.currencies)
    merchant = uow.session.get_one(Merchant, till.merchant_id)
    now = utcnow()
    expires_at = (now + timedelta(seconds=seconds)).replace(microsecond=0)
    reference = new_reference()
    payload = emv_qr.build_payment_payload(
        merchant_profile(merchant),
        money,
        reference=reference,
        terminal_label=till.label,
        bill_number=bill_number,
        expires_at=expires_at,
        expiry_gui=settings.expiry_gui,
    )
    payment = new_payment(
        uow,
        till,
        money,
        PaymentMethod.QR,
        reference=reference,
        bill_number=bill_number,
        actor=actor,
        created_at=now,
        qr_payload=payload,
        expires_at=expires_at,
    )
    move_payment(
        uow,
        payment,
        PaymentStatus.PENDING,
        "qr_issued",
        payment.created_by,
        {"expires_at": expires_at.isoformat()},
    )
    # One job watches the payment: it asks the bank while no callback came and, at the expiry
    # time, asks once more before expiring it (gateway.services.bank.polling).
    first = now + timedelta(seconds=settings.bank_poll_after_seconds)
    jobs.enqueue_row(
        uow,
        POLL_JOB,
        {"payment_id": payment.id, "reference": reference, "n": 0},
        run_at=min(first, expires_at) if settings.bank_poll_after_seconds else expires_at,
        dedupe_key=f"watch:{payment.id}:0",
    )
    return payment


def expire_payment(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Expire the payment if the customer has not paid by its expiry time (without asking the
    bank; the worker's watcher asks it first)."""
    payment = uow.session.get(Payment, payload["payment_id"])
    if payment is None or payment.status not in OPEN_STATES:
        return
    if payment.expires_at and payment.expires_at > utcnow():
        raise Conflict("expiry job ran before the payment's expiry time")  # retried later
    expire(uow, payment, {})


def expire(uow: UnitOfWork, payment: Payment, detail: dict[str, Any]) -> None:
    """Expire an open payment now; ``detail`` says what the bank answered before."""
    move_payment(uow, payment, PaymentStatus.EXPIRED, "expired", "system:expiry", detail)


def payment_by_reference(uow: UnitOfWork, reference: str) -> Payment | None:
    """The payment with this EMV 62-05 reference, its row locked (PostgreSQL) until commit.

    The same statement reads what the after-change hooks of its move to paid would each ask
    for again: its merchant (the monitoring thresholds) and store (opening hours), which stay
    in the unit of work (not locked), and whether the merchant has an active webhook endpoint.
    """
    row = uow.session.execute(_lock_by_reference(), {"reference": reference}).first()
    if row is None:
        return None
    payment, merchant, store, endpoints = row
    uow.keep(merchant, store)
    if not endpoints:
        outbox.note_none_active(uow, payment.merchant_id)
    return payment


@lru_cache(maxsize=1)
def _lock_by_reference() -> Any:
    """Built once: a statement with a bound parameter is compiled once and then reused."""
    return (
        select(Payment, Merchant, Store, outbox.any_active(Payment.merchant_id))
        .join(Merchant, Merchant.id == Payment.merchant_id)
        .join(Store, Store.id == Payment.store_id)
        .where(Payment.reference == bindparam("reference"))
        .with_for_update(of=Payment)
    )


def bank_payment_detail(
    detail: dict[str, Any], money: Money, bank_payment_id: str, paid_at: datetime
) -> dict[str, Any]:
    """``detail`` with what the bank took, for the payment's history: a manager's answer needs
    it if the bank's word is flagged instead of applied (gateway.services.payments.attention)."""
    return {
        **detail,
        "bank_payment_id": bank_payment_id,
        "amount": money.to_decimal_string(),
        "currency": money.currency,
        "paid_at": paid_at.isoformat(),
    }


def record_bank_payment(
    uow: UnitOfWork,
    payment: Payment,
    *,
    money: Money,
    bank_payment_id: str,
    paid_at: datetime,
    actor: str,
    detail: dict[str, Any],
) -> None:
    """Apply the bank's word that the customer paid; the caller holds the payment's row lock.

    Only an exact amount moves an open payment to paid; anything else is flagged for a person
    (``attention``) and leaves the state alone. The same bank payment reported again changes
    nothing, so the callback may be delivered any number of times.
    """
    expected = Money(payment.amount_minor, payment.currency)
    detail = bank_payment_detail(detail, money, bank_payment_id, paid_at)
    if payment.status in PAID_STATES:
        if payment.bank_payment_id in (None, bank_payment_id):
            payment.bank_payment_id = bank_payment_id
            return
        flag_attention(
            uow,
            payment,
            say(PAID_TWICE, bank_payment=bank_payment_id, paid_as=payment.bank_payment_id),
            actor,
            detail,
        )
    elif money != expected:
        flag_attention(
            uow,
            payment,
            say(PAID_OTHER_AMOUNT, paid=money, expected=expected),
            actor,
            detail,
        )
    elif PaymentStatus.PAID not in TRANSITIONS[PaymentStatus(payment.status)]:
        payment.bank_payment_id = payment.bank_payment_id or bank_payment_id
        flag_attention(
            uow,
            payment,
            say(PAID_TOO_LATE, status=payment.status),
            actor,
            detail,
        )
    else:
        payment.bank_payment_id = bank_payment_id
        move_payment(uow, payment, PaymentStatus.PAID, "paid", actor, detail, paid_at=paid_at)
