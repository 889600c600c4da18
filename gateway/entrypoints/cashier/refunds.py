"""Refunds and recent payments on the cashier screen (routes of the ``cashier`` blueprint).

A refund form carries its own idempotency key, so a double tap or a resubmitted form asks the
bank for one refund only.
"""

from __future__ import annotations

import uuid
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for

from gateway.adapters import i18n
from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.domain.money import Money
from gateway.entrypoints import staff_session, terminal_texts
from gateway.entrypoints.api.payments import limits_for
from gateway.entrypoints.cashier.screen import (
    approval_grant,
    approval_page,
    chosen_till,
    parse_amount,
    signed_in_staff,
)
from gateway.entrypoints.staff_session import database
from gateway.errors import (
    ApprovalRefused,
    ApprovalRequired,
    Conflict,
    IdempotencyKeyReused,
    InvalidInput,
)
from gateway.services import idempotency
from gateway.services.payments import payment_reads, refunds, till_actions
from gateway.services.staff.auth import StaffContext

bp = Blueprint("refunds", __name__)


@bp.get("/recent")
def recent_payments() -> Any:
    """The till's last payments, newest first: where a cashier finds a sale to refund."""
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for("cashier.choose_till"), 303)
    merchant = staff_session.merchant_of(staff)
    with database().unit_of_work(readonly=True) as uow:
        rows = payment_reads.recent_payments(uow, till.till_id)
        return render_template(
            "cashier/recent.html", payments=rows, staff=staff, merchant=merchant, till=till
        )


@bp.route("/payments/<payment_id>/refund", methods=["GET", "POST"])
def refund_payment(payment_id: str) -> Any:
    staff = signed_in_staff()
    if request.method == "POST":
        try:
            _refund_once(staff, payment_id)
        except IdempotencyKeyReused:
            flash(
                _("This refund form was already used for another amount; check and try again."),
                "error",
            )
            return redirect(url_for(".refund_payment", payment_id=payment_id), 303)
        except (InvalidInput, Conflict) as exc:
            return _refund_form(staff, payment_id, error=exc.message, status=422)
        except (ApprovalRequired, ApprovalRefused) as exc:
            return approval_page(exc, url_for(".refund_payment", payment_id=payment_id))
        flash(_("Refund requested. The bank confirms it in a moment."), "progress")
        return redirect(url_for(".refund_payment", payment_id=payment_id), 303)
    return _refund_form(staff, payment_id)


def _refund_once(staff: StaffContext, payment_id: str) -> None:
    text = request.form.get("amount", "").strip()
    with database().unit_of_work(readonly=True) as uow:
        currency = payment_reads.payment_currency(uow, payment_id, staff.scope)
    amount = parse_amount(text, currency, "The refund amount") if text else None
    reason = request.form.get("reason", "").strip()[:255] or None
    till = chosen_till(staff)

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        refund = till_actions.refund(
            uow,
            payment_id,
            staff.scope,
            amount=amount,
            reason=reason,
            actor=staff.actor,
            limit=limits_for(uow, staff.merchant_id),
            grant=approval_grant(),
            till=till,
            address=request.remote_addr,
        )
        return 201, {"id": refund.id}

    body = {"payment": payment_id, "amount": amount.minor if amount else None, "reason": reason}
    idempotency.run_once(
        database(),
        f"staff:{staff.user_id}",
        idempotency.check_key(request.form.get("idempotency_key", "")),
        idempotency.request_hash("POST", request.path, body),
        action,
    )


def _refund_form(
    staff: StaffContext, payment_id: str, *, error: str | None = None, status: int = 200
) -> Any:
    merchant = staff_session.merchant_of(staff)
    with database().unit_of_work(readonly=True) as uow:
        payment = payment_reads.get_payment(uow, payment_id, staff.scope)
        left = refunds.refundable_minor(uow, payment)
        history = refunds.list_refunds(uow, payment_id)

        locale = i18n.current_locale()

        def fmt(minor: int) -> str:
            return Money(minor, payment.currency).format(locale)

        page = render_template(
            "cashier/refund.html",
            payment=payment,
            merchant=merchant,
            staff=staff,
            refunds=history,
            terminal_text=terminal_texts.shown,  # a reversal the terminal refused says why
            fmt=fmt,
            following=any(r.status in ("requested", "submitted", "unknown") for r in history),
            amount=fmt(payment.amount_minor),
            refundable=left,
            refundable_text=_plain(Money(left, payment.currency), i18n.current_locale())
            if left
            else "",
            can_refund=refunds.can_refund(payment) and left > 0,
            whole_only=refunds.reversed_whole(payment),
            error=error,
            form=request.form if error else {},
            idempotency_key=(request.form.get("idempotency_key") if error else None)
            or uuid.uuid4().hex,
        )
    return page, status


def _plain(money: Money, locale: str) -> str:
    """The amount as a cashier types it: no symbol or grouping, the locale's decimal mark."""
    from babel.numbers import get_decimal_symbol

    return money.to_decimal_string().replace(".", get_decimal_symbol(locale))
