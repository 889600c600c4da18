"""Money: integer minor units plus an ISO 4217 currency.

Exponents and numeric codes come from the ISO 4217 maintenance agency's published table (the
``iso4217`` package), so JPY has 0 decimals, KWD 3 and CLF 4. Floats are refused everywhere:
amounts enter as decimal strings ("12.34"), ints of minor units, or ``Decimal``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache, lru_cache

import iso4217

from gateway.errors import InvalidMoney

_AMOUNT = re.compile(r"^(?P<int>0|[1-9][0-9]*)(?:\.(?P<frac>[0-9]+))?$")
_MAX_MINOR = 10**15  # a quadrillion minor units: far above any till sale, far below int64


@dataclass(frozen=True, slots=True)
class Currency:
    code: str
    number: int
    exponent: int
    name: str

    @property
    def numeric(self) -> str:
        """The three-digit numeric code, e.g. "978" for EUR (what EMV tag 53 carries)."""
        return f"{self.number:03d}"


@cache
def currency(code: str) -> Currency:
    """Look up an ISO 4217 currency by alphabetic ("EUR") or numeric ("978") code."""
    if not isinstance(code, str):
        raise InvalidMoney(f"currency must be a string such as 'EUR', not {type(code).__name__}")
    key = code.strip().upper()
    if key.isdigit():
        for cur in _by_number().values():
            if cur.numeric == key.zfill(3):
                return cur
        raise InvalidMoney(f"unknown ISO 4217 numeric currency code {code!r}")
    try:
        entry = iso4217.Currency(key)
    except (ValueError, KeyError):
        raise InvalidMoney(
            f"unknown currency {code!r}: expected an ISO 4217 code such as 'EUR'"
        ) from None
    if entry.exponent is None or entry.number is None:
        raise InvalidMoney(f"{key} has no minor unit in ISO 4217 and cannot be used for payments")
    return Currency(key, int(entry.number), int(entry.exponent), entry.currency_name)


@lru_cache(maxsize=1)
def _by_number() -> dict[int, Currency]:
    out: dict[int, Currency] = {}
    for entry in iso4217.Currency:
        if entry.exponent is not None and entry.number is not None:
            out[int(entry.number)] = Currency(
                entry.code, int(entry.number), int(entry.exponent), entry.currency_name
            )
    return out


@dataclass(frozen=True, slots=True)
class Money:
    """An exact amount: ``minor`` units of ``currency`` (e.g. 1234 EUR = 12.34 EUR)."""

    minor: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor, bool) or not isinstance(self.minor, int):
            raise InvalidMoney(
                f"amount in minor units must be an integer, not {type(self.minor).__name__}"
            )
        if abs(self.minor) > _MAX_MINOR:
            raise InvalidMoney("amount is out of range")
        object.__setattr__(self, "currency", currency(self.currency).code)

    @classmethod
    def parse(cls, amount: object, currency_code: str) -> Money:
        """Parse a decimal string such as "12.34" exactly ("12.345" EUR is an error, not 12.35)."""
        if isinstance(amount, float):
            raise InvalidMoney("amount must be a decimal string such as '12.34', never a float")
        if isinstance(amount, Decimal):
            amount = format(amount, "f")
        if not isinstance(amount, str):
            raise InvalidMoney(
                f"amount must be a decimal string such as '12.34', not {type(amount).__name__}"
            )
        cur = currency(currency_code)
        text = amount.strip()
        negative = text.startswith("-")
        if negative:
            text = text[1:]
        m = _AMOUNT.match(text)
        if not m:
            raise InvalidMoney(f"amount {amount!r} is not a decimal number such as '12.34'")
        frac = m.group("frac") or ""
        if len(frac) > cur.exponent:
            if cur.exponent == 0:
                raise InvalidMoney(f"{cur.code} has no minor unit: {amount!r} must be whole")
            raise InvalidMoney(
                f"{cur.code} has {cur.exponent} decimal places: {amount!r} has {len(frac)}"
            )
        minor = int(m.group("int")) * 10**cur.exponent + int(frac.ljust(cur.exponent, "0") or 0)
        return cls(-minor if negative else minor, cur.code)

    @classmethod
    def zero(cls, currency_code: str) -> Money:
        return cls(0, currency_code)

    @property
    def exponent(self) -> int:
        return currency(self.currency).exponent

    def to_decimal_string(self) -> str:
        """The plain decimal form, "12.34" (JPY: "1234", KWD: "1.234"); no thousands separator."""
        exp = self.exponent
        sign = "-" if self.minor < 0 else ""
        units, frac = divmod(abs(self.minor), 10**exp) if exp else (abs(self.minor), 0)
        return f"{sign}{units}.{frac:0{exp}d}" if exp else f"{sign}{units}"

    def to_decimal(self) -> Decimal:
        return Decimal(self.to_decimal_string())

    def format(self, locale: str = "en") -> str:
        """A person's form with symbol and grouping, e.g. "€1,234.50" (CLDR patterns via Babel).

        The number of decimals is ISO 4217's, not CLDR's cash rounding.
        """
        from babel import Locale
        from babel.numbers import parse_pattern

        loc = Locale.parse(locale)
        pattern = parse_pattern(loc.currency_formats["standard"])
        pattern.frac_prec = (self.exponent, self.exponent)
        return pattern.apply(self.to_decimal(), loc, currency=self.currency, currency_digits=False)

    def _check(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise InvalidMoney(f"cannot combine {self.currency} with {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor + other.minor, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._check(other)
        return Money(self.minor - other.minor, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._check(other)
        return self.minor < other.minor

    def __le__(self, other: Money) -> bool:
        self._check(other)
        return self.minor <= other.minor

    def __bool__(self) -> bool:
        return self.minor != 0

    def __str__(self) -> str:
        return f"{self.to_decimal_string()} {self.currency}"

    def allocate(self, weights: Sequence[int]) -> list[Money]:
        """Split over parts in proportion to integer weights, by largest remainder.

        The parts always sum to exactly this amount; ties go to the earlier part.
        """
        return [Money(m, self.currency) for m in allocate_minor(self.minor, weights)]


def allocate_minor(total: int, weights: Sequence[int]) -> list[int]:
    """Largest-remainder (Hamilton) apportionment of ``total`` minor units over ``weights``."""
    if not weights:
        raise InvalidMoney("cannot allocate over zero parts")
    if any(isinstance(w, bool) or not isinstance(w, int) or w < 0 for w in weights):
        raise InvalidMoney("allocation weights must be non-negative integers")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise InvalidMoney("allocation weights must not all be zero")
    sign = -1 if total < 0 else 1
    magnitude = abs(total)
    shares = [magnitude * w // weight_sum for w in weights]
    remainders = [magnitude * w % weight_sum for w in weights]
    left = magnitude - sum(shares)
    order = sorted(range(len(weights)), key=lambda i: (-remainders[i], i))
    for i in order[:left]:
        shares[i] += 1
    return [sign * s for s in shares]
