"""What an eligible promotion gives on this sale: a discount, points or a gift — or why not.

Each kind's rule is one function of the promotion and the sale as it stands (the amounts left
after the promotions already applied). A discount is never more than what is left on the
lines it targets; spreading it over those lines is the engine's work.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from gateway.domain.promotions.model import (
    Basket,
    Coupon,
    FeeWaiver,
    FixedPrice,
    LoyaltyPoints,
    LuckyDraw,
    MultiBuy,
    NewCustomerDiscount,
    PercentOff,
    PointsRedemption,
    Promotion,
    Referral,
    SaleContext,
    ThresholdDiscount,
    ThresholdGift,
)
from gateway.domain.promotions.rejection import Reason, Rejection


@dataclass(frozen=True, slots=True)
class Reward:
    """A promotion's outcome: ``lines`` are the priced-line indexes it is spread over."""

    lines: tuple[int, ...]
    discount_minor: int = 0
    points: int = 0
    gift: str | None = None
    points_redeemed: int = 0
    referrer_points: int = 0
    draw: bool = False


@dataclass(slots=True)
class SaleState:
    """The sale being priced: ``remaining`` holds each priced line's amount still to pay."""

    basket: Basket
    ctx: SaleContext
    remaining: list[int]

    def targeted(self, promo: Promotion) -> tuple[int, ...]:
        """Goods lines the promotion covers that still have something to pay."""
        covers = promo.targeting.covers
        rem = self.remaining
        return tuple(i for i, ln in enumerate(self.basket.lines) if rem[i] > 0 and covers(ln))

    def amount(self, lines: tuple[int, ...]) -> int:
        return sum(self.remaining[i] for i in lines)


Outcome = Reward | Rejection


def compute_reward(promo: Promotion, sale: SaleState) -> Outcome:
    """The reward ``promo`` gives on ``sale`` now, or the reason it gives nothing."""
    rule: Callable[[Any, SaleState], Outcome] = _RULES[promo.kind]
    return rule(promo, sale)


def _reject(
    promo: Promotion, sale: SaleState, code: Reason, *args: object, money: int = 0
) -> Rejection:
    """A rejection whose first ``money`` args are minor units."""
    return Rejection(promo.id, code, args, sale.basket.currency, tuple(range(money)))


def _discount(promo: Promotion, sale: SaleState, lines: tuple[int, ...], amount: int) -> Outcome:
    amount = min(amount, sale.amount(lines))
    if amount <= 0:
        return _reject(promo, sale, Reason.NOTHING)
    return Reward(lines, discount_minor=amount)


def _threshold(promo: ThresholdDiscount, sale: SaleState) -> Outcome:
    lines = sale.targeted(promo)
    spent = sale.amount(lines)
    if promo.every_minor > 0:
        times = spent // promo.every_minor
        if promo.limits.per_sale is not None:
            times = min(times, promo.limits.per_sale)
        if times == 0:
            missing = promo.every_minor - spent
            return _reject(promo, sale, Reason.THRESHOLD, missing, promo.every_save_minor, money=2)
        return _discount(promo, sale, lines, times * promo.every_save_minor)
    reached = [t for t in promo.tiers if t.min_spend_minor <= spent]
    if not reached:
        low = min(promo.tiers, key=lambda t: (t.min_spend_minor, t.save_minor))
        missing = low.min_spend_minor - spent
        return _reject(promo, sale, Reason.THRESHOLD, missing, low.save_minor, money=2)
    best = max(reached, key=lambda t: (t.min_spend_minor, t.save_minor))
    return _discount(promo, sale, lines, best.save_minor)


def _percent(promo: PercentOff, sale: SaleState) -> Outcome:
    lines = sale.targeted(promo)
    amount = sale.amount(lines) * promo.percent_bp // 10_000
    if promo.cap_minor is not None:
        amount = min(amount, promo.cap_minor)
    return _discount(promo, sale, lines, amount)


def _units(sale: SaleState, lines: tuple[int, ...], dearest_first: bool) -> list[tuple[int, int]]:
    """(unit price, quantity) of the targeted lines, cheapest (or dearest) first, stable."""
    goods = sale.basket.lines
    sign = -1 if dearest_first else 1
    order = sorted(lines, key=lambda i: (sign * goods[i].unit_price_minor, i))
    return [(goods[i].unit_price_minor, goods[i].quantity) for i in order]


def _take(units: list[tuple[int, int]], count: int) -> int:
    """The price of the first ``count`` units of ``units``."""
    total = 0
    for price, quantity in units:
        n = min(quantity, count)
        total += n * price
        count -= n
        if count == 0:
            break
    return total


def _sets(promo: Promotion, sale: SaleState, lines: tuple[int, ...], size: int) -> int | Rejection:
    units = sum(sale.basket.lines[i].quantity for i in lines)
    sets = units // size
    if promo.limits.per_sale is not None:
        sets = min(sets, promo.limits.per_sale)
    if sets == 0:
        return _reject(promo, sale, Reason.QUANTITY, size - units)
    return sets


def _multi_buy(promo: MultiBuy, sale: SaleState) -> Outcome:
    lines = sale.targeted(promo)
    sets = _sets(promo, sale, lines, promo.buy + promo.get)
    if isinstance(sets, Rejection):
        return sets
    free = _take(_units(sale, lines, dearest_first=False), sets * promo.get)
    return _discount(promo, sale, lines, free)


def _fixed_price(promo: FixedPrice, sale: SaleState) -> Outcome:
    lines = sale.targeted(promo)
    sets = _sets(promo, sale, lines, promo.quantity)
    if isinstance(sets, Rejection):
        return sets
    usual = _take(_units(sale, lines, dearest_first=True), sets * promo.quantity)
    return _discount(promo, sale, lines, usual - sets * promo.price_minor)


def _first_use(promo: Promotion, sale: SaleState) -> Rejection | None:
    customer = sale.ctx.customer
    if customer is None:
        return _reject(promo, sale, Reason.CUSTOMER)
    if not customer.first_use:
        return _reject(promo, sale, Reason.FIRST_USE)
    return None


def _amount_off(promo: NewCustomerDiscount | Coupon | Referral, sale: SaleState) -> Outcome:
    lines = sale.targeted(promo)
    amount = promo.amount_off_minor + sale.amount(lines) * promo.percent_bp // 10_000
    if promo.cap_minor is not None:
        amount = min(amount, promo.cap_minor)
    return _discount(promo, sale, lines, amount)


def _new_customer(promo: NewCustomerDiscount, sale: SaleState) -> Outcome:
    return _first_use(promo, sale) or _amount_off(promo, sale)


def _fee_waiver(promo: FeeWaiver, sale: SaleState) -> Outcome:
    fee = len(sale.basket.lines)
    if sale.basket.fee_minor <= 0 or sale.remaining[fee] <= 0:
        return _reject(promo, sale, Reason.NO_FEE)
    return _first_use(promo, sale) or Reward((fee,), discount_minor=sale.remaining[fee])


def _points(promo: LoyaltyPoints, sale: SaleState) -> Outcome:
    if sale.ctx.customer is None:  # nobody to credit them to
        return _reject(promo, sale, Reason.CUSTOMER)
    lines = sale.targeted(promo)
    paid = sale.amount(lines)
    points = paid // promo.per_minor * promo.points
    if points <= 0:
        return _reject(promo, sale, Reason.NO_POINTS, promo.per_minor - paid, money=1)
    return Reward(lines, points=points)


def _gift(promo: ThresholdGift, sale: SaleState) -> Outcome:
    customer = sale.ctx.customer
    if customer is None:
        return _reject(promo, sale, Reason.CUSTOMER)
    if promo.period_days is not None:
        used = sale.ctx.usage_of(promo.id)
        purchases, spend = used.period_purchases + 1, used.period_spend_minor
    else:
        purchases, spend = customer.purchases + 1, customer.spend_minor
    spend += sum(sale.remaining)
    by_count = promo.after_purchases is not None and purchases >= promo.after_purchases
    by_spend = promo.after_spend_minor is not None and spend >= promo.after_spend_minor
    if by_count or by_spend:
        return Reward((), gift=promo.gift)
    if promo.after_purchases is not None:
        return _reject(
            promo, sale, Reason.GIFT_PURCHASES, promo.after_purchases - purchases, promo.gift
        )
    missing = (promo.after_spend_minor or 0) - spend
    return _reject(promo, sale, Reason.GIFT_SPEND, missing, promo.gift, money=1)


def _redeem(promo: PointsRedemption, sale: SaleState) -> Outcome:
    customer, asked = sale.ctx.customer, sale.ctx.redeem_points
    if asked <= 0:
        return _reject(promo, sale, Reason.NOT_ASKED)
    if customer is None:
        return _reject(promo, sale, Reason.CUSTOMER)
    balance = customer.points_balance
    if balance <= 0:
        return _reject(promo, sale, Reason.NO_BALANCE)
    if min(asked, balance) < promo.min_points:
        return _reject(promo, sale, Reason.FEW_POINTS, promo.min_points, balance)
    lines = tuple(i for i, left in enumerate(sale.remaining) if left > 0)
    most = sale.amount(lines) * promo.max_share_bp // 10_000
    points = min(asked, balance, most // promo.point_value_minor)
    if points < max(promo.min_points, 1):
        return _reject(promo, sale, Reason.NOTHING)
    return Reward(lines, points * promo.point_value_minor, points_redeemed=points)


def _referral(promo: Referral, sale: SaleState) -> Outcome:
    claim, customer = sale.ctx.referral, sale.ctx.customer
    if claim is None:
        return _reject(promo, sale, Reason.NO_REFERRAL)
    first = _first_use(promo, sale)
    if first is not None:
        return first
    assert customer is not None  # _first_use checked it
    if claim.referrer_token == customer.id_token:
        return _reject(promo, sale, Reason.SELF_REFERRAL)
    if claim.referee_referred_before:
        return _reject(promo, sale, Reason.REFERRED_BEFORE)
    if not claim.referrer_has_purchased:
        return _reject(promo, sale, Reason.REFERRER_NEW)
    if promo.max_referrals is not None and claim.referrer_referrals >= promo.max_referrals:
        return _reject(promo, sale, Reason.REFERRAL_LIMIT, promo.max_referrals)
    daily = promo.max_referrals_per_day
    if daily is not None and claim.referrer_referrals_today >= daily:
        return _reject(promo, sale, Reason.REFERRAL_DAILY, daily)
    if promo.amount_off_minor == 0 and promo.percent_bp == 0:
        return Reward((), referrer_points=promo.referrer_points)
    outcome = _amount_off(promo, sale)
    if isinstance(outcome, Rejection):
        return outcome
    return Reward(outcome.lines, outcome.discount_minor, referrer_points=promo.referrer_points)


def _draw(promo: LuckyDraw, sale: SaleState) -> Outcome:
    paid = sale.amount(sale.targeted(promo))
    if paid <= 0 or paid < promo.min_spend_minor:
        missing = max(promo.min_spend_minor - paid, 1)
        return _reject(promo, sale, Reason.DRAW_SPEND, missing, money=1)
    return Reward((), draw=True)


_RULES: dict[str, Callable[[Any, SaleState], Outcome]] = {
    ThresholdDiscount.kind: _threshold,
    PercentOff.kind: _percent,
    MultiBuy.kind: _multi_buy,
    FixedPrice.kind: _fixed_price,
    NewCustomerDiscount.kind: _new_customer,
    FeeWaiver.kind: _fee_waiver,
    Coupon.kind: _amount_off,
    LoyaltyPoints.kind: _points,
    ThresholdGift.kind: _gift,
    PointsRedemption.kind: _redeem,
    Referral.kind: _referral,
    LuckyDraw.kind: _draw,
}
