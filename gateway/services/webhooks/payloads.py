"""What an event's ``data`` says about a payment or a refund: amounts as decimal strings with
their currency, ids and statuses, and nothing from a card but what is already masked."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from gateway.adapters.models import Payment, Refund
from gateway.domain.card_data import masked_card_number
from gateway.domain.money import Money


def payment_data(payment: Payment) -> dict[str, Any]:
    data: dict[str, Any] = {
        "payment_id": payment.id,
        "status": payment.status,
        "method": payment.method,
        "amount": Money(payment.amount_minor, payment.currency).to_decimal_string(),
        "refunded": Money(payment.refunded_minor or 0, payment.currency).to_decimal_string(),
        "currency": payment.currency,
        "reference": payment.reference,
        "bill_number": payment.bill_number,
        "store_id": payment.store_id,
        "till_id": payment.till_id,
        "created_at": _iso(payment.created_at),
        "paid_at": _iso(payment.paid_at),
    }
    card = payment.card or {}
    masked = masked_card_number(str(card.get("masked_pan") or ""))
    if masked:
        data["card"] = {"masked_pan": masked, "card_name": card.get("card_name")}
    return data


def refund_data(payment: Payment, refund: Refund) -> dict[str, Any]:
    return {
        "refund_id": refund.id,
        "payment_id": payment.id,
        "status": refund.status,
        "amount": Money(refund.amount_minor, refund.currency).to_decimal_string(),
        "currency": refund.currency,
        "reason": refund.reason,
        "failure": refund.failure,
        "reference": payment.reference,
        "store_id": payment.store_id,
    }


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
