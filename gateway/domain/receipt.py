"""What a customer's e-receipt says, worked out from plain values: VAT per rate, masked payment
details and a reference a person can read out.

Prices include VAT (as in European retail), so each rate's VAT is taken out of the gross it
applies to: ``vat = gross × rate / (1 + rate)``, rounded half up in minor units once per rate
(as a till's receipt prints it), and net = gross − vat, so the lines always add up.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

BASIS_POINTS = 10_000


@dataclass(frozen=True, slots=True)
class VatLine:
    """One VAT rate's share of the receipt: ``gross`` (what was paid at this rate) is
    ``net`` + ``vat``; ``rate_bp`` in basis points (1900 = 19 %)."""

    rate_bp: int
    gross_minor: int
    net_minor: int
    vat_minor: int

    @property
    def rate_text(self) -> str:
        whole, rest = divmod(self.rate_bp, 100)
        return f"{whole} %" if not rest else f"{whole}.{rest:02d}".rstrip("0") + " %"


def vat_lines(
    paid_by_category: Iterable[tuple[str, int]], rates: Mapping[str, int] | None
) -> list[VatLine]:
    """VAT per rate for lines given as (category, amount paid in minor units). A category
    without a rate of its own takes ``rates["default"]``; with no rates at all (or no default
    and no match) the receipt has no VAT lines for those amounts."""
    if not rates:
        return []
    gross: dict[int, int] = {}
    for category, amount in paid_by_category:
        rate = rates.get(category, rates.get("default"))
        if rate is None:
            continue
        gross[int(rate)] = gross.get(int(rate), 0) + amount
    out = []
    for rate, total in sorted(gross.items()):
        vat = (2 * total * rate + BASIS_POINTS + rate) // (2 * (BASIS_POINTS + rate))
        out.append(VatLine(rate, total, total - vat, vat))
    return out


def parse_rates(pairs: Iterable[str]) -> dict[str, int]:
    """``["default=19", "food=7", "books=5.5"]`` as basis points by category; a rate is a
    percentage from 0 to 100 with at most two decimals."""
    rates: dict[str, int] = {}
    for pair in pairs:
        category, sep, text = pair.partition("=")
        category = category.strip()
        if not sep or not category:
            raise ValueError(f"{pair!r}: expected CATEGORY=PERCENT, like default=19 or food=7")
        whole, _, frac = text.strip().partition(".")
        if not whole.isdigit() or (frac and (not frac.isdigit() or len(frac) > 2)):
            raise ValueError(f"{pair!r}: the rate is a percentage like 19 or 5.5")
        bp = int(whole) * 100 + int((frac + "00")[:2])
        if bp > BASIS_POINTS:
            raise ValueError(f"{pair!r}: a rate is at most 100 %")
        rates[category] = bp
    return rates


def masked_tail(value: str | None, keep: int = 4) -> str | None:
    """A card number or wallet id as a receipt shows it: only its last ``keep`` characters."""
    if not value:
        return None
    tail = "".join(ch for ch in value if ch.isalnum())[-keep:]
    return "•••• " + tail


def short_reference(reference: str) -> str:
    """A payment's 25-character reference as a person reads it out: its last eight
    characters in two groups of four (``3F2A-91BC``). Enough to find it among a till's
    payments; the full reference stays what the bank and the portal use."""
    tail = reference[-8:].upper()
    return f"{tail[:4]}-{tail[4:]}" if len(tail) == 8 else tail
