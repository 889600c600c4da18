"""`/r/<token>`: a customer's e-receipt, opened without signing in.

The token in the link is the only key (192 random bits; the database keeps only its hash), so
the page cannot be enumerated; an unknown or ended link is a 404 like any missing page. The
page shows the customer's purchases at this merchant (their consumption record) when the sale
was made for an identified customer, and lets them give or withdraw marketing consent.
"""

from __future__ import annotations

import base64
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
    url_for,
)
from werkzeug.wrappers import Response as Redirect

from gateway.adapters import qr_render
from gateway.adapters.i18n import lazy_gettext
from gateway.adapters.models import Merchant
from gateway.adapters.promotion_models import Customer
from gateway.entrypoints.staff_session import database
from gateway.errors import NotFound
from gateway.services import receipts
from gateway.services.promotions import privacy

bp = Blueprint("receipts", __name__, url_prefix="/r", template_folder="templates")

# Promotions as customers read them: by what they are, never by a manager's internal name.
PROMOTION_NAMES = {
    "threshold": lazy_gettext("Spend and save"),
    "percent": lazy_gettext("Discount"),
    "multi_buy": lazy_gettext("Multi-buy offer"),
    "fixed_price": lazy_gettext("Bundle price"),
    "new_customer": lazy_gettext("Welcome offer"),
    "fee_waiver": lazy_gettext("Service fee waived"),
    "coupon": lazy_gettext("Coupon"),
    "points": lazy_gettext("Loyalty points"),
    "gift": lazy_gettext("Gift"),
    "points_redeem": lazy_gettext("Paid with points"),
    "referral": lazy_gettext("Referral reward"),
    "draw": lazy_gettext("Lucky draw entry"),
}
METHODS = {"qr": lazy_gettext("Wallet QR"), "card": lazy_gettext("Card")}


@bp.get("/<token>")
def receipt_page(token: str) -> Any:
    with database().unit_of_work(readonly=True) as uow:
        try:
            payment = receipts.payment_for(uow, token)
        except NotFound:
            abort(404)
        receipt = receipts.receipt_of(uow, payment)
        locale = uow.session.get_one(Merchant, payment.merchant_id).locale
        history = receipts.history(uow, receipt.customer_id) if receipt.customer_id else []
        page = render_template(
            "receipts/receipt.html",
            receipt=receipt,
            history=history,
            locale=locale,
            token=token,
            promotion_names=PROMOTION_NAMES,
            methods=METHODS,
        )
    return Response(page)


@bp.post("/<token>/consent")
def receipt_consent(token: str) -> Redirect:
    """The customer gives or withdraws marketing consent from their receipt's page."""
    answer = request.form.get("consent")
    if answer not in ("yes", "no"):
        abort(400)
    with database().unit_of_work() as uow:
        try:
            payment = receipts.payment_for(uow, token)
        except NotFound:
            abort(404)
        receipt = receipts.receipt_of(uow, payment)
        if receipt.customer_id is None:
            abort(404)
        customer = uow.session.get_one(Customer, receipt.customer_id)
        privacy.record_consent(
            uow, customer, answer == "yes", source="receipt", actor="customer:receipt"
        )
        uow.commit()
    return redirect(url_for(".receipt_page", token=token), 303)


@bp.errorhandler(404)
def _not_found(_: Any) -> tuple[str, int]:
    return render_template("receipts/not_found.html"), 404


def link_for(token: str) -> str:
    """The receipt's address as the customer opens it: ``[receipts] public_url`` if set,
    else the address this request came to."""
    base = current_app.extensions["kassa.settings"].receipts.public_url.rstrip("/")
    path = url_for("receipts.receipt_page", token=token)
    return base + path if base else url_for("receipts.receipt_page", token=token, _external=True)


def qr_data_uri(url: str) -> str:
    svg = qr_render.render_svg(url)
    return "data:image/svg+xml;base64," + base64.b64encode(svg).decode()


@bp.after_request
def _private(response: Response) -> Response:
    """A receipt is the customer's alone: no caching, no search engines, no referrer."""
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response
