"""`/portal/payments/{id}/bank-money/…`: the payment page's answers to money the bank took.

A payment flagged because the bank took money that does not fit it (paid after expiry, another
amount, a second payment) shows the bank's claim and two buttons, each with a required note:
accept it as paid, or refund it through the bank (gateway.services.payments.attention).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, request, url_for
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.adapters.i18n import lazy_gettext as _l
from gateway.errors import Conflict, InvalidInput
from gateway.services.payments import attention
from merchant_portal.views import database, signed_in_manager

bp = Blueprint("attention", __name__)

Decide = Callable[..., attention.Answer]
DONE = {
    "accepted": _l("Accepted as paid; the payment's history names you and your note."),
    "refunded": _l("The refund is on its way to the bank; the customer gets the money back."),
}


@bp.post("/payments/<payment_id>/bank-money/accept")
def accept(payment_id: str) -> Redirect:
    return _answer(payment_id, attention.accept)


@bp.post("/payments/<payment_id>/bank-money/refund")
def refund(payment_id: str) -> Redirect:
    return _answer(payment_id, attention.refund)


def _answer(payment_id: str, decide: Decide) -> Redirect:
    staff = signed_in_manager()
    uow: UnitOfWork
    with database().unit_of_work() as uow:
        try:
            answer = decide(
                uow,
                payment_id,
                staff.scope,
                note=request.form.get("note", ""),
                actor=staff.actor,
            )
            uow.commit()
            flash(
                _("Already done: nothing changed.") if answer.already else str(DONE[answer.action])
            )
        except (Conflict, InvalidInput) as exc:
            flash(_("Could not do that: %(reason)s.", reason=exc.message))
    return redirect(url_for("portal.payment_detail", payment_id=payment_id), 303)
