"""Sales: price a basket with the merchant's live promotions, then pay for it.

``price_sale`` stores a *priced* sale (nothing is held yet: a quote the cashier shows).
``pay_sale`` prices it again for the chosen payment method, with the customer's row locked
and fresh usage figures, holds what the promotions give (``redemptions.reserve``) and creates
the payment for the discounted total, all in one transaction. A limit taken by a concurrent
checkout meanwhile makes it price again (up to ``_ATTEMPTS`` times), this time with the
limited promotions' rows locked before their usage is read, so the customer is charged what
the promotions can still give and no budget is ever overspent.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Payment, utcnow
from gateway.adapters.promotion_models import (
    Customer,
    ExperimentExposure,
    Sale,
)
from gateway.domain import promotions as promo
from gateway.domain.money import Money
from gateway.domain.promotions.eligibility import check_eligibility
from gateway.domain.promotions.rejection import Reason, Rejection
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.devices import cards
from gateway.services.payments import qr_payments
from gateway.services.promotions import customers, pricing, privacy, redemptions
from gateway.services.promotions.pricing import LineInput, PromotionSettings, SaleRequest
from gateway.services.staff.auth import TillContext
from gateway.services.staff.scope import Scope, narrow

__all__ = [  # the request types live with pricing; callers know them as sales.*
    "LineInput",
    "PromotionSettings",
    "SaleRequest",
    "get_sale",
    "pay_sale",
    "price_sale",
    "purge_quotes",
    "schedule_purge",
    "total_if_paid_by",
]

PURGE_JOB = "purge_quotes"

_ATTEMPTS = 10


def price_sale(
    uow: UnitOfWork,
    till: TillContext,
    request: SaleRequest,
    settings: PromotionSettings,
) -> Sale:
    """Price the basket and keep the quote as a ``priced`` sale (not committed)."""
    if request.redeem_points < 0:
        raise InvalidInput("redeem_points: must not be negative")
    now = utcnow()
    digests = pricing.digests_of(uow, till, request, settings)
    run = pricing.price_request(
        uow, till, request, digests, settings, method=request.payment_method, lock=False, now=now
    )
    sale = Sale(
        id=str(uuid.uuid4()),
        merchant_id=till.merchant_id,
        store_id=till.store_id,
        till_id=till.till_id,
        customer_id=run.who.customer.id if run.who.customer else None,
        currency=request.currency,
        status="priced",
        payment_method=request.payment_method,
        request=_stored_request(request, digests),
        created_by=till.actor,
        created_at=now,
        updated_at=now,
    )
    _write_outcome(sale, run)
    uow.session.add(sale)
    uow.session.flush()
    return sale


def _stored_request(request: SaleRequest, digests: tuple[tuple[str, str], ...]) -> dict[str, Any]:
    """The request as kept with the sale: identities as digests only, never in clear."""
    return {
        "lines": [
            {"sku": ln.sku, "name": ln.name, "category": ln.category,
             "quantity": ln.quantity, "unit_price_minor": ln.unit_price.minor}
            for ln in request.lines
        ],
        "currency": request.currency,
        "fee_minor": request.fee.minor if request.fee else None,
        "digests": [list(d) for d in digests],
        "coupon_codes": list(request.coupon_codes),
        "referral_code": request.referral_code,
        "redeem_points": request.redeem_points,
        "marketing_consent": request.customer.marketing_consent,
    }  # fmt: skip


def _stored_money(raw: dict[str, Any], name: str, currency: str) -> Money | None:
    """A stored amount: minor units, or (quotes stored before 2026-12) a decimal string."""
    if raw.get(f"{name}_minor") is not None:
        return Money(int(raw[f"{name}_minor"]), currency)
    return Money.parse(raw[name], currency) if raw.get(name) else None


def _stored_price(line: dict[str, Any], currency: str) -> Money:
    return _stored_money(line, "unit_price", currency) or Money(0, currency)


def stored_request(sale: Sale) -> tuple[SaleRequest, tuple[tuple[str, str], ...]]:
    """The request a sale was priced for, and its customer's identity digests (never in clear)."""
    raw = sale.request
    currency = raw["currency"]
    lines = tuple(
        LineInput(
            ln["sku"],
            ln["name"],
            ln["category"],
            ln["quantity"],
            _stored_price(ln, currency),
        )
        for ln in raw["lines"]
    )
    request = SaleRequest(
        lines=lines,
        currency=currency,
        fee=_stored_money(raw, "fee", currency),
        coupon_codes=tuple(raw.get("coupon_codes", ())),
        referral_code=raw.get("referral_code"),
        redeem_points=int(raw.get("redeem_points", 0)),
        customer=customers.IdentityInput(marketing_consent=raw.get("marketing_consent")),
    )
    return request, tuple((k, d) for k, d in raw.get("digests", ()))


def _write_outcome(sale: Sale, run: pricing.Priced) -> None:
    priced = run.priced
    sale.lines = [
        {"sku": ln.sku, "name": ln.name, "category": ln.category, "quantity": ln.quantity,
         "original_minor": ln.original_minor, "discount_minor": ln.discount_minor,
         "final_minor": ln.final_minor}
        for ln in priced.lines
    ]  # fmt: skip
    sale.fee_minor = next((ln.original_minor for ln in priced.lines if ln.sku == "fee"), 0)
    sale.total_before_minor = priced.total_before_minor
    sale.total_after_minor = priced.total_after_minor
    sale.points_earned = priced.points
    sale.points_redeemed = priced.points_redeemed
    sale.gifts = list(priced.gifts)
    sale.applied = [redemptions.applied_json(a) for a in priced.applied]
    sale.rejected = _explained(run)


def _explained(run: pricing.Priced) -> list[dict[str, Any]]:
    """Why each promotion did not apply. Those that concern this basket are named one by one;
    those ruled out wholesale (another store, currency, no item of theirs in the basket) are
    counted under their reason, so a chain's thousand promotions do not bury the cashier."""
    names = {key: row.name for key, row in run.rows.items()}
    priced = run.priced
    named: list[dict[str, Any]] = []
    elsewhere: dict[tuple[object, ...], list[Rejection]] = {}
    for r in priced.rejected:
        if r.promotion_id in priced.considered or r.code is Reason.METHOD:
            named.append(
                {"promotion_id": r.promotion_id, "name": names.get(r.promotion_id, r.promotion_id),
                 "reason": r.reason}
            )  # fmt: skip
        else:
            elsewhere.setdefault((r.code, *r.args), []).append(r)
    for group in elsewhere.values():
        count = len(group)
        label = names.get(group[0].promotion_id, group[0].promotion_id) if count == 1 else (
            f"{count} other promotions"
        )  # fmt: skip
        named.append({"promotion_id": group[0].promotion_id if count == 1 else "",
                      "name": label, "reason": group[0].reason, "count": count})  # fmt: skip
    named += [
        {"promotion_id": "", "name": f"coupon {n['coupon']}", "reason": n["reason"]}
        for n in run.notes
    ]
    return named


def total_if_paid_by(
    uow: UnitOfWork, till: TillContext, sale: Sale, method: str, settings: PromotionSettings
) -> int:
    """What the quoted sale would cost paid by ``method`` now (writes nothing), so the cashier
    can tell the customer before choosing: wallet offers often apply to one method only."""
    request, digests = stored_request(sale)
    run = pricing.price_request(
        uow, till, request, digests, settings, method=method, lock=False, sale_id=sale.id,
        now=utcnow(),
    )  # fmt: skip
    return run.priced.total_after_minor


def get_sale(uow: UnitOfWork, sale_id: str, scope: Scope | int) -> Sale:
    """One sale inside the caller's scope (merchant, and store if bound to one)."""
    sale = uow.session.scalar(
        select(Sale).where(Sale.id == sale_id, narrow(scope, Sale.merchant_id, Sale.store_id))
    )
    if sale is None:
        raise NotFound(f"no sale {sale_id!r} for this merchant")
    return sale


def pay_sale(
    uow: UnitOfWork,
    till: TillContext,
    sale_id: str,
    *,
    method: str,
    settings: PromotionSettings,
    payment_settings: qr_payments.PaymentSettings,
    expires_in: int | None = None,
) -> tuple[Sale, Payment | None]:
    """Price the sale for ``method``, hold its promotions and create its payment (not
    committed). Paying twice gives the same payment (a double click is harmless)."""
    if method not in promo.model.PAYMENT_METHODS:
        raise InvalidInput("method: expected 'qr' or 'card'")
    sale = uow.session.scalar(
        select(Sale)
        .where(Sale.id == sale_id, narrow(till.scope, Sale.merchant_id, Sale.store_id))
        .with_for_update()
    )
    if sale is None:
        raise NotFound(f"no sale {sale_id!r} for this merchant")
    if sale.status in ("reserved", "paid") and sale.payment_method == method:
        existing = uow.session.get(Payment, sale.payment_id) if sale.payment_id else None
        return sale, existing
    if sale.status != "priced":
        raise Conflict(f"the sale is {sale.status}; price the basket again to start over")
    request, digests = stored_request(sale)
    merchant = uow.session.get_one(Merchant, till.merchant_id)
    contended = False
    for attempt in range(_ATTEMPTS):
        now = utcnow()
        try:
            with uow.session.begin_nested():
                run = pricing.price_request(
                    uow, till, request, digests, settings, method=method, lock=True,
                    sale_id=sale.id, now=now, lock_limited=contended,
                )  # fmt: skip
                customer = customers.enrol(uow, merchant, run.who) if digests else None
                redemptions.reserve(
                    uow, sale, run.priced, run.rows, customer=customer,
                    coupons=run.coupons, local_day=run.ctx.moment.date(), referrer=run.referrer,
                )  # fmt: skip
                break
        except (redemptions.LimitReached, customers.EnrolRace) as exc:
            contended = contended or isinstance(exc, redemptions.LimitReached)
            if attempt == _ATTEMPTS - 1:
                raise Conflict(
                    "the promotions changed while paying (a budget or coupon was just "
                    "used up); price the basket again"
                ) from None
    _write_outcome(sale, run)
    sale.customer_id = customer.id if customer else None
    consent = request.customer.marketing_consent
    if customer is not None and consent is not None:
        privacy.record_consent(uow, customer, consent, source="till", actor=till.actor)
    sale.payment_method = method
    sale.updated_at = now
    if customer is not None:
        _expose(uow, sale, run, customer)
    payment = _create_payment(uow, till, sale, method, payment_settings, expires_in)
    sale.status = "reserved"
    if payment is None:  # promotions paid for everything: the sale is paid now
        redemptions.commit(uow, sale, now)
    else:
        sale.payment_id = payment.id
    uow.session.flush()
    return sale, payment


def _create_payment(
    uow: UnitOfWork,
    till: TillContext,
    sale: Sale,
    method: str,
    settings: qr_payments.PaymentSettings,
    expires_in: int | None,
) -> Payment | None:
    if sale.total_after_minor == 0:
        return None  # promotions paid for everything: nothing to charge
    money = Money(sale.total_after_minor, sale.currency)
    bill = sale.id.replace("-", "")[:25]
    if method == "card":
        payment = cards.create_card_payment(
            uow, till, money=money, bill_number=bill, currencies=settings.currencies
        )
    else:
        payment = qr_payments.create_qr_payment(
            uow, till, money=money, settings=settings, bill_number=bill, expires_in=expires_in
        )
    payment.sale_id = sale.id
    return payment


def _expose(uow: UnitOfWork, sale: Sale, run: pricing.Priced, customer: Customer) -> None:
    """One exposure per experiment this customer is in: was the sale eligible, did the
    customer's variant apply, and what did the experiment's promotions cost (a prize won in
    its draw is added when the sale is paid and drawn)."""
    applied = {a.promotion_id: a for a in run.priced.applied}
    basket = pricing.basket_of(stored_request(sale)[0])
    for key, (exp, variant) in run.experiments.items():
        members = [p for p in run.promotions.values() if p.experiment == key]
        eligible = any(
            check_eligibility(p, basket, _as_variant(run.ctx, key, p.variant)) is None
            for p in members
        )
        mine = [applied[p.id] for p in members if p.id in applied]
        cost = sum(a.discount_minor for a in mine)
        uow.session.add(
            ExperimentExposure(
                experiment_id=exp.id, variant=variant, sale_id=sale.id, customer_id=customer.id,
                eligible=eligible, redeemed=bool(mine), cost_minor=cost,
            )
        )  # fmt: skip


def _as_variant(ctx: promo.SaleContext, experiment: str, variant: str | None) -> promo.SaleContext:
    return replace(ctx, variants={**ctx.variants, experiment: variant or ""})


def purge_quotes(uow: UnitOfWork, *, older_than: datetime) -> int:
    """Delete quotes nobody paid for, priced before ``older_than``; they hold nothing, and a
    sale that was paid for (or tried to be) is never a quote. Returns how many went."""
    table = cast(Table, Sale.__table__)
    result = uow.session.execute(
        delete(table).where(table.c.status == "priced", table.c.created_at < older_than)
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def schedule_purge(uow: UnitOfWork, day: date) -> None:
    """Queue the quotes' clean-up for 03:00 UTC after ``day``, once (the worker calls this at
    start, and each run queues the next)."""
    at = datetime.combine(day + timedelta(days=1), time(3), tzinfo=UTC)
    key = f"{PURGE_JOB}:{day.isoformat()}"
    jobs.enqueue_once(uow, PURGE_JOB, {"day": day.isoformat()}, run_at=at, dedupe_key=key)
