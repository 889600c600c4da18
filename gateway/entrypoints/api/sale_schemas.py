"""Request and response schemas of `/api/v1/sales`: a basket priced with promotions."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, model_validator

from gateway.entrypoints.api.schemas import AMOUNT_PATTERN


def _no_numbers(data: Any, *fields: str) -> Any:
    if isinstance(data, dict):
        for name in fields:
            if isinstance(data.get(name), int | float) and not isinstance(data.get(name), bool):
                raise ValueError(f'{name} must be a decimal string such as "2.50", never a number')
    return data


class SaleLineIn(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    sku: StrictStr = Field(min_length=1, max_length=64)
    name: StrictStr = Field(min_length=1, max_length=120)
    category: StrictStr = Field(default="", max_length=64)
    quantity: StrictInt = Field(ge=1, le=100_000)
    unit_price: StrictStr = Field(pattern=AMOUNT_PATTERN, examples=["2.50"])

    @model_validator(mode="before")
    @classmethod
    def _price_is_text(cls, data: Any) -> Any:
        return _no_numbers(data, "unit_price")


class CustomerIn(BaseModel):
    """Who is paying; any of these (all optional). Kept only as keyed hashes."""

    model_config = ConfigDict(extra="forbid", strict=True)

    wallet_id: StrictStr | None = Field(default=None, max_length=128)
    member_code: StrictStr | None = Field(default=None, max_length=128)
    nfc_token: StrictStr | None = Field(
        default=None, max_length=128, description="A tag token from the till's NFC reader."
    )
    use_last_tap: StrictBool = Field(
        default=False, description="Identify by the card or phone just tapped on this till."
    )
    phone: StrictStr | None = Field(default=None, max_length=32)
    marketing_consent: StrictBool | None = Field(
        default=None,
        description="The customer's answer at the till to marketing (recorded when the sale "
        "is paid). Loyalty points, referrals and targeted or tested offers need it.",
    )


class CreateSale(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    currency: StrictStr = Field(pattern=r"^[A-Z]{3}$", examples=["EUR"])
    lines: list[SaleLineIn] = Field(min_length=1, max_length=500)
    fee: StrictStr | None = Field(
        default=None, pattern=AMOUNT_PATTERN, description="A service fee, priced as a line."
    )
    customer: CustomerIn | None = None
    coupon_codes: list[StrictStr] = Field(default_factory=list, max_length=10)
    referral_code: StrictStr | None = Field(default=None, max_length=32)
    redeem_points: StrictInt = Field(default=0, ge=0, le=100_000_000)
    payment_method: Literal["qr", "card"] | None = Field(
        default=None, description="Price for this payment method (promotions may target one)."
    )

    @model_validator(mode="before")
    @classmethod
    def _fee_is_text(cls, data: Any) -> Any:
        return _no_numbers(data, "fee")


class PaySale(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    method: Literal["qr", "card"]
    expires_in: StrictInt | None = Field(default=None, description="QR only: seconds payable.")


class SaleLineOut(BaseModel):
    sku: str
    name: str
    category: str
    quantity: int
    amount: str = Field(description="Before promotions (decimal string).")
    discount: str
    total: str = Field(description="What is paid for this line.")
    amount_minor: int
    discount_minor: int
    total_minor: int


class AppliedOut(BaseModel):
    promotion: str
    name: str
    kind: str
    discount: str
    discount_minor: int
    per_line_minor: list[int] = Field(description="The discount on each line, in line order.")
    points: int = 0
    points_redeemed: int = 0
    gift: str | None = None
    note: str | None = None


class RejectedOut(BaseModel):
    promotion: str = Field(description='The promotion\'s key; "" for a group or a coupon code.')
    name: str
    reason: str
    count: int = Field(
        default=1,
        description="Promotions ruled out wholesale (another store, no item of theirs in the "
        "basket) are counted under one reason.",
    )


class SaleOut(BaseModel):
    id: str
    status: Literal["priced", "reserved", "paid", "cancelled", "expired", "failed", "reversed"]
    currency: str
    lines: list[SaleLineOut]
    applied: list[AppliedOut]
    rejected: list[RejectedOut]
    total_before: str
    discount: str
    total: str = Field(description="What the customer pays.")
    total_minor: int
    savings_text: str = Field(description='For the cashier, e.g. "You save 3.50 EUR".')
    points_earned: int
    points_redeemed: int
    gifts: list[str]
    draws: list[dict[str, Any]] = Field(default_factory=list)
    customer: str | None = Field(description="The customer's opaque token, if identified.")
    referral_code: str | None = None
    payment: dict[str, Any] | None = None
    created_at: datetime
