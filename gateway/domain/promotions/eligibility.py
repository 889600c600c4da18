"""Whether a promotion may apply to this sale at all: targeting, coupon code and usage limits.

The checks run in a fixed order and the first failure is the reason given, so the same sale
always gets the same reason. What a promotion's reward needs (a threshold, a quantity, a fee)
is judged later, in ``rewards``.
"""

from __future__ import annotations

from gateway.domain.promotions.model import Basket, Coupon, Promotion, SaleContext, Targeting
from gateway.domain.promotions.rejection import Reason, Rejection, days_words, methods_words

# Kinds that build on what is known of a customer over time (a profile): they need consent.
PROFILE_KINDS = frozenset({"points", "points_redeem", "referral", "gift"})


def needs_profile(promo: Promotion) -> bool:
    """True if ``promo`` uses a customer profile: a loyalty or referral kind, a segment
    target, or an A/B test (which follows the customer across sales)."""
    return (
        promo.kind in PROFILE_KINDS
        or bool(promo.targeting.segments)
        or promo.experiment is not None
    )


def check_eligibility(promo: Promotion, basket: Basket, ctx: SaleContext) -> Rejection | None:
    """The first reason ``promo`` cannot apply to this sale, or ``None``."""
    found = (
        _targeting(promo.targeting, basket, ctx)
        or _consent(promo, ctx)
        or _code_and_limits(promo, ctx)
    )
    if found is None:
        return None
    code, args = found
    return Rejection(promo.id, code, args, basket.currency)


_Found = tuple[Reason, tuple[object, ...]] | None


def _targeting(t: Targeting, basket: Basket, ctx: SaleContext) -> _Found:
    return _where(t, basket, ctx) or _when(t, ctx) or _what(t, basket, ctx)


def _where(t: Targeting, basket: Basket, ctx: SaleContext) -> _Found:
    if t.currency is not None and t.currency != basket.currency:
        return Reason.CURRENCY, (t.currency,)
    if t.payment_methods and ctx.payment_method not in t.payment_methods:
        return Reason.METHOD, (methods_words(t.payment_methods),)
    if t.stores and ctx.store_id not in t.stores:
        return Reason.STORE, ()
    if t.tills and ctx.till_id not in t.tills:
        return Reason.TILL, ()
    return None


def _when(t: Targeting, ctx: SaleContext) -> _Found:
    if t.weekdays and ctx.moment.weekday() not in t.weekdays:
        return Reason.DAY, (days_words(t.weekdays),)
    if t.hours is not None:
        start, end = t.hours
        hour = ctx.moment.hour
        inside = start <= hour < end if start <= end else (hour >= start or hour < end)
        if not inside:
            return Reason.HOUR, (start, end)
    return None


def _what(t: Targeting, basket: Basket, ctx: SaleContext) -> _Found:
    if t.segments:
        if ctx.customer is None:
            return Reason.CUSTOMER, ()
        if ctx.customer.segment not in t.segments:
            return Reason.SEGMENT, (" or ".join(sorted(t.segments)),)
    if not t.whole_basket and not any(t.covers(line) for line in basket.lines):
        return Reason.SCOPE, ()
    return None


def _consent(promo: Promotion, ctx: SaleContext) -> _Found:
    if ctx.customer is not None and not ctx.customer.consent and needs_profile(promo):
        return Reason.CONSENT, ()
    return None


def _code_and_limits(promo: Promotion, ctx: SaleContext) -> _Found:
    if promo.experiment is not None:
        if ctx.customer is None:
            return Reason.CUSTOMER, ()
        if ctx.variants.get(promo.experiment) != promo.variant:
            return Reason.VARIANT, ()
    if promo.code is not None and promo.code not in ctx.coupon_codes:
        return Reason.CODE, ()
    if isinstance(promo, Coupon) and promo.batch and promo.id not in ctx.coupon_promotions:
        return Reason.CODE, ()
    limits = promo.limits
    used = ctx.usage_of(promo.id)
    if limits.global_count is not None and used.global_count >= limits.global_count:
        return Reason.GLOBAL, (limits.global_count,)
    if limits.budget_minor is not None and used.global_money_minor >= limits.budget_minor:
        return Reason.BUDGET, ()
    if limits.per_customer and ctx.customer is None:
        return Reason.CUSTOMER, ()
    day, life = limits.per_customer_per_day, limits.per_customer_lifetime
    if day is not None and used.customer_today >= day:
        return Reason.DAILY, ()
    if life is not None and used.customer_lifetime >= life:
        return Reason.LIFETIME, (life,)
    return None
