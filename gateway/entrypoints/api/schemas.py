"""Request and response schemas of the terminal API.

The same pydantic models validate requests and generate the OpenAPI document, so the two
cannot drift apart. Amounts are decimal strings: a JSON number is refused, never rounded.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

AMOUNT_PATTERN = r"^(0|[1-9][0-9]{0,14})(\.[0-9]{1,4})?$"


class CreatePayment(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: StrictStr = Field(
        pattern=AMOUNT_PATTERN,
        description='Decimal string in the currency\'s major unit, e.g. "12.34"; never a number.',
        examples=["12.34"],
    )
    currency: StrictStr = Field(
        pattern=r"^[A-Z]{3}$", description="ISO 4217 alphabetic code.", examples=["EUR"]
    )
    method: Literal["qr", "card"] = Field(
        description='"qr": a dynamic EMV QR code for the customer\'s wallet app; "card": the '
        "till's card terminal (the device host drives it)."
    )
    reference: StrictStr | None = Field(
        default=None,
        min_length=1,
        max_length=25,
        pattern=r"^[\x20-\x7e]+$",
        description="The till's own sale or bill number (EMV tag 62-01), printable ASCII.",
    )
    expires_in: StrictInt | None = Field(
        default=None,
        description="Seconds the QR stays payable (default from configuration); QR only.",
    )

    @model_validator(mode="before")
    @classmethod
    def _amount_is_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("amount"), int | float):
            raise ValueError('amount must be a decimal string such as "12.34", never a JSON number')
        return data


class CreateRefund(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)

    amount: StrictStr | None = Field(
        default=None,
        pattern=AMOUNT_PATTERN,
        description="Decimal string to refund; leave out to refund everything still refundable.",
        examples=["5.00"],
    )
    reason: StrictStr | None = Field(default=None, max_length=255)

    @model_validator(mode="before")
    @classmethod
    def _amount_is_text(cls, data: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("amount"), int | float):
            raise ValueError('amount must be a decimal string such as "5.00", never a JSON number')
        return data


class RefundOut(BaseModel):
    id: str
    payment_id: str
    status: Literal["requested", "submitted", "succeeded", "failed", "unknown"]
    amount: str
    amount_minor: int
    currency: str
    reason: str | None
    failure: str | None
    created_at: datetime
    updated_at: datetime


class PaymentEventOut(BaseModel):
    kind: str
    from_status: str | None
    to_status: str | None
    actor: str
    at: datetime
    detail: dict[str, Any]


class PaymentOut(BaseModel):
    id: str
    status: Literal[
        "created",
        "pending",
        "authorised",
        "paid",
        "settled",
        "failed",
        "expired",
        "cancelled",
        "partially_refunded",
        "refunded",
        "unknown",
    ]
    method: str
    amount: str = Field(description='Decimal string, e.g. "12.34".')
    amount_minor: int = Field(description="Integer minor units, e.g. 1234.")
    currency: str
    reference: str = Field(description="Identifies the payment to the bank (EMV tag 62-05).")
    bill_number: str | None
    till: str
    qr_payload: str | None
    qr_png_url: str | None
    qr_svg_url: str | None
    display_text: str | None = Field(
        default=None, description="Card: what the terminal shows the customer right now."
    )
    card: dict[str, Any] | None = Field(
        default=None,
        description="Card: what the terminal reported (masked PAN only, receipt and trace "
        "numbers, terminal id, result code and message).",
    )
    receipt_text: str | None = None
    expires_at: datetime | None
    paid_at: datetime | None
    refunded_amount: str = Field(description="What the bank has refunded so far.")
    sale_id: str | None = Field(
        default=None, description="The sale (with its promotions) this payment pays for, if any."
    )
    attention: str | None = Field(
        default=None, description="Why a person must look at this payment, if anything."
    )
    created_at: datetime
    updated_at: datetime
    events: list[PaymentEventOut] | None = None


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
    errors: list[dict[str, Any]] | None = None
    current_status: str | None = None


class CreateApproval(BaseModel):
    """A supervisor's approval for one action, payment and amount (a single-use token)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    approver: StrictStr = Field(min_length=1, max_length=64, description="Supervisor's username.")
    code: StrictStr = Field(min_length=1, max_length=64, description="Their approval PIN.")
    action: Literal["refund", "cancel", "payment", "override"]
    payment_id: StrictStr | None = Field(
        default=None, max_length=36, description="The payment to refund or cancel."
    )
    amount: StrictStr | None = Field(
        default=None,
        pattern=AMOUNT_PATTERN,
        description="Decimal string; for a cancel, the payment's amount if left out.",
    )
    currency: StrictStr | None = Field(
        default=None, pattern=r"^[A-Z]{3}$", description="Needed without a payment_id."
    )
