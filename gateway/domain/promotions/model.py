"""Promotions' input values: the basket, the sale's context and the promotion kinds.

Every amount is an integer of minor units in the basket's currency; percentages are basis
points (1000 = 10 %). A promotion that names amounts should set ``targeting.currency`` so it
never applies its euro figures to a sale in another currency.

| kind             | reward                                                        |
|------------------|---------------------------------------------------------------|
| ``threshold``    | spend ≥ X save Y (tiers), or "for every X save Y"             |
| ``percent``      | N % off the targeted lines, optionally capped                 |
| ``multi_buy``    | buy X get Y free: the cheapest targeted units are free        |
| ``fixed_price``  | N targeted units for price P (the dearest units are used)     |
| ``new_customer`` | amount and/or percent off a customer's first purchase         |
| ``fee_waiver``   | the basket's service fee waived on a customer's first order   |
| ``coupon``       | amount and/or percent off when its code is presented          |
| ``points``       | loyalty points per amount paid (no discount)                  |
| ``gift``         | a gift item/voucher after N purchases or a spend total        |
| ``points_redeem``| the customer pays part of the sale with loyalty points        |
| ``referral``     | the referee's first purchase discounted, the referrer rewarded|
| ``draw``         | a paid sale enters a lucky draw (drawn by the service)        |

Stages: discounts are priced first (by priority), then points redemption (a way of paying,
so exclusivity does not stop it), then rewards (points, gifts, draw entries), which see the
amounts actually paid.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import ClassVar

from gateway.domain.promotions.draw import DrawTable
from gateway.errors import InvalidInput

PAYMENT_METHODS = ("qr", "card")
SEGMENTS = ("new", "returning", "lapsed")


@dataclass(frozen=True, slots=True)
class BasketLine:
    """One line of the basket: ``quantity`` units at ``unit_price_minor`` each."""

    sku: str
    name: str
    category: str
    quantity: int
    unit_price_minor: int

    def __post_init__(self) -> None:
        if self.quantity < 1 or self.unit_price_minor < 0:
            raise InvalidInput(f"line {self.sku!r}: quantity ≥ 1 and a price ≥ 0 are expected")

    @property
    def amount_minor(self) -> int:
        return self.quantity * self.unit_price_minor


@dataclass(frozen=True, slots=True)
class Basket:
    """The goods to price, plus an optional service fee (priced as a last line, sku "fee")."""

    lines: tuple[BasketLine, ...]
    currency: str
    fee_minor: int = 0


@dataclass(frozen=True, slots=True)
class Customer:
    """What is known about the paying customer (``id_token`` is an opaque wallet token)."""

    id_token: str
    segment: str = "returning"
    purchases: int = 0
    spend_minor: int = 0
    first_use: bool = False
    points_balance: int = 0
    # Whether promotions that need a profile (points, referrals, targeted or tested offers,
    # gifts after N purchases) may use this customer's: marketing consent, where required.
    consent: bool = True


@dataclass(frozen=True, slots=True)
class ReferralClaim:
    """A referral code presented at checkout, resolved to its referrer by the service."""

    referrer_token: str
    referrer_has_purchased: bool = True
    referrer_referrals: int = 0
    referrer_referrals_today: int = 0
    referee_referred_before: bool = False  # a customer is referred once, ever


@dataclass(frozen=True, slots=True)
class Usage:
    """How much of a promotion's limits is already consumed (read from the database)."""

    global_count: int = 0
    global_money_minor: int = 0
    customer_today: int = 0
    customer_lifetime: int = 0
    period_purchases: int = 0
    period_spend_minor: int = 0


NO_USAGE = Usage()


@dataclass(frozen=True)
class SaleContext:
    """Where, when, how and by whom the sale is paid. ``moment`` is the store's local time."""

    moment: datetime
    payment_method: str | None = None
    store_id: str | None = None
    till_id: str | None = None
    customer: Customer | None = None
    coupon_codes: frozenset[str] = frozenset()
    coupon_promotions: frozenset[str] = frozenset()
    usage: Mapping[str, Usage] = field(default_factory=dict)
    redeem_points: int = 0
    referral: ReferralClaim | None = None
    variants: Mapping[str, str] = field(default_factory=dict)

    def usage_of(self, promotion_id: str) -> Usage:
        return self.usage.get(promotion_id, NO_USAGE)


@dataclass(frozen=True, slots=True)
class Targeting:
    """Who, where and what a promotion is for; an empty set means "any".

    ``skus``/``categories`` choose the lines it applies to (both empty: the whole basket).
    ``weekdays`` count Monday as 0; ``hours`` is ``(start, end)``, end excluded, and may wrap
    past midnight (``(22, 2)``).
    """

    payment_methods: frozenset[str] = frozenset()
    stores: frozenset[str] = frozenset()
    tills: frozenset[str] = frozenset()
    weekdays: frozenset[int] = frozenset()
    hours: tuple[int, int] | None = None
    segments: frozenset[str] = frozenset()
    currency: str | None = None
    skus: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()

    @property
    def whole_basket(self) -> bool:
        return not self.skus and not self.categories

    def covers(self, line: BasketLine) -> bool:
        """Whether this promotion applies to ``line``."""
        return self.whole_basket or line.sku in self.skus or line.category in self.categories


@dataclass(frozen=True, slots=True)
class Limits:
    """Usage limits; ``None`` means unlimited.

    ``per_sale`` caps how often a repeating reward applies in one sale (for-every steps,
    multi-buy or fixed-price sets). ``budget_minor`` is the money the promotion may give in
    all; the discount is reduced to what is left of it.
    """

    per_customer_per_day: int | None = None
    per_customer_lifetime: int | None = None
    per_sale: int | None = None
    global_count: int | None = None
    budget_minor: int | None = None

    @property
    def per_customer(self) -> bool:
        return self.per_customer_per_day is not None or self.per_customer_lifetime is not None


@dataclass(frozen=True, kw_only=True)
class Promotion:
    """What every kind shares: identity, combination rules, targeting, limits, coupon code.

    Higher ``priority`` is considered first (ties by ``id``). ``group`` names a stackable
    group of which at most one promotion applies; ``exclusive`` is explained in ``engine``.
    """

    kind: ClassVar[str] = "promotion"
    is_discount: ClassVar[bool] = True
    stage: ClassVar[int] = 0

    id: str
    name: str = ""
    priority: int = 0
    exclusive: bool = False
    group: str | None = None
    code: str | None = None
    targeting: Targeting = Targeting()
    limits: Limits = Limits()
    experiment: str | None = None
    variant: str | None = None


@dataclass(frozen=True, slots=True)
class Tier:
    """Spend at least ``min_spend_minor`` on the targeted lines, save ``save_minor``."""

    min_spend_minor: int
    save_minor: int


@dataclass(frozen=True, kw_only=True)
class ThresholdDiscount(Promotion):
    """Tiers (the highest reached applies) or, with ``every_minor``, "for every X save Y"."""

    kind: ClassVar[str] = "threshold"
    tiers: tuple[Tier, ...] = ()
    every_minor: int = 0
    every_save_minor: int = 0

    def __post_init__(self) -> None:
        if not self.tiers and self.every_minor <= 0:
            raise InvalidInput(f"promotion {self.id!r}: give tiers or a positive every_minor")


@dataclass(frozen=True, kw_only=True)
class PercentOff(Promotion):
    """``percent_bp`` basis points off the targeted lines, at most ``cap_minor``."""

    kind: ClassVar[str] = "percent"
    percent_bp: int
    cap_minor: int | None = None


@dataclass(frozen=True, kw_only=True)
class MultiBuy(Promotion):
    """Buy ``buy`` get ``get`` free among the targeted units; the cheapest units are free."""

    kind: ClassVar[str] = "multi_buy"
    buy: int
    get: int = 1


@dataclass(frozen=True, kw_only=True)
class FixedPrice(Promotion):
    """``quantity`` targeted units for ``price_minor`` (e.g. 3 for 10.00)."""

    kind: ClassVar[str] = "fixed_price"
    quantity: int
    price_minor: int


@dataclass(frozen=True, kw_only=True)
class NewCustomerDiscount(Promotion):
    """Amount and/or percent off on a customer's first purchase."""

    kind: ClassVar[str] = "new_customer"
    amount_off_minor: int = 0
    percent_bp: int = 0
    cap_minor: int | None = None


@dataclass(frozen=True, kw_only=True)
class FeeWaiver(Promotion):
    """The basket's service fee waived on a customer's first order."""

    kind: ClassVar[str] = "fee_waiver"


@dataclass(frozen=True, kw_only=True)
class Coupon(Promotion):
    """Amount and/or percent off when its code is presented.

    A shared coupon has one ``code``; a ``batch`` coupon has many unique single-use codes,
    checked (unused, unexpired, assigned to this customer) by the service, which lists the
    batches whose code was presented in ``SaleContext.coupon_promotions``.
    """

    kind: ClassVar[str] = "coupon"
    amount_off_minor: int = 0
    percent_bp: int = 0
    cap_minor: int | None = None
    batch: bool = False

    def __post_init__(self) -> None:
        if not self.code and not self.batch:
            raise InvalidInput(f"coupon {self.id!r} needs a code or a batch of codes")


@dataclass(frozen=True, kw_only=True)
class LoyaltyPoints(Promotion):
    """``points`` for every ``per_minor`` paid on the targeted lines, after all discounts."""

    kind: ClassVar[str] = "points"
    is_discount: ClassVar[bool] = False
    stage: ClassVar[int] = 2
    points: int
    per_minor: int
    expiry_days: int | None = None

    def __post_init__(self) -> None:
        if self.points < 1 or self.per_minor < 1:
            raise InvalidInput(f"promotion {self.id!r}: points and per_minor must be positive")


@dataclass(frozen=True, kw_only=True)
class ThresholdGift(Promotion):
    """A gift once the customer reaches ``after_purchases`` (this one included) or a spend."""

    kind: ClassVar[str] = "gift"
    is_discount: ClassVar[bool] = False
    stage: ClassVar[int] = 2
    gift: str
    after_purchases: int | None = None
    after_spend_minor: int | None = None
    period_days: int | None = None


@dataclass(frozen=True, kw_only=True)
class PointsRedemption(Promotion):
    """Pay with points: each point is worth ``point_value_minor``, redeemed on request.

    At least ``min_points`` at a time, and at most ``max_share_bp`` of what is left to pay.
    """

    kind: ClassVar[str] = "points_redeem"
    stage: ClassVar[int] = 1
    point_value_minor: int = 1
    min_points: int = 1
    max_share_bp: int = 10_000

    def __post_init__(self) -> None:
        if self.point_value_minor < 1 or not 0 < self.max_share_bp <= 10_000:
            raise InvalidInput(f"promotion {self.id!r}: a positive point value is expected")


@dataclass(frozen=True, kw_only=True)
class Referral(Promotion):
    """The referee's first purchase is discounted; the referrer earns ``referrer_points``
    once that purchase is paid. Abuse limits: referrals per referrer in all and per day,
    and the referrer must have bought something (no self-referral, ever)."""

    kind: ClassVar[str] = "referral"
    amount_off_minor: int = 0
    percent_bp: int = 0
    cap_minor: int | None = None
    referrer_points: int = 0
    max_referrals: int | None = None
    max_referrals_per_day: int | None = None


@dataclass(frozen=True, kw_only=True)
class LuckyDraw(Promotion):
    """A paid sale of at least ``min_spend_minor`` enters a draw for a prize of ``table``."""

    kind: ClassVar[str] = "draw"
    is_discount: ClassVar[bool] = False
    stage: ClassVar[int] = 2
    table: DrawTable
    min_spend_minor: int = 0
