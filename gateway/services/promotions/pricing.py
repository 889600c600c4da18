"""Pricing a sale: the merchant's live promotions (parsed once per change), and everything a
price depends on read for one sale: the customer, their usage of each promotion, coupons
presented, a referral, their experiment groups.

``price_request`` runs one pricing and returns it with everything it was based on, which
``sales`` then stores as a quote or holds for payment.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Store
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    Experiment,
    PromotionRow,
    ReferralRow,
    Sale,
    SalePromotion,
)
from gateway.config import identity_key
from gateway.domain import promotions as promo
from gateway.domain.money import Money, currency
from gateway.domain.promotions import experiments as ab
from gateway.domain.promotions.model import ThresholdGift
from gateway.domain.promotions.spec import promotion_from_spec
from gateway.errors import InvalidInput
from gateway.services.promotions import customers
from gateway.services.promotions.promotion_admin import spec_problem
from gateway.services.staff.auth import TillContext
from gateway.settings import Settings

log = logging.getLogger(__name__)

# The most one sale may add up to (minor units), as for any single amount: far above a till
# sale, far below what a 64-bit column holds.
MAX_SALE_MINOR = 10**15


@dataclass(frozen=True, slots=True)
class PromotionSettings:
    identity_key: bytes
    lapsed_after: timedelta = timedelta(days=90)
    tap_window: timedelta = timedelta(seconds=120)
    # [privacy] profiles_need_consent (the configuration's default is true)
    profiles_need_consent: bool = False

    @classmethod
    def from_settings(cls, settings: Settings) -> PromotionSettings:
        """The ``[promotions]`` settings, with the identity key generated if not configured."""
        return cls(
            identity_key=identity_key(settings),
            lapsed_after=settings.promotions.lapsed_after,
            tap_window=settings.promotions.tap_window,
            profiles_need_consent=settings.privacy.profiles_need_consent,
        )


@dataclass(frozen=True, slots=True)
class LineInput:
    sku: str
    name: str
    category: str
    quantity: int
    unit_price: Money


@dataclass(frozen=True, slots=True)
class SaleRequest:
    """What the till sends: the basket and what it knows of the customer."""

    lines: tuple[LineInput, ...]
    currency: str
    fee: Money | None = None
    customer: customers.IdentityInput = field(default_factory=customers.IdentityInput)
    use_last_tap: bool = False
    coupon_codes: tuple[str, ...] = ()
    referral_code: str | None = None
    redeem_points: int = 0
    payment_method: str | None = None


@dataclass(slots=True)
class Priced:
    """One pricing run and everything it was based on."""

    priced: promo.PricedSale
    ctx: promo.SaleContext
    who: customers.Identified
    rows: dict[str, LivePromotion]
    promotions: dict[str, promo.Promotion]
    coupons: dict[str, CouponCode]
    notes: list[dict[str, str]]
    referrer: Customer | None
    experiments: dict[str, tuple[Experiment, str]] = field(default_factory=dict)


# --- the catalog: live promotions, parsed once per change ---------------------------------


@dataclass(frozen=True, slots=True)
class LivePromotion:
    """A live promotion as a sale needs it (its usage is read afresh for every sale)."""

    id: int
    key: str
    name: str
    kind: str
    spec: Mapping[str, Any]
    count_limit: int | None
    budget_minor: int | None
    experiment_id: int | None
    variant: str | None


@dataclass(frozen=True, slots=True)
class _Cached:
    """A merchant's parsed live promotions, valid while ``signature`` holds and until
    ``until`` (the next moment a promotion starts or ends by its dates)."""

    signature: tuple[Any, ...]
    until: datetime | None
    catalog: promo.Catalog
    by_key: dict[str, LivePromotion]
    limited: tuple[int, ...]


_CATALOGS: dict[int, _Cached] = {}


Usage = dict[int, tuple[int, int]]  # promotion id → (uses, money), reserved and committed


def live_promotions(
    uow: UnitOfWork, merchant_id: int, now: datetime
) -> tuple[promo.Catalog, dict[str, LivePromotion], Usage]:
    """The merchant's promotions live at ``now``, as a priced-ready catalog, with usage.

    Parsing a thousand specs on every sale would dominate pricing, so the parsed catalog is
    kept per process. Every call checks it against the database in one row: any change to a
    promotion moves the merchant's latest ``updated_at`` (or the count); a promotion going
    live or ending by its dates is caught by ``until``. Usage counters are read fresh each
    time, for the promotions that have limits: the database stays the one source of truth.
    """
    signature = tuple(
        uow.session.execute(
            select(func.count(), func.max(PromotionRow.updated_at)).where(
                PromotionRow.merchant_id == merchant_id
            )
        ).one()
    )
    cached = _CATALOGS.get(merchant_id)
    if cached is None or cached.signature != signature or (cached.until and now >= cached.until):
        cached = _load_catalog(uow, merchant_id, now, signature)
        _CATALOGS[merchant_id] = cached
    usage: Usage = {}
    if cached.limited:
        usage = {
            i: (count, money)
            for i, count, money in uow.session.execute(
                select(PromotionRow.id, PromotionRow.used_count, PromotionRow.used_money_minor)
                .where(PromotionRow.id.in_(cached.limited))
            )
        }  # fmt: skip
    return cached.catalog, cached.by_key, usage


def _load_catalog(
    uow: UnitOfWork, merchant_id: int, now: datetime, signature: tuple[Any, ...]
) -> _Cached:
    active = list(
        uow.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.merchant_id == merchant_id, PromotionRow.state == "active")
            .execution_options(populate_existing=True)
        )
    )
    rows = [
        r for r in active
        if (r.starts_at is None or r.starts_at <= now) and (r.ends_at is None or r.ends_at > now)
        and not _invalid(r)
    ]  # fmt: skip
    moments = [m for r in active for m in (r.starts_at, r.ends_at) if m is not None and m > now]
    experiments = _experiment_keys(uow, rows)
    parsed = [
        promotion_from_spec(
            r.key, r.kind, r.spec, experiment=experiments.get(r.experiment_id or 0),
            variant=r.variant,
        )
        for r in rows
    ]  # fmt: skip
    by_key = {
        r.key: LivePromotion(
            r.id, r.key, r.name, r.kind, r.spec, r.count_limit, r.budget_minor,
            r.experiment_id, r.variant,
        )
        for r in rows
    }  # fmt: skip
    limited = tuple(r.id for r in rows if r.count_limit is not None or r.budget_minor is not None)
    until = min(moments, default=None)
    return _Cached(signature, until, promo.Catalog(parsed), by_key, limited)


def _invalid(row: PromotionRow) -> bool:
    """A stored promotion that breaks today's rules is left out of pricing, with a warning."""
    problem = spec_problem(row)
    if problem:
        log.warning("promotion %s is not valid and is not applied: %s", row.key, problem)
    return problem is not None


def _experiment_keys(uow: UnitOfWork, rows: list[PromotionRow]) -> dict[int, str]:
    ids = {r.experiment_id for r in rows if r.experiment_id is not None}
    if not ids:
        return {}
    found = uow.session.execute(select(Experiment.id, Experiment.key).where(Experiment.id.in_(ids)))
    return {i: k for i, k in found}


# --- pricing ---------------------------------------------------------------------------


def basket_of(request: SaleRequest) -> promo.Basket:
    if not request.lines:
        raise InvalidInput("lines: a sale needs at least one line")
    if len(request.lines) > 500:
        raise InvalidInput("lines: at most 500 lines per sale")
    try:
        currency(request.currency)
    except InvalidInput as exc:
        raise InvalidInput(f"currency: {exc}") from None
    out = []
    for i, line in enumerate(request.lines):
        if line.quantity < 1 or line.quantity > 100_000:
            raise InvalidInput(f"lines[{i}].quantity: expected 1 to 100000")
        price = line.unit_price
        if price.currency != request.currency:
            raise InvalidInput(
                f"lines[{i}].unit_price: in {price.currency}, not {request.currency}"
            )
        if price.minor < 0:
            raise InvalidInput(f"lines[{i}].unit_price: must not be negative")
        out.append(promo.BasketLine(line.sku, line.name, line.category, line.quantity, price.minor))
    fee = request.fee.minor if request.fee else 0
    if request.fee and request.fee.currency != request.currency:
        raise InvalidInput(f"fee: in {request.fee.currency}, not {request.currency}")
    if fee < 0:
        raise InvalidInput("fee: must not be negative")
    total = sum(line.amount_minor for line in out) + fee
    if total > MAX_SALE_MINOR:
        most = Money(MAX_SALE_MINOR, request.currency)
        raise InvalidInput(f"lines: the sale adds up to more than {most}, the most one sale takes")
    return promo.Basket(tuple(out), request.currency, fee)


def price_request(
    uow: UnitOfWork,
    till: TillContext,
    request: SaleRequest,
    digests: tuple[tuple[str, str], ...],
    settings: PromotionSettings,
    *,
    method: str | None,
    lock: bool,
    sale_id: str | None = None,
    now: datetime,
    lock_limited: bool = False,
) -> Priced:
    """Price ``request`` for ``method``. With ``lock``, the customer's row is locked first;
    with ``lock_limited`` (after a checkout lost a race for a limit), every live promotion
    with a limit is then locked, in id order, before its usage is read. Locks are always
    taken in that order (sale, customer, promotions by id), so checkouts never deadlock."""
    basket = basket_of(request)
    store = uow.session.get_one(Store, till.store_id)
    moment = now.astimezone(ZoneInfo(store.timezone or "UTC"))
    who = customers.identify(uow, till.merchant_id, digests, lock=lock)
    catalog, rows, used = live_promotions(uow, till.merchant_id, now)
    if lock_limited and used:
        uow.session.execute(
            select(PromotionRow.id)
            .where(PromotionRow.id.in_(sorted(used)))
            .order_by(PromotionRow.id)
            .with_for_update()
        ).all()
        catalog, rows, used = live_promotions(uow, till.merchant_id, now)  # usage, now exact
    customer = customers.as_domain(
        uow,
        who,
        now,
        lapsed_after=settings.lapsed_after,
        sale_id=sale_id,
        consent_needed=settings.profiles_need_consent,
        consent_given=request.customer.marketing_consent,
    )
    notes: list[dict[str, str]] = []
    coupons = _coupons(uow, till.merchant_id, request.coupon_codes, who, rows, now, sale_id, notes)
    referrer, claim = _referral(
        uow, till.merchant_id, request.referral_code, moment.date(), who.customer
    )
    experiments = _assignments(uow, till.merchant_id, rows, who)
    ctx = promo.SaleContext(
        moment=moment,
        payment_method=method,
        store_id=str(till.store_id),
        till_id=str(till.till_id),
        customer=customer,
        coupon_codes=frozenset(c.strip() for c in request.coupon_codes),
        coupon_promotions=frozenset(coupons),
        usage=_usage(uow, rows, used, who.customer, moment.date(), now),
        redeem_points=request.redeem_points,
        referral=claim,
        variants={key: variant for key, (_, variant) in experiments.items()},
    )
    priced = promo.price(basket, catalog, ctx)
    promotions = {p.id: p for p in catalog.ordered}
    return Priced(priced, ctx, who, rows, promotions, coupons, notes, referrer, experiments)


def _coupons(
    uow: UnitOfWork,
    merchant_id: int,
    codes: tuple[str, ...],
    who: customers.Identified,
    rows: dict[str, LivePromotion],
    now: datetime,
    sale_id: str | None,
    notes: list[dict[str, str]],
) -> dict[str, CouponCode]:
    """Batch coupon codes presented, by promotion key, if usable by this customer now."""
    shared = {r.spec.get("code") for r in rows.values() if r.kind == "coupon"}
    wanted = [c.strip().upper() for c in codes if c.strip() and c.strip() not in shared]
    if not wanted:
        return {}
    by_id = {r.id: r for r in rows.values()}
    found = {
        c.code: c
        for c in uow.session.scalars(
            select(CouponCode).where(
                CouponCode.merchant_id == merchant_id, CouponCode.code.in_(wanted)
            )
        )
    }
    out: dict[str, CouponCode] = {}
    for code in wanted:
        coupon = found.get(code)
        why = _coupon_problem(coupon, by_id, who, now, sale_id)
        if why is not None:
            notes.append({"coupon": code, "reason": why})
            continue
        assert coupon is not None
        out[by_id[coupon.promotion_id].key] = coupon
    return out


def _coupon_problem(
    coupon: CouponCode | None,
    live: dict[int, LivePromotion],
    who: customers.Identified,
    now: datetime,
    sale_id: str | None,
) -> str | None:
    if coupon is None:
        return "unknown coupon code"
    if coupon.status == "redeemed" or (coupon.status == "reserved" and coupon.sale_id != sale_id):
        return "this coupon code has already been used"
    if coupon.expires_at is not None and coupon.expires_at <= now:
        return "this coupon code has expired"
    if coupon.promotion_id not in live:
        return "its promotion is not running now"
    if coupon.customer_id is not None and (
        who.customer is None or who.customer.id != coupon.customer_id
    ):
        return "this coupon code belongs to another customer"
    return None


def _referral(
    uow: UnitOfWork, merchant_id: int, code: str | None, today: date, referee: Customer | None
) -> tuple[Customer | None, promo.ReferralClaim | None]:
    if not code:
        return None, None
    referrer = customers.by_referral_code(uow, merchant_id, code)
    referred_before = referee is not None and (
        uow.session.scalar(select(ReferralRow.id).where(ReferralRow.referee_id == referee.id))
        is not None
    )
    counted = select(func.count()).where(
        ReferralRow.referrer_id == referrer.id, ReferralRow.state.in_(("reserved", "committed"))
    )
    total = int(uow.session.scalar(counted) or 0)
    on_day = int(uow.session.scalar(counted.where(ReferralRow.local_day == today)) or 0)
    claim = promo.ReferralClaim(
        referrer.token, referrer.purchases > 0, total, on_day, referred_before
    )
    return referrer, claim


def _assignments(
    uow: UnitOfWork, merchant_id: int, rows: dict[str, LivePromotion], who: customers.Identified
) -> dict[str, tuple[Experiment, str]]:
    """Each running experiment's variant for this customer (identified customers only)."""
    ids = {r.experiment_id for r in rows.values() if r.experiment_id is not None}
    if not ids or not who.digests:
        return {}
    out = {}
    for exp in uow.session.scalars(
        select(Experiment).where(Experiment.merchant_id == merchant_id, Experiment.id.in_(ids))
    ):
        domain = ab.Experiment(
            exp.key,
            tuple(ab.Variant(v["name"], int(v["weight"])) for v in exp.variants),
            exp.holdout_bp,
        )
        out[exp.key] = (exp, ab.assign(domain, who.key))
    return out


def _usage(
    uow: UnitOfWork,
    rows: dict[str, LivePromotion],
    used: Usage,
    customer: Customer | None,
    today: date,
    now: datetime,
) -> dict[str, promo.Usage]:
    """What each live promotion has used: globally (reserved + committed) and by the customer."""
    by_id = {r.id: r for r in rows.values()}
    mine: dict[int, tuple[int, int]] = {}
    if customer is not None:
        held = uow.session.execute(
            select(SalePromotion.promotion_id, SalePromotion.local_day).where(
                SalePromotion.customer_id == customer.id,
                SalePromotion.state.in_(("reserved", "committed")),
            )
        ).all()
        for promotion_id, day in held:
            life, on_day = mine.get(promotion_id, (0, 0))
            mine[promotion_id] = (life + 1, on_day + (day == today))
    out: dict[str, promo.Usage] = {}
    for row in by_id.values():
        life, on_day = mine.get(row.id, (0, 0))
        period = _period(uow, row, customer, now)
        count, money = used.get(row.id, (0, 0))
        if count or money or life or period != (0, 0):
            out[row.key] = promo.Usage(count, money, on_day, life, period[0], period[1])
    return out


def _period(
    uow: UnitOfWork, row: LivePromotion, customer: Customer | None, now: datetime
) -> tuple[int, int]:
    days = row.spec.get("period_days") if row.kind == ThresholdGift.kind else None
    if customer is None or not days:
        return (0, 0)
    count, spend = uow.session.execute(
        select(func.count(), func.coalesce(func.sum(Sale.total_after_minor), 0)).where(
            Sale.customer_id == customer.id,
            Sale.status == "paid",
            Sale.currency == customer.spend_currency,
            Sale.created_at >= now - timedelta(days=int(days)),
        )
    ).one()
    return int(count), int(spend)


def digests_of(
    uow: UnitOfWork, till: TillContext, request: SaleRequest, settings: PromotionSettings
) -> tuple[tuple[str, str], ...]:
    given = request.customer
    if request.use_last_tap:
        token = customers.last_tap_token(uow, till.till_id, within=settings.tap_window)
        given = customers.IdentityInput(
            given.wallet_id, given.member_code, token, given.phone, given.marketing_consent
        )
    return customers.digests(settings.identity_key, till.merchant_id, given)
