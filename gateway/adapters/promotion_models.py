"""SQLAlchemy mappings for promotions: the promotions and experiments managers run, customers
and their identities, sales and what each promotion gave on them, coupons, points, referrals
and lucky-draw entries.

Money a promotion may still give is kept exact under concurrency by conditional UPDATEs on
``promotions.used_count`` / ``used_money_minor`` (reserved and committed uses together) and by
locking the customer's row while a sale is reserved; see
``gateway.services.promotions.redemptions``.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from gateway.adapters.models import Base, utcnow


class Experiment(Base):
    """An A/B test: variants with weights, a holdout share, and the variant that is control."""

    __tablename__ = "experiments"
    __table_args__ = (UniqueConstraint("merchant_id", "key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    variants: Mapped[list[Any]] = mapped_column(JSON)  # [{"name": "A", "weight": 1}, …]
    holdout_bp: Mapped[int] = mapped_column(Integer, default=0)
    control: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PromotionRow(Base):
    """A promotion a manager runs. ``spec`` is its JSON (``domain.promotions.spec``); the state
    is ``draft``, ``active``, ``paused`` or ``ended``; it is live while active and between its
    dates. ``used_*`` count reserved and committed uses: what its limits are checked against."""

    __tablename__ = "promotions"
    __table_args__ = (
        UniqueConstraint("merchant_id", "key"),
        Index("ix_promotions_merchant_state", "merchant_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    key: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(120))
    kind: Mapped[str] = mapped_column(String(24))
    spec: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="draft")
    starts_at: Mapped[datetime | None] = mapped_column()
    ends_at: Mapped[datetime | None] = mapped_column()
    currency: Mapped[str | None] = mapped_column(String(3))
    budget_minor: Mapped[int | None] = mapped_column(BigInteger)
    count_limit: Mapped[int | None] = mapped_column(Integer)
    used_count: Mapped[int] = mapped_column(Integer, default=0)
    used_money_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    experiment_id: Mapped[int | None] = mapped_column(ForeignKey("experiments.id"))
    variant: Mapped[str | None] = mapped_column(String(32))
    # Lucky draws: the secret seed every roll of this promotion comes from (see domain draw).
    draw_seed: Mapped[str | None] = mapped_column(String(32))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PromotionChange(Base):
    """Who created, scheduled, paused, resumed or ended a promotion, and when."""

    __tablename__ = "promotion_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"), index=True)
    action: Mapped[str] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Customer(Base):
    """A wallet customer of one merchant, known only by keyed hashes of their identities.

    ``token`` is the opaque id shown to staff; the counters cover paid sales in
    ``spend_currency`` (the merchant's currency)."""

    __tablename__ = "customers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    token: Mapped[str] = mapped_column(String(32), unique=True)
    referral_code: Mapped[str] = mapped_column(String(16), unique=True)
    purchases: Mapped[int] = mapped_column(Integer, default=0)
    spend_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    spend_currency: Mapped[str] = mapped_column(String(3))
    first_purchase_at: Mapped[datetime | None] = mapped_column()
    last_purchase_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Marketing consent: None not asked yet, else the customer's answer, when and where
    # ("till", "receipt"). Promotions that need a profile apply only with True.
    marketing_consent: Mapped[bool | None] = mapped_column(Boolean)
    consent_at: Mapped[datetime | None] = mapped_column()
    consent_source: Mapped[str | None] = mapped_column(String(16))
    # Set when the customer was forgotten (or anonymised for inactivity): the row stays as a
    # tombstone so the money records that pointed at it stay whole.
    forgotten_at: Mapped[datetime | None] = mapped_column()


class CustomerIdentity(Base):
    """One way a customer is recognised: a wallet id, a member code, an NFC tag token or a
    phone number, stored as an HMAC-SHA256 digest under the merchant's secret, never in clear."""

    __tablename__ = "customer_identities"
    __table_args__ = (UniqueConstraint("merchant_id", "kind", "digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    kind: Mapped[str] = mapped_column(String(16))
    digest: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Sale(Base):
    """A priced basket. ``priced`` until paid for; ``reserved`` while its payment is open
    (budgets, coupons and points held); then ``paid``, ``cancelled`` or ``expired``."""

    __tablename__ = "sales"
    __table_args__ = (
        Index("ix_sales_merchant_created", "merchant_id", "created_at"),
        Index("ix_sales_customer_status", "customer_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    till_id: Mapped[int] = mapped_column(ForeignKey("tills.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))
    payment_method: Mapped[str | None] = mapped_column(String(16))
    payment_id: Mapped[str | None] = mapped_column(ForeignKey("payments.id"), index=True)
    lines: Mapped[list[Any]] = mapped_column(JSON)
    fee_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    total_before_minor: Mapped[int] = mapped_column(BigInteger)
    total_after_minor: Mapped[int] = mapped_column(BigInteger)
    points_earned: Mapped[int] = mapped_column(Integer, default=0)
    points_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    gifts: Mapped[list[Any]] = mapped_column(JSON, default=list)
    applied: Mapped[list[Any]] = mapped_column(JSON, default=list)
    rejected: Mapped[list[Any]] = mapped_column(JSON, default=list)
    request: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SalePromotion(Base):
    """What one promotion gave on one sale, and how much of it a refund has taken back.

    ``state``: ``reserved`` (payment open), ``committed`` (paid), ``released`` (never paid)."""

    __tablename__ = "sale_promotions"
    __table_args__ = (
        UniqueConstraint("sale_id", "promotion_id"),
        Index("ix_sale_promotions_customer", "promotion_id", "customer_id", "local_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sale_id: Mapped[str] = mapped_column(ForeignKey("sales.id"))
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    local_day: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(24))
    state: Mapped[str] = mapped_column(String(16))
    discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    budget_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    points: Mapped[int] = mapped_column(Integer, default=0)
    points_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    referrer_points: Mapped[int] = mapped_column(Integer, default=0)
    returned_discount_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    returned_budget_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    returned_points: Mapped[int] = mapped_column(Integer, default=0)
    returned_points_redeemed: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CouponCode(Base):
    """One unique single-use code of a batch coupon; optionally assigned to one customer."""

    __tablename__ = "coupon_codes"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    expires_at: Mapped[datetime | None] = mapped_column()
    status: Mapped[str] = mapped_column(String(16), default="available")
    sale_id: Mapped[str | None] = mapped_column(ForeignKey("sales.id"))
    redeemed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PointsLot(Base):
    """Points a customer earned together; spent oldest-expiry first; gone after ``expires_at``."""

    __tablename__ = "points_lots"
    __table_args__ = (Index("ix_points_lots_customer", "customer_id", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    sale_id: Mapped[str | None] = mapped_column(ForeignKey("sales.id"), index=True)
    promotion_id: Mapped[int | None] = mapped_column(ForeignKey("promotions.id"))
    source: Mapped[str] = mapped_column(String(16))  # earned | referral
    points: Mapped[int] = mapped_column(Integer)
    remaining: Mapped[int] = mapped_column(Integer)
    earned_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()


class PointsMovement(Base):
    """Points taken from (negative) or given back to (positive) lots, with the lots touched."""

    __tablename__ = "points_movements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), index=True)
    sale_id: Mapped[str | None] = mapped_column(ForeignKey("sales.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # redeem | release | refund | take_back
    points: Mapped[int] = mapped_column(Integer)
    lots: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[lot_id, points], …]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferralRow(Base):
    """A referee's first purchase credited to a referrer; a referee is referred only once."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_referrer", "referrer_id", "state"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"))
    referrer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    referee_id: Mapped[int] = mapped_column(ForeignKey("customers.id"), unique=True)
    sale_id: Mapped[str] = mapped_column(ForeignKey("sales.id"))
    referrer_points: Mapped[int] = mapped_column(Integer, default=0)
    state: Mapped[str] = mapped_column(String(16))
    local_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DrawEntry(Base):
    """A lucky draw: the recorded seed and key the roll came from, so it can be replayed."""

    __tablename__ = "draw_entries"
    __table_args__ = (
        UniqueConstraint("promotion_id", "sale_id"),
        Index("ix_draw_entries_day", "promotion_id", "local_day", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    promotion_id: Mapped[int] = mapped_column(ForeignKey("promotions.id"))
    sale_id: Mapped[str] = mapped_column(ForeignKey("sales.id"))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"))
    seed: Mapped[str] = mapped_column(String(32))
    draw_key: Mapped[str] = mapped_column(String(64))
    roll: Mapped[int] = mapped_column(Integer)
    prize_id: Mapped[str | None] = mapped_column(String(64))
    prize_name: Mapped[str | None] = mapped_column(String(120))
    value_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    outcome: Mapped[str] = mapped_column(String(16))
    explanation: Mapped[str] = mapped_column(Text)
    stock: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    state: Mapped[str] = mapped_column(String(16))
    local_day: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ExperimentExposure(Base):
    """A sale of a customer assigned to an experiment's variant (or holdout), and whether the
    variant's promotion applied to it: the raw material of the experiment's results."""

    __tablename__ = "experiment_exposures"
    __table_args__ = (
        UniqueConstraint("experiment_id", "sale_id"),
        Index("ix_experiment_exposures_variant", "experiment_id", "variant"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    experiment_id: Mapped[int] = mapped_column(ForeignKey("experiments.id"))
    variant: Mapped[str] = mapped_column(String(32))
    sale_id: Mapped[str] = mapped_column(ForeignKey("sales.id"))
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    eligible: Mapped[bool] = mapped_column(Boolean, default=True)
    redeemed: Mapped[bool] = mapped_column(Boolean, default=False)
    cost_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


__all__ = [
    "CouponCode",
    "Customer",
    "CustomerIdentity",
    "DrawEntry",
    "Experiment",
    "ExperimentExposure",
    "PointsLot",
    "PointsMovement",
    "PromotionChange",
    "PromotionRow",
    "ReferralRow",
    "Sale",
    "SalePromotion",
]
