"""The card number scrubber (gateway.domain.card_data): Luhn (ISO/IEC 7812-1 Annex B) and masking.

Test card numbers are the card schemes' published test PANs (e.g. VISA 4111 1111 1111 1111).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.card_data import luhn_valid, scrub_card_numbers

SEPARATORS = " .-_"


def _with_check_digit(body: str) -> str:
    for digit in "0123456789":
        if luhn_valid(body + digit):
            return body + digit
    raise AssertionError("a Luhn check digit always exists")


card_numbers = st.integers(MIN := 13, 19).flatmap(
    lambda size: st.text("0123456789", min_size=size - 1, max_size=size - 1).map(_with_check_digit)
)


def _grouped(digits: str, draw_separators: list[str]) -> str:
    out = []
    for index, digit in enumerate(digits):
        out.append(digit)
        if index < len(digits) - 1:
            out.append(draw_separators[index % len(draw_separators)])
    return "".join(out)


def _digits(text: str) -> str:
    return re.sub(r"[^0-9*]", "", text)


@pytest.mark.parametrize(
    ("text", "scrubbed"),
    [
        ("Karte 4111111111111111", "Karte 411111******1111"),
        ("Karte 4111 1111 1111 1111", "Karte 4111 11** **** 1111"),
        ("PAN 5555-5555-5555-4444.", "PAN 5555-55**-****-4444."),
        ("AMEX 3782_822463_10005", "AMEX 3782_82****_*0005"),
        ("6799********0019", "6799********0019"),  # already masked
        ("Trace-Nr. 000123 Beleg-Nr. 0001", "Trace-Nr. 000123 Beleg-Nr. 0001"),
        ("Auftrag 123456789012", "Auftrag 123456789012"),  # 12 digits: too short for a card
        ("Karte 4111 1111", "Karte 4111 1111"),
        ("Betrag EUR 10.00 am 02.12.2026", "Betrag EUR 10.00 am 02.12.2026"),
    ],
)
def test_known_texts(text: str, scrubbed: str) -> None:
    assert scrub_card_numbers(text) == scrubbed


@given(
    pan=card_numbers,
    separators=st.lists(st.sampled_from(["", *SEPARATORS]), min_size=1, max_size=4),
    before=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20),
    after=st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20),
)
def test_no_card_number_survives(pan: str, separators: list[str], before: str, after: str) -> None:
    text = f"{before}{_grouped(pan, separators)}{after}"
    scrubbed = scrub_card_numbers(text)
    assert pan not in _digits(scrubbed)
    assert len(scrubbed) == len(text)  # masked in place: the receipt keeps its layout
    kept = _digits(scrubbed[len(before) : len(scrubbed) - len(after)])
    assert kept[:6] == pan[:6] and kept[-4:] == pan[-4:]
    assert kept[6:-4] == "*" * (len(pan) - 10)


@given(pan=card_numbers, noise=st.text("0123456789 ", max_size=12))
def test_a_card_number_next_to_other_digits_is_still_masked(pan: str, noise: str) -> None:
    scrubbed = scrub_card_numbers(f"{noise}{pan}")
    assert pan not in _digits(scrubbed).replace("*", "x")


@given(st.text(max_size=60))
def test_scrubbing_twice_changes_nothing_more(text: str) -> None:
    once = scrub_card_numbers(text)
    assert scrub_card_numbers(once) == once


@given(st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=60))
def test_text_without_digits_is_left_alone(text: str) -> None:
    assert scrub_card_numbers(text) == text


def test_luhn_vectors() -> None:
    assert luhn_valid("79927398713")  # ISO/IEC 7812-1's worked example
    assert not luhn_valid("79927398710")
    assert luhn_valid("4111111111111111") and not luhn_valid("")
    assert MIN == 13
