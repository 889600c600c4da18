"""`/portal/customers`: one customer's record, found by member code or wallet id (looked up
by its keyed hash; neither is ever stored), with their purchases, an export of everything held
about them (JSON) and "forget" (anonymise; the money records stay). Both actions are audited
and need a recent second factor (step-up): one hands out a person's data, the other cannot be
undone.
"""

from __future__ import annotations

import json
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)

from gateway.adapters.i18n import gettext as _
from gateway.config import identity_key
from gateway.errors import InvalidInput, NotFound
from gateway.services import receipts
from gateway.services.promotions import privacy
from gateway.services.promotions.customers import IdentityInput
from merchant_portal.identity import step_up_required
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("customers", __name__)


def _who() -> IdentityInput:
    kind = request.values.get("kind", "member")
    value = request.values.get("value", "").strip()[:128]
    if kind not in ("member", "wallet"):
        raise InvalidInput(_("Choose member code or wallet id."))
    if not value:
        raise InvalidInput(_("Type the customer's member code or wallet id."))
    return IdentityInput(member_code=value) if kind == "member" else IdentityInput(wallet_id=value)


def _typed() -> str:
    return request.form.get("value", "")[:128]


def _key() -> bytes:
    return identity_key(current_app.extensions["kassa.settings"])


@bp.get("/customers")
def customer_record() -> Any:
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    found, history, error = None, [], None
    if request.args.get("value"):
        try:
            with database().unit_of_work(readonly=True) as uow:
                customer = privacy.find(uow, _key(), staff.merchant_id, _who())
                found = {
                    "purchases": customer.purchases,
                    "spend_minor": customer.spend_minor,
                    "spend_currency": customer.spend_currency,
                    "consent": customer.marketing_consent,
                    "since": customer.created_at,
                }
                history = receipts.history(uow, customer.id)
        except (InvalidInput, NotFound) as exc:
            error = exc.message if isinstance(exc, InvalidInput) else _("No customer with that.")
    return render_template(
        "portal/customers.html",
        staff=staff,
        merchant=merchant,
        found=found,
        history=history,
        error=error,
        kind=request.args.get("kind", "member"),
        value=request.args.get("value", ""),
    ), 404 if error and request.args.get("value") else 200


@bp.post("/customers/export")
@step_up_required
def customer_export() -> Any:
    staff = signed_in_manager()
    try:
        with database().unit_of_work() as uow:
            customer = privacy.find(uow, _key(), staff.merchant_id, _who())
            data = privacy.export(uow, customer, actor=staff.actor)
            uow.commit()
    except (InvalidInput, NotFound):
        flash(_("No customer with that member code or wallet id."), "error")
        return redirect(url_for(".customer_record"), 303)
    response = Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json")
    response.headers["Content-Disposition"] = "attachment; filename=customer-export.json"
    return response


@bp.post("/customers/forget")
@step_up_required
def customer_forget() -> Any:
    staff = signed_in_manager()
    note = request.form.get("note", "").strip()[:200]
    if not note:
        flash(_("Say why the customer is forgotten (e.g. their request and its date)."), "error")
        return redirect(
            url_for(
                ".customer_record", kind=request.form.get("kind"), value=request.form.get("value")
            ),
            303,
        )
    try:
        with database().unit_of_work() as uow:
            customer = privacy.find(uow, _key(), staff.merchant_id, _who())
            privacy.forget(uow, customer, actor=staff.actor, reason=note)
            uow.commit()
    except (InvalidInput, NotFound):
        flash(_("No customer with that member code or wallet id."), "error")
        return redirect(url_for(".customer_record"), 303)
    flash(_("The customer was forgotten. Their sales stay, without them."), "ok")
    return redirect(url_for(".customer_record"), 303)
