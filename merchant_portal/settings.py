"""`/portal/settings`: the owner sets when a supervisor must approve at the till.

Two limits, in the merchant's currency: refunds and voids above the first, and QR or card
payments above the second, need a supervisor's PIN (or an API approval token). Any cancel of a
payment the card terminal approved always needs one. Until the owner saves their own, the
limits are ``[approvals]`` from the configuration. Saving them is audited and, since it decides
when nobody has to approve, needs a recent second factor (step-up).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for

from gateway.adapters.i18n import gettext as _
from gateway.domain.money import Money
from gateway.entrypoints.cashier.screen import parse_amount
from gateway.errors import InvalidInput
from gateway.services.staff import approvals
from gateway.settings import Settings
from merchant_portal.identity import step_up_redirect
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("settings", __name__)


@bp.route("/settings", methods=["GET", "POST"])
def approval_limits() -> Any:
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    settings: Settings = current_app.extensions["kassa.settings"]
    error = None
    if request.method == "POST" and (step_up := step_up_redirect()) is not None:
        return step_up
    if request.method == "POST":
        try:
            refund_above = parse_amount(
                request.form.get("refund_above", "").strip(), merchant.currency, "The refund limit"
            )
            payment_above = parse_amount(
                request.form.get("payment_above", "").strip(),
                merchant.currency,
                "The large-payment limit",
            )
            with database().unit_of_work() as uow:
                approvals.set_limits(
                    uow,
                    staff.merchant_id,
                    refund_above=refund_above,
                    payment_above=payment_above,
                )
                uow.commit()
        except InvalidInput as exc:
            error = exc.message
        else:
            flash(_("Approval limits saved: they apply to the next action at every till."), "ok")
            return redirect(url_for(".approval_limits"), 303)
    with database().unit_of_work(readonly=True) as uow:
        limit = approvals.limits(uow, staff.merchant_id, settings.approvals)
    return render_template(
        "portal/settings.html",
        staff=staff,
        merchant=merchant,
        error=error,
        form=request.form if error else {},
        refund_above=Money(limit.refund_above_minor, merchant.currency),
        payment_above=Money(limit.payment_above_minor, merchant.currency),
        token_seconds=limit.token_seconds,
    ), 422 if error else 200
