"""Cancelling a payment at the till: a QR code withdrawn, or a card payment reversed."""

from __future__ import annotations

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment
from gateway.domain.payment import PaymentMethod, PaymentStatus
from gateway.services.devices import cards
from gateway.services.payments.lifecycle import move_payment
from gateway.services.payments.payment_reads import get_payment
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope


def cancel_payment(uow: UnitOfWork, payment_id: str, scope: Scope | int, actor: str) -> Payment:
    payment = get_payment(uow, payment_id, scope)
    if payment.status == PaymentStatus.CANCELLED:
        return payment  # a double click or a retry: already done
    audit.record(
        uow,
        "payment.cancelled",
        actor=actor,
        merchant_id=payment.merchant_id,
        store_id=payment.store_id,
        target=("payment", payment.id),
        before={"status": payment.status},
    )
    if payment.method == PaymentMethod.CARD:
        cards.request_reversal(uow, payment, actor)  # card money is given back at the terminal
        return payment
    move_payment(uow, payment, PaymentStatus.CANCELLED, "cancelled", actor)
    return payment
