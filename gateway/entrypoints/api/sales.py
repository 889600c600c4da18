"""`/api/v1/sales`: price a basket with the merchant's promotions, then pay for it.

``POST /sales`` returns the priced sale (a quote: nothing is held); ``POST /sales/{id}/pay``
prices it again for the payment method, holds budgets, coupons and points, and creates the
payment for the discounted total. Both take an ``Idempotency-Key``; paying twice returns the
same payment.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from gateway.adapters.db import UnitOfWork
from gateway.adapters.promotion_models import Customer, Sale
from gateway.domain.money import Money, currency
from gateway.entrypoints.api.payments import (
    api_database,
    approval_token,
    calling_till,
    json_body,
    limits_for,
    payment_out,
)
from gateway.entrypoints.api.sale_schemas import (
    AppliedOut,
    CreateSale,
    PaySale,
    RejectedOut,
    SaleLineOut,
    SaleOut,
)
from gateway.errors import InvalidInput
from gateway.services import idempotency
from gateway.services.payments import till_actions
from gateway.services.payments.qr_payments import PaymentSettings
from gateway.services.promotions import customers, sales

bp = Blueprint("sales", __name__)


def _settings() -> sales.PromotionSettings:
    settings: sales.PromotionSettings = current_app.extensions["kassa.promotion_settings"]
    return settings


def _amount(field: str, text: str, currency: str) -> Money:
    try:
        return Money.parse(text, currency)
    except InvalidInput as exc:
        raise InvalidInput(f"{field}: {exc}") from None


def sale_request(command: CreateSale) -> sales.SaleRequest:
    who = command.customer
    try:
        currency(command.currency)
    except InvalidInput as exc:
        raise InvalidInput(f"currency: {exc}") from None
    return sales.SaleRequest(
        lines=tuple(
            sales.LineInput(
                ln.sku,
                ln.name,
                ln.category,
                ln.quantity,
                _amount(f"lines[{i}].unit_price", ln.unit_price, command.currency),
            )
            for i, ln in enumerate(command.lines)
        ),
        currency=command.currency,
        fee=_amount("fee", command.fee, command.currency) if command.fee else None,
        customer=customers.IdentityInput(
            wallet_id=who.wallet_id if who else None,
            member_code=who.member_code if who else None,
            nfc_token=who.nfc_token if who else None,
            phone=who.phone if who else None,
            marketing_consent=who.marketing_consent if who else None,
        ),
        use_last_tap=bool(who and who.use_last_tap),
        coupon_codes=tuple(command.coupon_codes),
        referral_code=command.referral_code,
        redeem_points=command.redeem_points,
        payment_method=command.payment_method,
    )


def sale_out(
    uow: UnitOfWork, sale: Sale, *, payment: dict[str, Any] | None = None
) -> dict[str, Any]:
    cur = sale.currency

    def money(minor: int) -> str:
        return Money(minor, cur).to_decimal_string()

    customer = uow.session.get(Customer, sale.customer_id) if sale.customer_id else None
    discount = sale.total_before_minor - sale.total_after_minor
    return SaleOut(
        id=sale.id,
        status=sale.status,  # type: ignore[arg-type]
        currency=cur,
        lines=[
            SaleLineOut(
                sku=ln["sku"], name=ln["name"], category=ln["category"], quantity=ln["quantity"],
                amount=money(ln["original_minor"]), discount=money(ln["discount_minor"]),
                total=money(ln["final_minor"]), amount_minor=ln["original_minor"],
                discount_minor=ln["discount_minor"], total_minor=ln["final_minor"],
            )
            for ln in sale.lines
        ],
        applied=[
            AppliedOut(
                promotion=a["promotion_id"], name=a["name"] or a["promotion_id"], kind=a["kind"],
                discount=money(a["discount_minor"]), discount_minor=a["discount_minor"],
                per_line_minor=a["per_line"], points=a["points"],
                points_redeemed=a["points_redeemed"], gift=a["gift"], note=a["note"],
            )
            for a in sale.applied
        ],
        rejected=[
            RejectedOut(
                promotion=r["promotion_id"], name=r["name"], reason=r["reason"],
                count=r.get("count", 1),
            )
            for r in sale.rejected
        ],
        total_before=money(sale.total_before_minor),
        discount=money(discount),
        total=money(sale.total_after_minor),
        total_minor=sale.total_after_minor,
        savings_text=f"You save {Money(discount, cur)}" if discount else "No savings on this sale",
        points_earned=sale.points_earned,
        points_redeemed=sale.points_redeemed,
        gifts=sale.gifts,
        draws=sale.request.get("draws", []),
        customer=customer.token if customer else None,
        referral_code=customer.referral_code if customer else None,
        payment=payment,
        created_at=sale.created_at,
    ).model_dump(mode="json")  # fmt: skip


def _idempotent(action: Any, body: Any, till_id: int) -> tuple[int, dict[str, Any], bool]:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        with api_database().unit_of_work() as uow:
            status, out = action(uow)
            uow.commit()
        return status, out, False
    outcome = idempotency.run_once(
        api_database(),
        f"till:{till_id}",
        idempotency.check_key(key),
        idempotency.request_hash("POST", request.path, body),
        action,
    )
    return outcome.status, outcome.body, outcome.replayed


def _respond(status: int, out: dict[str, Any], replayed: bool) -> Response:
    response = jsonify(out)
    response.status_code = status
    response.headers["Location"] = url_for(".get_sale", sale_id=out["id"])
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.post("/sales")
def create_sale() -> Response:
    till = calling_till()
    body = json_body()
    command = CreateSale.model_validate(body)

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        sale = sales.price_sale(uow, till, sale_request(command), _settings())
        return 201, sale_out(uow, sale)

    return _respond(*_idempotent(action, body, till.till_id))


@bp.get("/sales/<sale_id>")
def get_sale(sale_id: str) -> Response:
    with api_database().unit_of_work(readonly=True) as uow:
        till = calling_till(uow)
        sale = sales.get_sale(uow, sale_id, till.scope)
        payment = None
        if sale.payment_id:
            from gateway.services.payments import payment_reads

            payment = payment_out(payment_reads.get_payment(uow, sale.payment_id, till.scope))
        return jsonify(sale_out(uow, sale, payment=payment))


@bp.post("/sales/<sale_id>/pay")
def pay_sale(sale_id: str) -> Response:
    till = calling_till()
    body = json_body()
    command = PaySale.model_validate(body)
    payment_settings: PaymentSettings = current_app.extensions["kassa.payment_settings"]

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        sale, payment = sales.pay_sale(
            uow, till, sale_id, method=command.method, settings=_settings(),
            payment_settings=payment_settings, expires_in=command.expires_in,
        )  # fmt: skip
        uow.session.flush()
        if payment is not None:
            till_actions.approve_large_payment(
                uow,
                payment,
                actor=till.actor,
                limit=limits_for(uow, till.merchant_id),
                grant=approval_token(),
                till=till,
                address=request.remote_addr,
            )
        out = payment_out(payment, till_label=till.label) if payment else None
        return 201, sale_out(uow, sale, payment=out)

    return _respond(*_idempotent(action, body, till.till_id))
