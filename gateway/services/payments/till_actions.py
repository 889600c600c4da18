"""Refunds, cancels and large payments asked for at a till, with the approval they need.

The API and the cashier screen call these instead of the bare use cases, so the approval rule
(``gateway/services/staff/approvals.py``) holds at every till whatever the entry point: the
payment is loaded inside the caller's scope, the approval is checked (and recorded) in the same
transaction as the action, and a refused or missing approval leaves everything as it was.
"""

from __future__ import annotations

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, Refund
from gateway.domain.money import Money
from gateway.services.payments import cancellation, refunds
from gateway.services.payments.payment_reads import get_payment
from gateway.services.staff import approvals
from gateway.services.staff.approvals import Grant, Limits, Place
from gateway.services.staff.auth import TillContext
from gateway.services.staff.scope import Scope


def place_of(payment: Payment, till: TillContext | None, actor: str, address: str | None) -> Place:
    """Where an action on ``payment`` happens: the caller's till, else the payment's own."""
    if till is not None:
        return Place(till.merchant_id, till.store_id, till.till_id, actor, address)
    return Place(payment.merchant_id, payment.store_id, payment.till_id, actor, address)


def refund(
    uow: UnitOfWork,
    payment_id: str,
    scope: Scope,
    *,
    amount: Money | None,
    reason: str | None,
    actor: str,
    limit: Limits,
    grant: Grant,
    till: TillContext | None = None,
    address: str | None = None,
) -> Refund:
    """Refund (or void) a payment in the caller's scope; above the limit, with approval."""
    payment = get_payment(uow, payment_id, scope)
    if refunds.can_refund(payment):  # else request_refund says why not, without asking anyone
        asked = amount or Money(refunds.refundable_minor(uow, payment), payment.currency)
        if refunds.reversed_whole(payment):
            asked = Money(payment.amount_minor, payment.currency)  # a void gives back all of it
        approvals.require(
            uow,
            limit,
            place_of(payment, till, actor, address),
            action="refund",
            amount=asked,
            payment=payment,
            grant=grant,
        )
    return refunds.request_refund(uow, payment_id, scope, amount=amount, reason=reason, actor=actor)


def cancel(
    uow: UnitOfWork,
    payment_id: str,
    scope: Scope,
    *,
    actor: str,
    limit: Limits,
    grant: Grant,
    till: TillContext | None = None,
    address: str | None = None,
) -> Payment:
    """Cancel a payment in the caller's scope; one the terminal approved, with approval."""
    payment = get_payment(uow, payment_id, scope)
    approvals.require(
        uow,
        limit,
        place_of(payment, till, actor, address),
        action="cancel",
        amount=Money(payment.amount_minor, payment.currency),
        payment=payment,
        grant=grant,
    )
    return cancellation.cancel_payment(uow, payment_id, scope, actor)


def approve_large_payment(
    uow: UnitOfWork,
    payment: Payment,
    *,
    actor: str,
    limit: Limits,
    grant: Grant,
    till: TillContext,
    address: str | None = None,
) -> None:
    """After creating ``payment`` (same transaction): above the large-transaction limit it
    needs approval, or the whole creation is rolled back."""
    approvals.require(
        uow,
        limit,
        place_of(payment, till, actor, address),
        action="payment",
        amount=Money(payment.amount_minor, payment.currency),
        payment=payment,
        grant=grant,
    )
