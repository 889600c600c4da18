"""Promotions: the pure pricing engine for in-store wallet promotions (no I/O).

``price(basket, promotions, context)`` returns a ``PricedSale``; see ``engine`` for the
combination rule, ``model`` for the kinds, ``rejection`` for the reasons given.
"""

from gateway.domain.promotions.catalog import Catalog
from gateway.domain.promotions.engine import price
from gateway.domain.promotions.model import (
    Basket,
    BasketLine,
    Coupon,
    Customer,
    FeeWaiver,
    FixedPrice,
    Limits,
    LoyaltyPoints,
    LuckyDraw,
    MultiBuy,
    NewCustomerDiscount,
    PercentOff,
    PointsRedemption,
    Promotion,
    Referral,
    ReferralClaim,
    SaleContext,
    Targeting,
    ThresholdDiscount,
    ThresholdGift,
    Tier,
    Usage,
)
from gateway.domain.promotions.rejection import Reason, Rejection
from gateway.domain.promotions.sale import AppliedPromotion, PricedLine, PricedSale, RefundShare

__all__ = [
    "AppliedPromotion",
    "Basket",
    "BasketLine",
    "Catalog",
    "Coupon",
    "Customer",
    "FeeWaiver",
    "FixedPrice",
    "Limits",
    "LoyaltyPoints",
    "LuckyDraw",
    "MultiBuy",
    "NewCustomerDiscount",
    "PercentOff",
    "PointsRedemption",
    "PricedLine",
    "PricedSale",
    "Promotion",
    "Reason",
    "Referral",
    "ReferralClaim",
    "RefundShare",
    "Rejection",
    "SaleContext",
    "Targeting",
    "ThresholdDiscount",
    "ThresholdGift",
    "Tier",
    "Usage",
    "price",
]
