"""What promotions give on a sale, held while its payment is open and settled when it ends.

* **reserve** (the sale is priced for payment): each applied promotion's use and money are
  added to ``promotions.used_*`` by a conditional UPDATE that fails if a limit or the budget
  would be passed, so concurrent checkouts can never overspend; batch coupon codes are taken
  by compare-and-set; redeemed points leave their lots; a referral is recorded.
* **commit** (the payment succeeded): the sale is paid, coupons redeemed, points earned, and
  lucky draws rolled under the promotion's row lock (daily caps and prize budget exact). Only
  a paid sale is drawn, so nobody can see a draw's outcome and then decide not to pay.
* **release** (cancelled, expired, failed before paying): everything reserved goes back.
* **refund**: the proportional part of discounts, budgets and points is reversed; shares are
  worked out on the cumulative refund, so several partial refunds add up to a full one exactly.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict
from datetime import date, datetime
from typing import Any, cast

from sqlalchemy import Table, select, update

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, utcnow
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    DrawEntry,
    ExperimentExposure,
    PromotionRow,
    ReferralRow,
    Sale,
    SalePromotion,
)
from gateway.domain.promotions import AppliedPromotion, PricedLine, PricedSale
from gateway.domain.promotions import draw as lucky
from gateway.domain.promotions.model import LuckyDraw
from gateway.domain.promotions.spec import promotion_from_spec
from gateway.services.promotions import points_ledger

PAID_STATES = frozenset({"authorised", "paid"})
UNPAID_STATES = {"cancelled": "cancelled", "expired": "expired", "failed": "failed"}


class LimitReached(Exception):
    """A limit, budget, coupon or points were taken by a concurrent checkout: price the sale
    again, this time with the limited promotions' rows locked first (``sales.pay_sale``)."""

    def __init__(self, what: str, promotion_id: int | None = None) -> None:
        super().__init__(what)
        self.promotion_id = promotion_id


def reserve(
    uow: UnitOfWork,
    sale: Sale,
    priced: PricedSale,
    rows: Mapping[str, Any],
    *,
    customer: Customer | None,
    coupons: dict[str, CouponCode],
    local_day: date,
    referrer: Customer | None,
) -> None:
    """Hold everything ``priced`` gives (not committed)."""
    # Only promotions with a limit keep counters (and take a row lock), always in id order,
    # so two checkouts never deadlock; the others' uses are counted from sale_promotions.
    limited = [a for a in priced.applied if _limited(rows[a.promotion_id])]
    for applied in sorted(limited, key=lambda a: rows[a.promotion_id].id):
        budget = applied.discount_minor if applied.budgeted else 0
        _take_limits(uow, rows[applied.promotion_id], 1, budget)
    for applied in priced.applied:
        row = rows[applied.promotion_id]
        uow.session.add(
            SalePromotion(
                sale_id=sale.id, promotion_id=row.id, customer_id=customer.id if customer else None,
                local_day=local_day, kind=applied.kind, state="reserved",
                discount_minor=applied.discount_minor,
                budget_minor=applied.discount_minor if applied.budgeted else 0,
                points=applied.points, points_redeemed=applied.points_redeemed,
                referrer_points=applied.referrer_points,
            )
        )  # fmt: skip
        coupon = coupons.get(applied.promotion_id)
        if coupon is not None:
            _take_coupon(uow, coupon, sale.id)
        if applied.points_redeemed and customer is not None:
            now = utcnow()  # the points must still be valid now, not when the quote was made
            if not points_ledger.spend(uow, customer.id, sale.id, applied.points_redeemed, now):
                raise LimitReached("points")
        if applied.kind == "referral" and customer is not None and referrer is not None:
            uow.session.add(
                ReferralRow(
                    merchant_id=sale.merchant_id, promotion_id=row.id, referrer_id=referrer.id,
                    referee_id=customer.id, sale_id=sale.id,
                    referrer_points=applied.referrer_points, state="reserved", local_day=local_day,
                )
            )  # fmt: skip
    uow.session.flush()


def _limited(row: Any) -> bool:
    return row.count_limit is not None or row.budget_minor is not None


def _take_limits(uow: UnitOfWork, row: Any, count: int, money: int) -> None:
    table = cast(Table, PromotionRow.__table__)
    conditions = [table.c.id == row.id]
    if row.count_limit is not None:
        conditions.append(table.c.used_count + count <= table.c.count_limit)
    if row.budget_minor is not None and money:
        conditions.append(table.c.used_money_minor + money <= table.c.budget_minor)
    result = uow.session.execute(
        update(table)
        .where(*conditions)
        .values(
            used_count=table.c.used_count + count,
            used_money_minor=table.c.used_money_minor + money,
            updated_at=table.c.updated_at,  # usage is not a change of the promotion itself
        )
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LimitReached(row.key, row.id)


def _give_back_limits(uow: UnitOfWork, promotion_id: int, count: int, money: int) -> None:
    table = cast(Table, PromotionRow.__table__)
    limited = table.c.count_limit.is_not(None) | table.c.budget_minor.is_not(None)
    uow.session.execute(
        update(table)
        .where(table.c.id == promotion_id, limited)
        .values(
            used_count=table.c.used_count - count,
            used_money_minor=table.c.used_money_minor - money,
            updated_at=table.c.updated_at,
        )
    )


def _take_coupon(uow: UnitOfWork, coupon: CouponCode, sale_id: str) -> None:
    table = cast(Table, CouponCode.__table__)
    result = uow.session.execute(
        update(table)
        .where(table.c.id == coupon.id, table.c.status == "available")
        .values(status="reserved", sale_id=sale_id)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise LimitReached(coupon.code)


def _draw(uow: UnitOfWork, sale: Sale, item: SalePromotion) -> dict[str, Any]:
    """Roll the paid sale's draw of one promotion, its stock read under the row lock."""
    locked = uow.session.scalar(
        select(PromotionRow).where(PromotionRow.id == item.promotion_id).with_for_update()
    )
    assert locked is not None
    promotion = promotion_from_spec(locked.key, locked.kind, locked.spec)
    assert isinstance(promotion, LuckyDraw)
    row, local_day = locked, item.local_day
    if locked.draw_seed is None:
        locked.draw_seed = lucky.new_seed()
    live = (
        select(DrawEntry)
        .where(DrawEntry.promotion_id == row.id, DrawEntry.state != "released")
        .subquery()
    )
    used = sum(uow.session.scalars(select(live.c.value_minor)).all())
    today: dict[str, int] = {}
    for prize_id in uow.session.scalars(
        select(live.c.prize_id).where(live.c.local_day == local_day, live.c.prize_id.is_not(None))
    ):
        today[prize_id] = today.get(prize_id, 0) + 1
    stock = lucky.PrizeStock(used, today)
    result = lucky.draw(promotion.table, locked.draw_seed, sale.id, stock)
    prize = result.prize
    uow.session.add(
        DrawEntry(
            promotion_id=row.id, sale_id=sale.id, customer_id=sale.customer_id,
            seed=locked.draw_seed, draw_key=sale.id, roll=result.roll,
            prize_id=prize.id if prize else None, prize_name=prize.name if prize else None,
            value_minor=prize.value_minor if prize else 0, outcome=result.outcome,
            explanation=result.explanation,
            stock={"budget_used_minor": used, "won_today": today},
            state="committed", local_day=local_day,
        )
    )  # fmt: skip
    return {
        "promotion": row.key,
        "outcome": result.outcome,
        "prize": prize.name if prize else None,
        "value_minor": prize.value_minor if prize else 0,
        "explanation": result.explanation,
    }


def on_payment_moved(uow: UnitOfWork, payment: Payment, status: str) -> None:
    """Called by the payments service after every move of a payment that pays for a sale."""
    if payment.sale_id is None:
        return
    if status in ("refunded", "partially_refunded"):
        on_refund(uow, payment)
    else:
        on_payment_status(uow, payment.sale_id, status, payment.paid_at or utcnow())


def on_payment_status(uow: UnitOfWork, sale_id: str, status: str, at: datetime) -> None:
    """Keep the sale in step with its payment: commit on success, release on failure."""
    sale = uow.session.scalar(select(Sale).where(Sale.id == sale_id).with_for_update())
    if sale is None:
        return
    _lock_customer(uow, sale)
    if status in PAID_STATES and sale.status == "reserved":
        commit(uow, sale, at)
    elif status in UNPAID_STATES and sale.status == "reserved":
        release(uow, sale, UNPAID_STATES[status])
    elif status in UNPAID_STATES and sale.status == "paid":
        # A card payment reversed (or lost) after approval: as if the whole sale were refunded,
        # and no longer a purchase of the customer's.
        reverse(uow, sale, sale.total_after_minor, sale.total_after_minor)
        sale.status = "reversed"
        _uncount_purchase(uow, sale)


def _lock_customer(uow: UnitOfWork, sale: Sale) -> None:
    """Lock order, everywhere: payment, sale, customer, then promotions by id (checkouts
    take the same order), so settling a sale never deadlocks with a checkout."""
    if sale.customer_id is not None:
        uow.session.execute(
            select(Customer.id).where(Customer.id == sale.customer_id).with_for_update()
        ).all()


def commit(uow: UnitOfWork, sale: Sale, at: datetime) -> None:
    sale.status = "paid"
    held = _held(uow, sale.id)
    for item in held:
        item.state = "committed"
    draws = [_draw(uow, sale, item) for item in held if item.kind == LuckyDraw.kind]
    if draws:
        sale.request = {**sale.request, "draws": draws}
        _add_prize_cost(uow, sale, held, draws)
    table = cast(Table, CouponCode.__table__)
    uow.session.execute(
        update(table)
        .where(table.c.sale_id == sale.id, table.c.status == "reserved")
        .values(status="redeemed", redeemed_at=at)
    )
    customer = None
    if sale.customer_id is not None:
        customer = uow.session.scalar(
            select(Customer).where(Customer.id == sale.customer_id).with_for_update()
        )
    if customer is not None:
        _count_purchase(customer, sale, at)
        _earn_points(uow, sale, customer, held, at)
    for referral in uow.session.scalars(select(ReferralRow).where(ReferralRow.sale_id == sale.id)):
        referral.state = "committed"
        if referral.referrer_points:
            points_ledger.earn(
                uow, referral.referrer_id, sale.id, referral.promotion_id,
                referral.referrer_points, at, source="referral",
            )  # fmt: skip
    uow.session.flush()


def _add_prize_cost(
    uow: UnitOfWork, sale: Sale, held: list[SalePromotion], draws: list[dict[str, Any]]
) -> None:
    """A prize won by a sale in an experiment counts in that experiment's cost."""
    won = {d["promotion"]: d["value_minor"] for d in draws if d["value_minor"]}
    if not won:
        return
    for row in _rows(uow, [h.promotion_id for h in held if h.kind == LuckyDraw.kind]):
        if row.key in won and row.experiment_id is not None:
            exposure = uow.session.scalar(
                select(ExperimentExposure).where(
                    ExperimentExposure.experiment_id == row.experiment_id,
                    ExperimentExposure.sale_id == sale.id,
                )
            )
            if exposure is not None:
                exposure.cost_minor += won[row.key]


def _count_purchase(customer: Customer, sale: Sale, at: datetime) -> None:
    customer.purchases += 1
    if sale.currency == customer.spend_currency:
        customer.spend_minor += sale.total_after_minor
    customer.first_purchase_at = customer.first_purchase_at or at
    customer.last_purchase_at = at


def _uncount_purchase(uow: UnitOfWork, sale: Sale) -> None:
    if sale.customer_id is None:
        return
    customer = uow.session.scalar(
        select(Customer).where(Customer.id == sale.customer_id).with_for_update()
    )
    if customer is None:
        return
    customer.purchases = max(customer.purchases - 1, 0)
    if sale.currency == customer.spend_currency:
        customer.spend_minor = max(customer.spend_minor - sale.total_after_minor, 0)


def _earn_points(
    uow: UnitOfWork, sale: Sale, customer: Customer, held: list[SalePromotion], at: datetime
) -> None:
    rows = {r.id: r for r in _rows(uow, [h.promotion_id for h in held if h.points])}
    for item in held:
        if item.points:
            days = rows[item.promotion_id].spec.get("expiry_days")
            points_ledger.earn(
                uow, customer.id, sale.id, item.promotion_id, item.points, at, expiry_days=days
            )


def release(uow: UnitOfWork, sale: Sale, status: str) -> None:
    """Give back everything the sale held: it was never paid."""
    sale.status = status
    for item in sorted(_held(uow, sale.id), key=lambda h: h.promotion_id):
        item.state = "released"
        _give_back_limits(uow, item.promotion_id, 1, item.budget_minor)
    table = cast(Table, CouponCode.__table__)
    uow.session.execute(
        update(table)
        .where(table.c.sale_id == sale.id, table.c.status == "reserved")
        .values(status="available", sale_id=None)
    )
    points_ledger.put_back(uow, sale.id)
    for entry in uow.session.scalars(select(DrawEntry).where(DrawEntry.sale_id == sale.id)):
        entry.state = "released"
    for referral in uow.session.scalars(select(ReferralRow).where(ReferralRow.sale_id == sale.id)):
        uow.session.delete(referral)  # it never happened; the referee may be referred again
    uow.session.flush()


def on_refund(uow: UnitOfWork, payment: Payment) -> None:
    """The payment's refunds now total ``payment.refunded_minor``: reverse that share."""
    if payment.sale_id is None:
        return
    sale = uow.session.scalar(select(Sale).where(Sale.id == payment.sale_id).with_for_update())
    if sale is None or sale.status != "paid":
        return
    _lock_customer(uow, sale)
    sale.refunded_minor = payment.refunded_minor
    reverse(uow, sale, payment.refunded_minor, payment.amount_minor)


def reverse(uow: UnitOfWork, sale: Sale, refunded: int, paid: int) -> None:
    """Reverse the share of every promotion that ``refunded`` of ``paid`` stands for."""
    priced = stored_priced_sale(sale)
    full = refunded >= paid
    taken = min(refunded, paid) * priced.total_after_minor // paid if paid else 0
    shares = {s.promotion_id: s for s in priced.refund_share_of_total(taken)}
    rows = {r.key: r for r in _rows_by_key(uow, sale.merchant_id, list(shares))}
    held = {h.promotion_id: h for h in _held(uow, sale.id, states=("committed",))}
    for key, share in sorted(shares.items(), key=lambda kv: rows[kv[0]].id if kv[0] in rows else 0):
        row = rows.get(key)
        item = held.get(row.id) if row is not None else None
        if row is None or item is None:
            continue
        budget = share.budget_minor - item.returned_budget_minor
        count = 0
        if full:  # the last refund gives back exactly what is left, and the use itself
            budget = item.budget_minor - item.returned_budget_minor
            count, item.state = 1, "refunded"
        _give_back_limits(uow, row.id, count, budget)
        points = (item.points if full else share.points) - item.returned_points
        redeemed = (
            item.points_redeemed if full else share.points_redeemed
        ) - item.returned_points_redeemed
        if points > 0 and sale.customer_id is not None:
            points_ledger.take_back(uow, sale.customer_id, sale.id, row.id, points)
        if redeemed > 0 and sale.customer_id is not None:
            points_ledger.credit(uow, sale, redeemed)
        item.returned_discount_minor = item.discount_minor if full else share.discount_minor
        item.returned_budget_minor += budget
        item.returned_points += max(points, 0)
        item.returned_points_redeemed += max(redeemed, 0)
    if full:
        _reverse_referral(uow, sale)
    uow.session.flush()


def _reverse_referral(uow: UnitOfWork, sale: Sale) -> None:
    """A referee's first purchase refunded in full was no purchase: the referrer's reward goes
    (what is left of it) and the referral no longer counts towards their limits."""
    for referral in uow.session.scalars(
        select(ReferralRow).where(ReferralRow.sale_id == sale.id, ReferralRow.state == "committed")
    ):
        referral.state = "reversed"
        if referral.referrer_points:
            points_ledger.take_back(
                uow, referral.referrer_id, sale.id, referral.promotion_id, referral.referrer_points
            )


def _held(
    uow: UnitOfWork, sale_id: str, states: tuple[str, ...] = ("reserved",)
) -> list[SalePromotion]:
    return list(
        uow.session.scalars(
            select(SalePromotion)
            .where(SalePromotion.sale_id == sale_id, SalePromotion.state.in_(states))
            .order_by(SalePromotion.id)
        )
    )


def _rows(uow: UnitOfWork, ids: list[int]) -> list[PromotionRow]:
    if not ids:
        return []
    return list(uow.session.scalars(select(PromotionRow).where(PromotionRow.id.in_(ids))))


def _rows_by_key(uow: UnitOfWork, merchant_id: int, keys: list[str]) -> list[PromotionRow]:
    if not keys:
        return []
    return list(
        uow.session.scalars(
            select(PromotionRow).where(
                PromotionRow.merchant_id == merchant_id, PromotionRow.key.in_(keys)
            )
        )
    )


def applied_json(applied: AppliedPromotion) -> dict[str, Any]:
    out = asdict(applied)
    out["per_line"] = list(applied.per_line)
    out["points_basis"] = list(applied.points_basis)
    return out


def stored_priced_sale(sale: Sale) -> PricedSale:
    """The priced sale as stored with the sale (what refunds are reversed against)."""
    lines = tuple(
        PricedLine(
            ln["sku"], ln["name"], ln["category"], ln["quantity"], ln["original_minor"],
            ln["discount_minor"], ln["final_minor"],
        )
        for ln in sale.lines
    )  # fmt: skip
    applied = tuple(
        AppliedPromotion(
            **{**a, "per_line": tuple(a["per_line"]), "points_basis": tuple(a["points_basis"])}
        )
        for a in sale.applied
    )
    return PricedSale(
        currency=sale.currency,
        lines=lines,
        applied=applied,
        total_before_minor=sale.total_before_minor,
        total_after_minor=sale.total_after_minor,
        points=sum(a.points for a in applied),
        gifts=tuple(sale.gifts),
        rejections_of=tuple,
    )
