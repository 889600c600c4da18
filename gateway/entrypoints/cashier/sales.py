"""The basket with promotions on the cashier screen (routes of the ``cashier`` blueprint).

The cashier types the lines and what the customer shows (member code, wallet, coupons), sees
which promotions apply, which do not and why, then takes the discounted total by wallet QR or
card on the usual payment screen. Pricing is idempotent per rendered form, like a payment.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from itertools import zip_longest
from typing import Any

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from werkzeug.datastructures import MultiDict

from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.adapters.promotion_models import Customer
from gateway.entrypoints import staff_session
from gateway.entrypoints.api.payments import limits_for
from gateway.entrypoints.cashier.screen import (
    MAX_LINES,
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
    IdempotencyRequestInProgress,
    InvalidInput,
    InvalidMoney,
)
from gateway.services import idempotency
from gateway.services.payments import till_actions
from gateway.services.promotions import customers, sales
from gateway.services.staff.auth import StaffContext, TillContext

BASKET_ROWS = 5  # rows shown without JavaScript; "+ Add line" adds more
MAX_QUANTITY = 100_000
CUSTOMER_FIELDS = (
    "wallet_id", "member_code", "phone", "use_last_tap", "coupon_codes", "referral_code",
    "redeem_points", "fee", "marketing_consent",
)  # fmt: skip

bp = Blueprint("sales", __name__)


@dataclass(frozen=True, slots=True)
class BasketRow:
    """One line of the basket form, as typed."""

    name: str = ""
    category: str = ""
    quantity: str = "1"
    price: str = ""
    sku: str = ""

    @property
    def blank(self) -> bool:
        return not (self.name.strip() or self.category.strip() or self.price.strip())


def _promotion_settings() -> sales.PromotionSettings:
    settings: sales.PromotionSettings = current_app.extensions["kassa.promotion_settings"]
    return settings


@bp.get("/basket")
def basket() -> Any:
    """The basket form: empty, or filled from an earlier sale (``?sale=<id>``, "Change basket")."""
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for("cashier.choose_till"))
    sale_id = request.args.get("sale")
    if not sale_id:
        return _basket_form(staff, till, rows=[], fields={})
    with database().unit_of_work(readonly=True) as uow:
        earlier, _fields = sales.stored_request(sales.get_sale(uow, sale_id, staff.scope))
        rows = [
            BasketRow(
                ln.name, ln.category, str(ln.quantity), ln.unit_price.to_decimal_string(), ln.sku
            )
            for ln in earlier.lines
        ]
        fields = {
            "coupon_codes": ", ".join(earlier.coupon_codes),
            "referral_code": earlier.referral_code or "",
            "redeem_points": str(earlier.redeem_points or ""),
            "fee": earlier.fee.to_decimal_string() if earlier.fee else "",
        }
    return _basket_form(staff, till, rows=rows, fields=fields, again=True)


@bp.post("/basket")
def price_basket() -> Any:
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for("cashier.choose_till"), 303)
    merchant = staff_session.merchant_of(staff)
    form = request.form
    rows, fields = form_rows(form), {k: form.get(k, "") for k in CUSTOMER_FIELDS}
    try:
        sale_id = _price_once(staff, till, basket_request(form, merchant.currency))
    except IdempotencyKeyReused:
        message = _(
            "This basket form was already used for another basket. The form is fresh now: "
            "check the lines and press “Check promotions” again."
        )
        return _basket_form(staff, till, rows=rows, fields=fields, error=message)
    except IdempotencyRequestInProgress:
        message = _("This basket is still being priced. Wait a moment, then try again.")
        return _basket_form(staff, till, rows=rows, fields=fields, error=message, key=True)
    except (InvalidInput, Conflict) as exc:
        return _basket_form(staff, till, rows=rows, fields=fields, error=exc.message, key=True)
    return redirect(url_for(".sale_page", sale_id=sale_id), 303)


def _basket_form(
    staff: StaffContext,
    till: TillContext,
    *,
    rows: list[BasketRow],
    fields: Mapping[str, str],
    error: str | None = None,
    key: bool = False,
    again: bool = False,
) -> tuple[str, int]:
    """The basket form; after an error it keeps what was typed (and its key, if ``key``)."""
    rows = rows + [BasketRow()] * max(0, BASKET_ROWS - len(rows))
    typed_key = request.form.get("idempotency_key") if key else None
    return render_template(
        "cashier/basket.html",
        merchant=staff_session.merchant_of(staff),
        staff=staff,
        till=till,
        rows=rows,
        fields=fields,
        error=error,
        again=again,
        max_lines=MAX_LINES,
        idempotency_key=typed_key or str(uuid.uuid4()),
    ), 422 if error else 200


def form_rows(form: MultiDict[str, str]) -> list[BasketRow]:
    """The typed rows, blank ones dropped (a blank row still says quantity 1)."""
    columns = ("line_name", "line_category", "line_quantity", "line_price", "line_sku")
    typed = zip_longest(*(form.getlist(c) for c in columns), fillvalue="")
    rows = [BasketRow(n, c, q or "1", p, s) for n, c, q, p, s in typed]
    return [row for row in rows if not row.blank]


def basket_request(form: MultiDict[str, str], currency_code: str) -> sales.SaleRequest:
    """The sale to price, from the basket form; mistakes are reported in the cashier's words."""
    rows = form_rows(form)
    if not rows:
        raise InvalidInput("The basket is empty: type at least one item with its price.")
    if len(rows) > MAX_LINES:
        raise InvalidInput(f"A basket can have at most {MAX_LINES} lines.")
    lines = tuple(_line(n, row, currency_code) for n, row in enumerate(rows, 1))
    points = form.get("redeem_points", "").strip() or "0"
    if not re.fullmatch(r"[0-9]{1,9}", points):
        raise InvalidInput(f"Points to redeem “{points}” is not a whole number: type e.g. 150.")
    coupons = tuple(c.strip() for c in form.get("coupon_codes", "").split(",") if c.strip())
    typed_fee = form.get("fee", "").strip()
    fee = parse_amount(typed_fee, currency_code, "The service fee") if typed_fee else None
    return sales.SaleRequest(
        lines=lines,
        currency=currency_code,
        fee=fee if fee is not None and fee.minor else None,
        customer=customers.IdentityInput(
            wallet_id=_typed(form, "wallet_id"),
            member_code=_typed(form, "member_code"),
            phone=_typed(form, "phone"),
            marketing_consent=True if form.get("marketing_consent") else None,
        ),
        use_last_tap=bool(form.get("use_last_tap")),
        coupon_codes=coupons,
        referral_code=_typed(form, "referral_code"),
        redeem_points=int(points),
        payment_method="qr",  # the quote is for the bank's wallet; the card price is shown beside
    )


def _line(n: int, row: BasketRow, currency_code: str) -> sales.LineInput:
    name = row.name.strip()
    label = f"Line {n}" + (f" ({name})" if name else "")
    if not name:
        raise InvalidInput(f"{label} has no item name. Type one or clear the line.")
    if not row.price.strip():
        raise InvalidMoney(f"{label} has no unit price. Type one or clear the line.")
    price = parse_amount(row.price.strip(), currency_code, f"The unit price of {label.lower()}")
    if price.minor < 0:
        raise InvalidMoney(f"The unit price of {label.lower()} must not be negative.")
    quantity = row.quantity.strip()
    if not re.fullmatch(r"[0-9]{1,6}", quantity) or not 1 <= int(quantity) <= MAX_QUANTITY:
        raise InvalidInput(
            f"The quantity of {label.lower()} “{quantity}” is not a whole number "
            f"from 1 to {MAX_QUANTITY}."
        )
    sku = row.sku.strip()[:64] or sku_of(name, n)
    return sales.LineInput(sku, name[:80], row.category.strip()[:40], int(quantity), price)


def sku_of(name: str, n: int) -> str:
    """A SKU for an item typed without one: the name as a slug ("Flat white" → "flat-white")."""
    ascii_name = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_name.lower()).strip("-")[:64]
    return slug or f"item-{n}"


def _typed(form: MultiDict[str, str], name: str) -> str | None:
    return form.get(name, "").strip()[:80] or None


def _price_once(staff: StaffContext, till: TillContext, sale_request: sales.SaleRequest) -> str:
    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        sale = sales.price_sale(uow, till, sale_request, _promotion_settings())
        return 201, {"id": sale.id}

    body = {"till": till.till_id, "sale": asdict(sale_request)}
    key = idempotency.check_key(request.form.get("idempotency_key", ""))
    fingerprint = idempotency.request_hash("POST", request.path, body)
    outcome = idempotency.run_once(database(), f"staff:{staff.user_id}", key, fingerprint, action)
    return str(outcome.body["id"])


@bp.get("/sales/<sale_id>")
def sale_page(sale_id: str) -> Any:
    return _sale_page(signed_in_staff(), sale_id)


def _sale_page(
    staff: StaffContext, sale_id: str, *, error: str | None = None, status: int = 200
) -> tuple[str, int]:
    merchant = staff_session.merchant_of(staff)
    till = chosen_till(staff)
    with database().unit_of_work(readonly=True) as uow:
        sale = sales.get_sale(uow, sale_id, staff.scope)
        customer = uow.session.get(Customer, sale.customer_id) if sale.customer_id else None
        by_card = None
        if sale.status == "priced" and till is not None and sale.till_id == till.till_id:
            by_card = sales.total_if_paid_by(uow, till, sale, "card", _promotion_settings())
        return render_template(
            "cashier/sale.html",
            sale=sale,
            by_card=by_card,
            referral_code=customer.referral_code if customer and customer.purchases else None,
            saved=sale.total_before_minor - sale.total_after_minor,
            merchant=merchant,
            staff=staff,
            error=error,
        ), status


@bp.post("/sales/<sale_id>/pay")
def pay_sale(sale_id: str) -> Any:
    """Hold the promotions and open the payment; a double click gets the same payment."""
    staff = signed_in_staff()
    till = chosen_till(staff)
    if till is None:
        return redirect(url_for("cashier.choose_till"), 303)
    try:
        with database().unit_of_work() as uow:
            _sale, payment = sales.pay_sale(
                uow,
                till,
                sale_id,
                method=request.form.get("method", ""),
                settings=_promotion_settings(),
                payment_settings=current_app.extensions["kassa.payment_settings"],
            )
            if payment is not None:
                till_actions.approve_large_payment(
                    uow,
                    payment,
                    actor=staff.actor,
                    limit=limits_for(uow, staff.merchant_id),
                    grant=approval_grant(),
                    till=till,
                    address=request.remote_addr,
                )
            payment_id = payment.id if payment else None
            uow.commit()
    except (Conflict, InvalidInput) as exc:
        return _sale_page(
            staff, sale_id, error=_("Not paid: %(reason)s.", reason=exc.message), status=exc.status
        )
    except (ApprovalRequired, ApprovalRefused) as exc:
        return approval_page(exc, url_for(".sale_page", sale_id=sale_id))
    if payment_id is None:  # promotions paid for everything: the sale page says so
        return redirect(url_for(".sale_page", sale_id=sale_id), 303)
    return redirect(url_for("cashier.payment_screen", payment_id=payment_id), 303)
