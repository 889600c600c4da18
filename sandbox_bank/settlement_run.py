"""The settlement run: batch a merchant's unsettled payments and refunds up to a day, once.

A run for date D takes every payment paid, and every refund finished, before the end of D (UTC)
that no earlier run took, so nothing is left out or counted twice even when a day is settled
while it is still open. Runs are idempotent per merchant and date: asking again returns the
first run. Each run stores its camt.053, camt.054 and CSV files and queues
``settlement.created``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sandbox_bank import camt, events
from sandbox_bank.errors import NotFound
from sandbox_bank.models import Merchant, Payment, Refund, Settlement, utcnow
from sandbox_bank.settlement import SettlementBatch, SettlementLine, fee_minor, to_csv


def run(
    session: Session, merchant: Merchant, day: date, base_url: str, now: datetime | None = None
) -> tuple[Settlement, bool]:
    """Settle ``day`` for ``merchant``; returns the settlement and whether this call made it."""
    existing = find(session, merchant.merchant_id, day)
    if existing is not None:
        return existing, False
    now = now or utcnow()
    end = datetime.combine(day + timedelta(days=1), time(), UTC)
    payments = session.scalars(
        select(Payment)
        .where(
            Payment.merchant_id == merchant.merchant_id,
            Payment.settlement_id.is_(None),
            Payment.paid_at < end,
        )
        .order_by(Payment.paid_at, Payment.id)
    ).all()
    refunds = session.scalars(
        select(Refund)
        .where(
            Refund.merchant_id == merchant.merchant_id,
            Refund.status == "succeeded",
            Refund.settlement_id.is_(None),
            Refund.processed_at < end,
        )
        .order_by(Refund.processed_at, Refund.id)
    ).all()
    batch = _batch(session, merchant, day, now, payments, refunds)
    settlement = _store(session, batch)
    for payment in payments:
        payment.settlement_id = batch.settlement_id
    for refund in refunds:
        refund.settlement_id = batch.settlement_id
    events.queue_callback(
        session,
        merchant.merchant_id,
        "settlement.created",
        _callback_data(settlement, base_url),
        now,
    )
    try:
        session.commit()
    except IntegrityError:  # another process settled the same day first
        session.rollback()
        return _existing(session, merchant.merchant_id, day), False
    return settlement, True


def find(session: Session, merchant_id: str, day: date) -> Settlement | None:
    return session.scalar(
        select(Settlement).where(
            Settlement.merchant_id == merchant_id, Settlement.settlement_date == day
        )
    )


def _existing(session: Session, merchant_id: str, day: date) -> Settlement:
    settlement = find(session, merchant_id, day)
    if settlement is None:
        raise NotFound(f"no settlement for {day.isoformat()}")
    return settlement


def _callback_data(settlement: Settlement, base_url: str) -> dict[str, object]:
    data = events.settlement_json(settlement, base_url)
    data.pop("refund_count")
    return data


def _batch(
    session: Session,
    merchant: Merchant,
    day: date,
    now: datetime,
    payments: Sequence[Payment],
    refunds: Sequence[Refund],
) -> SettlementBatch:
    lines = [_payment_line(merchant, p) for p in payments]
    lines += [_refund_line(session, r) for r in refunds]
    opening = session.scalar(
        select(func.coalesce(func.sum(Settlement.net_minor), 0)).where(
            Settlement.merchant_id == merchant.merchant_id
        )
    )
    return SettlementBatch(
        settlement_id=events.new_id("stl"),
        merchant_id=merchant.merchant_id,
        merchant_name=merchant.name,
        iban=merchant.iban,
        settlement_date=day,
        currency=merchant.currency,
        created_at=now,
        opening_balance_minor=int(opening or 0),
        lines=tuple(lines),
    )


def _payment_line(merchant: Merchant, payment: Payment) -> SettlementLine:
    details = [f"Kassa payment {payment.reference}"]
    if payment.bill_number:
        details.append(f"bill {payment.bill_number}")
    if payment.terminal_label:
        details.append(f"terminal {payment.terminal_label}")
    return SettlementLine(
        kind="payment",
        reference=payment.reference,
        bank_payment_id=payment.bank_payment_id,
        bank_refund_id=None,
        refund_id=None,
        booked_on=payment.paid_at.date(),
        amount_minor=payment.amount_minor,
        fee_minor=fee_minor(
            payment.amount_minor, merchant.fee_percent_bp, merchant.fee_fixed_minor
        ),
        currency=payment.currency,
        remittance=", ".join(details),
    )


def _refund_line(session: Session, refund: Refund) -> SettlementLine:
    payment = session.get_one(Payment, refund.payment_id)
    assert refund.processed_at is not None  # only finished refunds are settled
    return SettlementLine(
        kind="refund",
        reference=payment.reference,
        bank_payment_id=payment.bank_payment_id,
        bank_refund_id=refund.bank_refund_id,
        refund_id=refund.refund_id,
        booked_on=refund.processed_at.date(),
        amount_minor=refund.amount_minor,
        fee_minor=0,
        currency=refund.currency,
        remittance=f"Kassa refund {refund.refund_id} of payment {payment.reference}",
    )


def _store(session: Session, batch: SettlementBatch) -> Settlement:
    settlement = Settlement(
        settlement_id=batch.settlement_id,
        merchant_id=batch.merchant_id,
        settlement_date=batch.settlement_date,
        currency=batch.currency,
        gross_minor=batch.gross_minor,
        fees_minor=batch.fees_minor,
        refunds_minor=batch.refunds_minor,
        net_minor=batch.net_minor,
        payment_count=len(batch.payments),
        refund_count=len(batch.refunds),
        opening_balance_minor=batch.opening_balance_minor,
        created_at=batch.created_at,
        camt053=camt.camt053(batch),
        camt054=camt.camt054(batch),
        csv=to_csv(batch),
    )
    session.add(settlement)
    return settlement
