"""Payment use cases: create a QR payment, cancel, expire, mark paid, read and list."""

from __future__ import annotations

import secrets
import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, func, insert, select, update
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Payment, PaymentEvent, Till, utcnow
from gateway.domain import emv_qr
from gateway.domain.money import Money
from gateway.domain.payment import (
    OPEN_STATES,
    TRANSITIONS,
    PaymentMethod,
    PaymentStatus,
    check_transition,
)
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services import jobs, redemptions
from gateway.services.auth import TillContext

# Crockford's base32 without I, L, O, U: readable aloud and on a receipt.
_REFERENCE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
EXPIRE_JOB = "expire_payment"


@dataclass(frozen=True, slots=True)
class PaymentSettings:
    default_expiry_seconds: int = 300
    min_expiry_seconds: int = 30
    max_expiry_seconds: int = 3600
    expiry_gui: str = "IO.KASSA"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> PaymentSettings:
        p = config["payments"]
        return cls(
            int(p["default_expiry_seconds"]),
            int(p["min_expiry_seconds"]),
            int(p["max_expiry_seconds"]),
            str(p["expiry_gui"]),
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


def positive_amount(amount: str, currency: str) -> Money:
    money = Money.parse(amount, currency)
    if money.minor <= 0:
        raise InvalidInput(f"amount must be greater than zero, got {money.to_decimal_string()}")
    return money


def new_payment(
    uow: UnitOfWork,
    till: TillContext,
    money: Money,
    method: PaymentMethod,
    *,
    reference: str,
    bill_number: str | None,
    actor: str | None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Payment:
    """A new payment in state ``created`` with the first entry of its history (not committed)."""
    now = created_at or utcnow()
    payment = Payment(
        id=str(uuid.uuid4()),
        merchant_id=till.merchant_id,
        store_id=till.store_id,
        till_id=till.till_id,
        method=method.value,
        status=PaymentStatus.CREATED.value,
        amount_minor=money.minor,
        currency=money.currency,
        reference=reference,
        bill_number=bill_number,
        created_by=actor or till.actor,
        created_at=now,
        updated_at=now,
        **fields,
    )
    uow.session.add(payment)
    _record(
        uow,
        payment,
        "created",
        None,
        PaymentStatus.CREATED,
        payment.created_by,
        {"amount": money.to_decimal_string(), "currency": money.currency},
    )
    return payment


def create_qr_payment(
    uow: UnitOfWork,
    till: TillContext,
    *,
    amount: str,
    currency: str,
    settings: PaymentSettings,
    bill_number: str | None = None,
    expires_in: int | None = None,
    actor: str | None = None,
) -> Payment:
    """Create a dynamic-QR payment, issue its payload and schedule its expiry (not committed)."""
    money = positive_amount(amount, currency)
    seconds = settings.default_expiry_seconds if expires_in is None else expires_in
    if not settings.min_expiry_seconds <= seconds <= settings.max_expiry_seconds:
        raise InvalidInput(
            f"expires_in must be between {settings.min_expiry_seconds} and "
            f"{settings.max_expiry_seconds} seconds, got {seconds}"
        )
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
    _move(
        uow,
        payment,
        PaymentStatus.PENDING,
        "qr_issued",
        payment.created_by,
        {"expires_at": expires_at.isoformat()},
    )
    jobs.enqueue(
        uow,
        EXPIRE_JOB,
        {"payment_id": payment.id},
        run_at=expires_at,
        dedupe_key=f"expire:{payment.id}",
    )
    return payment


def get_payment(uow: UnitOfWork, payment_id: str, merchant_id: int) -> Payment:
    payment = uow.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id, Payment.merchant_id == merchant_id)
        .options(selectinload(Payment.events), selectinload(Payment.till))
    )
    if payment is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    return payment


def qr_payload(uow: UnitOfWork, payment_id: str, merchant_id: int) -> str | None:
    """Just the QR payload of a payment (the hot path of every QR image request)."""
    row = uow.session.execute(
        select(Payment.qr_payload).where(
            Payment.id == payment_id, Payment.merchant_id == merchant_id
        )
    ).first()
    if row is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    return row[0]


def cancel_payment(uow: UnitOfWork, payment_id: str, merchant_id: int, actor: str) -> Payment:
    payment = get_payment(uow, payment_id, merchant_id)
    if payment.status == PaymentStatus.CANCELLED:
        return payment  # a double click or a retry: already done
    if payment.method == PaymentMethod.CARD:
        from gateway.services import cards  # card payments are cancelled at the terminal

        cards.request_reversal(uow, payment, actor)
        return payment
    _move(uow, payment, PaymentStatus.CANCELLED, "cancelled", actor, {})
    return payment


def expire_payment(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Job handler: expire the payment if the customer has not paid by its expiry time."""
    payment = uow.session.get(Payment, payload["payment_id"])
    if payment is None or payment.status not in OPEN_STATES:
        return
    if payment.expires_at and payment.expires_at > utcnow():
        raise Conflict("expiry job ran before the payment's expiry time")  # retried later
    _move(uow, payment, PaymentStatus.EXPIRED, "expired", "system:expiry", {})


def mark_paid(
    uow: UnitOfWork,
    payment_id: str,
    *,
    amount_minor: int,
    currency: str,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> Payment:
    """Record that the customer paid (a bank notification, or a test in this issue).

    Amount and currency must match exactly; a repeated notification is a no-op.
    """
    payment = uow.session.get(Payment, payment_id)
    if payment is None:
        raise NotFound(f"no payment {payment_id!r}")
    if payment.status == PaymentStatus.PAID:
        return payment
    if (amount_minor, currency) != (payment.amount_minor, payment.currency):
        paid = Money(amount_minor, currency)
        raise Conflict(
            f"paid {paid} but the payment is for {Money(payment.amount_minor, payment.currency)}"
        )
    _move(uow, payment, PaymentStatus.PAID, "paid", actor, detail or {})
    payment.paid_at = utcnow()
    return payment


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    store_id: int | None = None
    limit: int = 50
    offset: int = 0


def list_payments(
    uow: UnitOfWork, merchant_id: int, flt: PaymentFilter
) -> tuple[list[Payment], int]:
    """A merchant's payments, newest first, and how many match in all."""
    conditions = [Payment.merchant_id == merchant_id]
    if flt.status:
        conditions.append(Payment.status == PaymentStatus(flt.status).value)
    if flt.store_id:
        conditions.append(Payment.store_id == flt.store_id)
    if flt.date_from:
        conditions.append(Payment.created_at >= _day_start(flt.date_from))
    if flt.date_to:
        conditions.append(Payment.created_at < _day_start(flt.date_to + timedelta(days=1)))
    total = uow.session.scalar(select(func.count()).select_from(Payment).where(*conditions)) or 0
    rows = uow.session.scalars(
        select(Payment)
        .where(*conditions)
        .options(selectinload(Payment.till))
        .order_by(Payment.created_at.desc(), Payment.id.desc())
        .limit(flt.limit)
        .offset(flt.offset)
    )
    return list(rows), total


def _day_start(day: date) -> datetime:
    from datetime import UTC

    return datetime.combine(day, time.min, tzinfo=UTC)


def _move(
    uow: UnitOfWork,
    payment: Payment,
    target: PaymentStatus,
    kind: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    before = payment.status
    check_transition(before, target)
    payment.status = target.value
    payment.updated_at = utcnow()
    _record(uow, payment, kind, before, target, actor, detail)
    try:
        uow.session.flush()
    except StaleDataError:
        uow.session.rollback()
        raise Conflict(
            "the payment was changed by someone else at the same moment; read it again"
        ) from None
    if payment.sale_id is not None:
        redemptions.on_payment_moved(uow, payment, target.value)


def _record(
    uow: UnitOfWork,
    payment: Payment,
    kind: str,
    before: str | None,
    after: PaymentStatus,
    actor: str,
    detail: dict[str, Any],
) -> None:
    uow.session.add(
        PaymentEvent(
            payment_id=payment.id,
            kind=kind,
            from_status=before,
            to_status=after.value,
            actor=actor,
            detail=detail,
            created_at=utcnow(),
        )
    )


def till_for(uow: UnitOfWork, till_id: int) -> Till:
    return uow.session.get_one(Till, till_id)


# States in which the customer has paid (whatever happened afterwards).
PAID_STATES = frozenset(
    {
        PaymentStatus.PAID,
        PaymentStatus.SETTLED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    }
)


def payment_by_reference(uow: UnitOfWork, reference: str) -> Payment | None:
    """The payment with this EMV 62-05 reference, its row locked (PostgreSQL) until commit."""
    return uow.session.scalar(
        select(Payment).where(Payment.reference == reference).with_for_update()
    )


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
    if payment.status in PAID_STATES:
        if payment.bank_payment_id in (None, bank_payment_id):
            payment.bank_payment_id = bank_payment_id
            return
        flag_attention(
            uow,
            payment,
            f"the bank reported a second payment ({bank_payment_id}) for this reference, "
            f"already paid as {payment.bank_payment_id}: refund the customer one of them",
            actor,
            detail,
        )
    elif money != expected:
        flag_attention(
            uow,
            payment,
            f"the bank reported {money} paid, but the payment is for {expected}: "
            "check with the customer and the bank before handing over the goods",
            actor,
            detail,
        )
    elif PaymentStatus.PAID not in TRANSITIONS[PaymentStatus(payment.status)]:
        payment.bank_payment_id = payment.bank_payment_id or bank_payment_id
        flag_attention(
            uow,
            payment,
            f"paid at the bank after it was {payment.status} here: "
            "refund the customer or accept the payment",
            actor,
            detail,
        )
    else:
        payment.bank_payment_id = bank_payment_id
        payment.paid_at = paid_at
        _move(uow, payment, PaymentStatus.PAID, "paid", actor, detail)


def flag_attention(
    uow: UnitOfWork, payment: Payment, reason: str, actor: str, detail: dict[str, Any]
) -> None:
    """Ask a person to look at the payment, once per reason, and say why in its history."""
    if reason in (payment.attention or ""):
        return
    payment.attention = f"{payment.attention}; {reason}" if payment.attention else reason
    payment.updated_at = utcnow()
    uow.session.add(
        PaymentEvent(
            payment_id=payment.id,
            kind="attention",
            from_status=payment.status,
            to_status=payment.status,
            actor=actor,
            detail={"reason": reason, **detail},
            created_at=utcnow(),
        )
    )


def mark_paid_by_bank(
    uow: UnitOfWork,
    *,
    reference: str,
    money: Money,
    bank_payment_id: str,
    paid_at: datetime,
    actor: str,
    detail: dict[str, Any],
) -> bool:
    """The common case in one statement: a pending payment of exactly ``money`` becomes paid.

    A conditional UPDATE … RETURNING (compare-and-set on status, amount and currency) checks and
    moves the payment without reading it first, and takes its row lock; a concurrent second
    notification waits, then finds it no longer pending. False if nothing matched (unknown,
    not pending, another amount): the caller then takes :func:`record_bank_payment`'s way.
    """
    check_transition(PaymentStatus.PENDING, PaymentStatus.PAID)
    now = utcnow()
    table = cast(Table, Payment.__table__)
    connection = uow.session.connection()
    found = connection.execute(
        update(table)
        .where(
            table.c.reference == reference,
            table.c.status == PaymentStatus.PENDING.value,
            table.c.amount_minor == money.minor,
            table.c.currency == money.currency,
        )
        .values(
            status=PaymentStatus.PAID.value,
            paid_at=paid_at,
            bank_payment_id=bank_payment_id,
            updated_at=now,
            version=table.c.version + 1,
        )
        .returning(table.c.id, table.c.sale_id)
    ).first()
    if found is None:
        return False
    payment_id, sale_id = found
    connection.execute(
        insert(cast(Table, PaymentEvent.__table__)).values(
            payment_id=payment_id,
            kind="paid",
            from_status=PaymentStatus.PENDING.value,
            to_status=PaymentStatus.PAID.value,
            actor=actor,
            detail=detail,
            created_at=now,
        )
    )
    if sale_id is not None:
        redemptions.on_payment_status(uow, sale_id, PaymentStatus.PAID.value, paid_at)
    return True
