"""The terminal's end-of-day totals: BMP 04 and BMP 60 of End-of-Day's Status-Information.

After End-of-Day (06 50) the terminal sends Status-Information (04 0F) with the batch's total
(BMP 04) and, per card type, how many payments it booked and their turnover (BMP 60,
"individual totals", PA00P015 13.08 §2.16 and chapter 13), as ecrterm also reads it:

=====================  ===============  =====
field                  format           bytes
=====================  ===============  =====
receipt-no start       BCD              2
receipt-no end         BCD              2
then for each of girocard (EC-card), JCB, Eurocard, Amex, VISA, Diners, remaining cards:
number                 binary           1
turnover               BCD, minor units 6
=====================  ===============  =====
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from drivers.errors import DecodeError
from drivers.zvt.apdu import bcd_int

CARD_TYPES = ("girocard", "JCB", "Eurocard", "American Express", "VISA", "Diners", "other")
_SIZE = 4 + 7 * len(CARD_TYPES)


@dataclass(frozen=True, slots=True)
class CardTypeTotal:
    card_type: str
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class BatchTotals:
    """What the terminal booked in the batch it just closed."""

    total_minor: int | None
    count: int | None = None  # None: the terminal sent no individual totals
    receipt_from: int | None = None
    receipt_to: int | None = None
    by_card_type: tuple[CardTypeTotal, ...] = ()

    @property
    def saturated(self) -> bool:
        """A count is one byte: a card type with 255 payments may have had more."""
        return any(t.count == 0xFF for t in self.by_card_type)


def decode_individual_totals(raw: bytes) -> tuple[int, int, tuple[CardTypeTotal, ...]]:
    """(first receipt, last receipt, per card type) from BMP 60's value."""
    if len(raw) < _SIZE:
        raise DecodeError(f"BMP 60 (individual totals) needs {_SIZE} bytes, found {len(raw)}")
    first = bcd_int(raw[0:2], "receipt-no start")
    last = bcd_int(raw[2:4], "receipt-no end")
    out = []
    for index, name in enumerate(CARD_TYPES):
        at = 4 + index * 7
        amount = bcd_int(raw[at + 1 : at + 7], f"{name} turnover")
        if raw[at] or amount:
            out.append(CardTypeTotal(name, raw[at], amount))
    return first, last, tuple(out)


def encode_individual_totals(first: int, last: int, counts: dict[str, tuple[int, int]]) -> bytes:
    """BMP 60's value for (count, amount) per card type name (the simulator's side)."""
    from drivers.zvt.apdu import bcd_encode

    data = bcd_encode(first, 2) + bcd_encode(last, 2)
    for name in CARD_TYPES:
        count, amount = counts.get(name, (0, 0))
        data += bytes([min(count, 0xFF)]) + bcd_encode(amount, 6)
    return data


def batch_totals(status: dict[str, Any]) -> BatchTotals:
    """The totals in End-of-Day's Status-Information fields (as ``decode_bmps`` gives them)."""
    individual = status.get("individual_totals")
    if not individual:
        return BatchTotals(status.get("amount_minor"))
    first, last, by_type = decode_individual_totals(bytes.fromhex(individual))
    return BatchTotals(
        status.get("amount_minor"),
        count=sum(t.count for t in by_type),
        receipt_from=first,
        receipt_to=last,
        by_card_type=by_type,
    )
