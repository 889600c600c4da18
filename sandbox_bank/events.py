"""What the bank says about payments, refunds and settlements: JSON bodies and callback events.

The same representation serves the API answer and the callback's ``data``, so the gateway sees
one shape whichever way it learns of a change. Amounts are decimal strings in the currency's
major unit, times are UTC ISO 8601 with ``Z`` (docs/bank-api.md).
"""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway.adapters import logging_setup
from gateway.domain.money import Money
from sandbox_bank.models import Delivery, Payment, Refund, Settlement, utcnow

# File name in the URL → (Settlement column, media type).
SETTLEMENT_FILES = {
    "camt053.xml": ("camt053", "application/xml"),
    "camt054.xml": ("camt054", "application/xml"),
    "settlement.csv": ("csv", "text/csv"),
}
CALLBACK_TYPES = ("payment.succeeded", "refund.succeeded", "refund.failed", "settlement.created")


def new_id(prefix: str) -> str:
    """An opaque bank identifier such as ``pay_5f2c…`` (≤ 35 characters, fits ISO 20022)."""
    return f"{prefix}_{secrets.token_hex(12)}"


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def amount(minor: int, code: str) -> str:
    return Money(minor, code).to_decimal_string()


def masked_wallet(wallet_id: str) -> str:
    return "••••" + wallet_id[-4:]


def payment_json(session: Session, payment: Payment) -> dict[str, Any]:
    """``GET /v1/payments/{reference}``: status and refunds count succeeded refunds only."""
    refunded = session.scalar(
        select(func.coalesce(func.sum(Refund.amount_minor), 0)).where(
            Refund.payment_id == payment.id, Refund.status == "succeeded"
        )
    )
    refunded = int(refunded or 0)
    status = "succeeded"
    if refunded:
        status = "refunded" if refunded >= payment.amount_minor else "partially_refunded"
    return {
        "reference": payment.reference,
        "bank_payment_id": payment.bank_payment_id,
        "status": status,
        "amount": amount(payment.amount_minor, payment.currency),
        "currency": payment.currency,
        "paid_at": iso(payment.paid_at),
        "refunded_amount": amount(refunded, payment.currency),
    }


def payment_succeeded_data(payment: Payment) -> dict[str, Any]:
    return {
        "bank_payment_id": payment.bank_payment_id,
        "merchant_id": payment.merchant_id,
        "reference": payment.reference,
        "bill_number": payment.bill_number,
        "terminal_label": payment.terminal_label,
        "amount": amount(payment.amount_minor, payment.currency),
        "currency": payment.currency,
        "wallet": masked_wallet(payment.wallet_id),
        "paid_at": iso(payment.paid_at),
    }


def refund_json(refund: Refund, payment: Payment) -> dict[str, Any]:
    body = {
        "bank_refund_id": refund.bank_refund_id,
        "refund_id": refund.refund_id,
        "bank_payment_id": payment.bank_payment_id,
        "reference": payment.reference,
        "status": refund.status,
        "amount": amount(refund.amount_minor, refund.currency),
        "currency": refund.currency,
        "processed_at": iso(refund.processed_at),
    }
    if refund.status == "failed":
        body["reason"] = refund.reason
    return body


def settlement_files(base_url: str, settlement: Settlement) -> dict[str, str]:
    root = f"{base_url.rstrip('/')}/v1/settlements/{settlement.settlement_date.isoformat()}"
    return {
        "camt053": f"{root}/camt053.xml",
        "camt054": f"{root}/camt054.xml",
        "csv": f"{root}/settlement.csv",
    }


def settlement_json(settlement: Settlement, base_url: str) -> dict[str, Any]:
    code = settlement.currency
    return {
        "settlement_id": settlement.settlement_id,
        "merchant_id": settlement.merchant_id,
        "date": settlement.settlement_date.isoformat(),
        "currency": code,
        "gross": amount(settlement.gross_minor, code),
        "fees": amount(settlement.fees_minor, code),
        "refunds": amount(settlement.refunds_minor, code),
        "net": amount(settlement.net_minor, code),
        "payment_count": settlement.payment_count,
        "refund_count": settlement.refund_count,
        "files": settlement_files(base_url, settlement),
    }


def queue_callback(
    session: Session,
    merchant_id: str,
    type_: str,
    data: dict[str, Any],
    now: datetime | None = None,
    request_id: str | None = None,
) -> Delivery:
    """Store a callback for delivery; its body is fixed now, so every attempt sends the same.

    ``request_id`` (default: the current request's) is sent with it as ``X-Request-Id``, so the
    gateway's log lines for the callback name the request that caused it.
    """
    if type_ not in CALLBACK_TYPES:
        raise ValueError(f"unknown callback type {type_!r}")
    now = now or utcnow()
    body = json.dumps({"type": type_, "timestamp": iso(now), "data": data}, ensure_ascii=False)
    delivery = Delivery(
        event_id=new_id("evt"),
        merchant_id=merchant_id,
        type=type_,
        body=body,
        status="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
        request_id=request_id or logging_setup.request_id.get(),
    )
    session.add(delivery)
    return delivery
