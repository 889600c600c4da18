"""Reading payments: one payment of a merchant, its QR payload, and the merchant's list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import selectinload

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment
from gateway.domain.payment import PaymentStatus
from gateway.errors import NotFound
from gateway.services.staff.scope import Scope, narrow


def in_scope(scope: Scope | int) -> ColumnElement[bool]:
    """Payments the caller may see: their merchant's, and only their store's if bound to one."""
    return narrow(scope, Payment.merchant_id, Payment.store_id)


def get_payment(uow: UnitOfWork, payment_id: str, scope: Scope | int) -> Payment:
    """One payment inside the caller's scope; outside it, "not found" like an unknown id."""
    payment = uow.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id, in_scope(scope))
        .options(selectinload(Payment.events), selectinload(Payment.till))
    )
    if payment is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    return payment


def qr_payload(uow: UnitOfWork, payment_id: str, scope: Scope | int) -> str | None:
    """Just the QR payload of a payment (the hot path of every QR image request)."""
    row = uow.session.execute(
        select(Payment.qr_payload).where(Payment.id == payment_id, in_scope(scope))
    ).first()
    if row is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    return row[0]


def payment_currency(uow: UnitOfWork, payment_id: str, scope: Scope | int) -> str:
    """The currency a payment is in (to read an amount typed for it, such as a refund's)."""
    currency = uow.session.scalar(
        select(Payment.currency).where(Payment.id == payment_id, in_scope(scope))
    )
    if currency is None:
        raise NotFound(f"no payment {payment_id!r} for this merchant")
    return currency


def recent_payments(uow: UnitOfWork, till_id: int, limit: int = 20) -> list[Payment]:
    """A till's last payments, newest first: where a cashier finds a sale to refund."""
    return list(
        uow.session.scalars(
            select(Payment)
            .where(Payment.till_id == till_id)
            .options(selectinload(Payment.store))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True, slots=True)
class PaymentFilter:
    status: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    store_id: int | None = None
    limit: int = 50
    offset: int = 0


def list_payments(
    uow: UnitOfWork, scope: Scope | int, flt: PaymentFilter
) -> tuple[list[Payment], int]:
    """A merchant's (or one store's) payments, newest first, and how many match in all."""
    conditions = [in_scope(scope)]
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
    return datetime.combine(day, time.min, tzinfo=UTC)
