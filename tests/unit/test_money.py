"""Money: exact parsing and formatting, ISO 4217 exponents, largest-remainder allocation."""

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.money import Money, allocate_minor, currency
from gateway.errors import InvalidMoney


@pytest.mark.parametrize(
    ("text", "code", "minor"),
    [
        ("12.34", "EUR", 1234),
        ("12.3", "EUR", 1230),
        ("12", "EUR", 1200),
        ("0.01", "EUR", 1),
        ("1234", "JPY", 1234),  # ISO 4217: JPY has no minor unit
        ("1.234", "KWD", 1234),  # ISO 4217: KWD has 3
        ("1.2345", "CLF", 12345),  # ISO 4217: CLF has 4
        ("-5.00", "USD", -500),
    ],
)
def test_parse_is_exact(text: str, code: str, minor: int) -> None:
    assert Money.parse(text, code) == Money(minor, code)


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("12.345", "EUR", "EUR has 2 decimal places"),
        ("12.5", "JPY", "JPY has no minor unit"),
        ("1,50", "EUR", "not a decimal number"),
        ("01.50", "EUR", "not a decimal number"),
        ("1e3", "EUR", "not a decimal number"),
        ("", "EUR", "not a decimal number"),
        ("12.34", "EURO", "unknown currency"),
        ("12.34", "XAU", "no minor unit in ISO 4217"),
    ],
)
def test_parse_rejects_with_reason(text: str, code: str, message: str) -> None:
    with pytest.raises(InvalidMoney, match=message):
        Money.parse(text, code)


def test_floats_are_rejected_everywhere() -> None:
    with pytest.raises(InvalidMoney, match="never a float"):
        Money.parse(12.34, "EUR")
    with pytest.raises(InvalidMoney, match="must be an integer"):
        Money(12.0, "EUR")  # type: ignore[arg-type]
    with pytest.raises(InvalidMoney, match="must be an integer"):
        Money(True, "EUR")  # type: ignore[arg-type]


def test_decimal_input_and_output() -> None:
    assert Money.parse(Decimal("9.90"), "EUR").minor == 990
    assert Money(5, "KWD").to_decimal_string() == "0.005"
    assert Money(-5, "EUR").to_decimal_string() == "-0.05"
    assert Money(1234, "JPY").to_decimal_string() == "1234"


def test_currency_lookup_by_numeric_code() -> None:
    assert currency("978").code == "EUR"
    assert currency("EUR").numeric == "978"
    assert currency("jpy").exponent == 0


def test_format_uses_iso_decimals_and_locale() -> None:
    assert Money(123450, "EUR").format("de_DE") == "1.234,50\xa0€"
    assert Money(1234, "JPY").format("ja_JP") == "￥1,234"
    assert Money(1234, "KWD").format("en") == "KWD1.234"


def test_arithmetic_refuses_mixed_currencies() -> None:
    assert Money(100, "EUR") + Money(1, "EUR") == Money(101, "EUR")
    with pytest.raises(InvalidMoney, match="cannot combine EUR with USD"):
        _ = Money(100, "EUR") + Money(1, "USD")


def test_allocation_largest_remainder() -> None:
    assert allocate_minor(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_minor(5, [3, 7]) == [2, 3]  # shares 1.5 and 3.5: equal remainders, tie to first
    assert allocate_minor(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_minor(7, [0, 5, 0]) == [0, 7, 0]
    with pytest.raises(InvalidMoney):
        allocate_minor(10, [])
    with pytest.raises(InvalidMoney):
        allocate_minor(10, [0, 0])


@given(
    total=st.integers(min_value=-(10**12), max_value=10**12),
    weights=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=30).filter(
        lambda w: sum(w) > 0
    ),
)
def test_allocation_sums_exactly_and_is_fair(total: int, weights: list[int]) -> None:
    parts = allocate_minor(total, weights)
    assert sum(parts) == total
    for part, weight in zip(parts, weights, strict=True):
        exact = Decimal(total) * weight / sum(weights)
        assert abs(Decimal(part) - exact) < 1  # never more than one minor unit off its share
        if weight == 0:
            assert part == 0


@given(
    minor=st.integers(min_value=-(10**15), max_value=10**15),
    code=st.sampled_from(["EUR", "JPY", "KWD", "CLF", "USD", "BHD", "ISK"]),
)
def test_decimal_string_round_trip(minor: int, code: str) -> None:
    money = Money(minor, code)
    assert Money.parse(money.to_decimal_string(), code) == money
