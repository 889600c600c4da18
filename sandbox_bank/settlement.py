"""Settlement arithmetic and the acquirer CSV: what the bank pays a merchant for a day.

Pure values in, values out. A payment is credited less the merchant's fee (a percentage in
basis points, rounded half-up to the minor unit, plus a fixed amount); a refund is debited in
full (the fee of the refunded payment is not returned, as with most acquirers).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Literal

from gateway.domain.money import Money

CSV_COLUMNS = (
    "date",
    "merchant_id",
    "reference",
    "bank_payment_id",
    "type",
    "gross",
    "fee",
    "net",
    "currency",
    "bank_refund_id",
)


def fee_minor(amount_minor: int, percent_bp: int, fixed_minor: int) -> int:
    """The fee on one payment: ``amount × bp / 10 000`` rounded half-up, plus ``fixed``."""
    if amount_minor < 0 or percent_bp < 0 or fixed_minor < 0:
        raise ValueError("fees are computed on non-negative amounts and rates")
    return (amount_minor * percent_bp + 5_000) // 10_000 + fixed_minor


@dataclass(frozen=True, slots=True)
class SettlementLine:
    """One payment (credit) or refund (debit) in a settlement batch."""

    kind: Literal["payment", "refund"]
    reference: str  # EMV 62-05, the payment's end-to-end reference
    bank_payment_id: str
    bank_refund_id: str | None
    refund_id: str | None  # the gateway's id for a refund
    booked_on: date  # UTC date the money moved (paid_at or the refund's processed_at)
    amount_minor: int  # always positive; ``kind`` gives the direction
    fee_minor: int
    currency: str
    remittance: str  # free text for the statement line (bill number, terminal)

    @property
    def signed_gross_minor(self) -> int:
        return self.amount_minor if self.kind == "payment" else -self.amount_minor

    @property
    def net_minor(self) -> int:
        return self.signed_gross_minor - self.fee_minor

    @property
    def transaction_id(self) -> str:
        return self.bank_refund_id or self.bank_payment_id


@dataclass(frozen=True, slots=True)
class SettlementBatch:
    """Everything a settlement file says: who, which account, which day, which lines."""

    settlement_id: str
    merchant_id: str
    merchant_name: str
    iban: str
    settlement_date: date
    currency: str
    created_at: datetime
    opening_balance_minor: int
    lines: tuple[SettlementLine, ...]

    @property
    def payments(self) -> Sequence[SettlementLine]:
        return [line for line in self.lines if line.kind == "payment"]

    @property
    def refunds(self) -> Sequence[SettlementLine]:
        return [line for line in self.lines if line.kind == "refund"]

    @property
    def gross_minor(self) -> int:
        return sum(line.amount_minor for line in self.payments)

    @property
    def fees_minor(self) -> int:
        return sum(line.fee_minor for line in self.lines)

    @property
    def refunds_minor(self) -> int:
        return sum(line.amount_minor for line in self.refunds)

    @property
    def net_minor(self) -> int:
        return sum(line.net_minor for line in self.lines)

    @property
    def closing_balance_minor(self) -> int:
        return self.opening_balance_minor + self.net_minor

    def amount(self, minor: int) -> str:
        """``minor`` as a decimal string in this batch's currency ("12.34", JPY "1234")."""
        return Money(minor, self.currency).to_decimal_string()


def to_csv(batch: SettlementBatch) -> str:
    """The acquirer CSV: one row per payment or refund; refunds have negative amounts."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for line in batch.lines:
        writer.writerow(
            (
                line.booked_on.isoformat(),
                batch.merchant_id,
                line.reference,
                line.bank_payment_id,
                line.kind,
                batch.amount(line.signed_gross_minor),
                batch.amount(line.fee_minor),
                batch.amount(line.net_minor),
                batch.currency,
                line.bank_refund_id or "",
            )
        )
    return out.getvalue()
