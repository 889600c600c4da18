"""The card number scrubber (gateway.domain.card_data): Luhn (ISO/IEC 7812-1 Annex B) and masking.

Test card numbers are the card schemes' published test PANs (e.g. VISA 4111 1111 1111 1111).
"""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.domain.card_data import (
    has_card_number,
    luhn_valid,
    masked_card_number,
    scrub_bytes,
    scrub_card_numbers,
)

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


# Text around a card number: anything without digits that does not glue a letter to it (a
# digit run glued to letters is a hash, a token or an IBAN, not a card number standing alone).
_no_digits = st.text(alphabet=st.characters(blacklist_categories=("Nd",)), max_size=20)
_boundary = st.sampled_from([" ", ":", "<", ">", '"', "#", "=", "/", "(", "\n", ",", ";"])


@given(
    pan=card_numbers,
    separators=st.lists(st.sampled_from(["", *SEPARATORS]), min_size=1, max_size=4),
    before=st.tuples(_no_digits, _boundary).map("".join) | st.just(""),
    after=st.tuples(_boundary, _no_digits).map("".join) | st.just(""),
)
def test_no_card_number_survives(pan: str, separators: list[str], before: str, after: str) -> None:
    text = f"{before}{_grouped(pan, separators)}{after}"
    scrubbed = scrub_card_numbers(text)
    assert pan not in _digits(scrubbed)
    assert len(scrubbed) == len(text)  # masked in place: the receipt keeps its layout
    kept = _digits(scrubbed[len(before) : len(scrubbed) - len(after)])
    assert kept[:6] == pan[:6] and kept[-4:] == pan[-4:]
    assert kept[6:-4] == "*" * (len(pan) - 10)


@given(
    pan=card_numbers,
    noise=st.text("0123456789 ", max_size=12),
    separator=st.sampled_from(SEPARATORS),
)
def test_a_card_number_next_to_other_digits_is_still_masked(
    pan: str, noise: str, separator: str
) -> None:
    scrubbed = scrub_card_numbers(f"{noise}{separator}{pan}")
    kept = scrubbed[len(noise) + 1 :]  # the card number may be read with the noise before it
    assert kept.count("*") >= len(pan) - 10 and kept[-4:] == pan[-4:]
    assert kept[: len(pan) - 4].rstrip("*").isdigit() or kept.startswith("*")


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


def _luhn_number(body: str) -> str:
    return _with_check_digit(body)


PAN_13 = _luhn_number("422222222222")  # VISA's 13-digit test card 4222222222222
PAN_19 = _luhn_number("623456789012345678")  # a 19-digit number (UnionPay's length)


@pytest.mark.parametrize(
    "text",
    [
        "5500.0000.0000.0004",
        "4111_1111_1111_1111",
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "4111111111111111",
        "card 4111111111111111 paid",
        "<Ustrd>KARTE 5500 0000 0000 0004 EUR 12.50</Ustrd>",
        "pan=4111111111111111&x=1",
        '{"pan": "378282246310005"}',
        PAN_13,
        PAN_19,
        f"ref {PAN_19[:4]}.{PAN_19[4:8]}.{PAN_19[8:12]}.{PAN_19[12:16]}.{PAN_19[16:]}",
        "4111 1111 1111 1111 2028",  # a card number followed by its expiry year
        "Karte: 4111 1111 1111 1111, Beleg 0001",
    ],
)
def test_every_card_number_shape_is_masked(text: str) -> None:
    scrubbed = scrub_card_numbers(text)
    assert scrubbed != text and has_card_number(text)
    assert not has_card_number(scrubbed)
    assert "***" in re.sub(r"[ ._\-]", "", scrubbed)
    for pan in ("4111111111111111", "5500000000000004", "378282246310005", PAN_13, PAN_19):
        assert pan not in re.sub(r"[ ._\-]", "", scrubbed)


@pytest.mark.parametrize(
    "text",
    [
        "DE89370400440532013000",  # IBANs (ISO 13616 examples), whole and grouped
        "DE89 3704 0044 0532 0130 00",
        "GB29 NWBK 6016 1331 9268 19",
        "FR14 2004 1010 0505 0001 3M02 606",
        "RF18 5390 0754 7034",  # an RF creditor reference (ISO 11649)
        "RF18539007547034",
        "E2E-2026-000123-0001",
        "P-2026-00000001ABCDEFGHJ",
        "20261125000123456789012",  # a 23-digit bank reference: not a card number
        "AcctSvcrRef 2026112500012345678901",
        "EUR 1.234.567,89",
        "12345.67 EUR on 2026-12-06 at 17:06:41",
        "1234567890123",  # 13 digits, not Luhn-valid
        "4111111111111112",  # 16 digits, not Luhn-valid
        "4111 1111 1111 1112",
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "abc4111111111111111def",  # a token or hash, not a card number standing alone
        "411111******1111",  # already masked
        "+49 170 1234567",
        '{"refund_id":"00000000-0000-0000-0000-000000000000"}',  # a UUID's digit groups
        "00000000-0000-4000-8000-000000000001",
    ],
)
def test_what_is_not_a_card_number_survives(text: str) -> None:
    assert scrub_card_numbers(text) == text
    assert not has_card_number(text)


@pytest.mark.parametrize(
    ("value", "masked"),
    [
        ("5500.0000.0000.0004", "550000******0004"),
        ("4111_1111_1111_1111", "411111******1111"),
        ("4111 1111 1111 1111", "411111******1111"),
        ("4111-1111-1111-1111", "411111******1111"),
        ("411111XXXXXX1111", "411111******1111"),
        ("411111******1111", "411111******1111"),
        (PAN_19, PAN_19[:6] + "*" * 9 + PAN_19[-4:]),
        ("1111", "1111"),
        ("n/a", None),
        ("card 4111111111111111", None),
        ("", None),
        (None, None),
    ],
)
def test_the_card_number_column_holds_first_six_last_four_at_most(
    value: str | None, masked: str | None
) -> None:
    assert masked_card_number(value) == masked
    if masked:
        assert len(masked) <= 19 and sum(c.isdigit() for c in masked) <= 10


def test_raw_bytes_are_scrubbed_in_place() -> None:
    raw = "<Ustrd>Zahlung Karte 4111 1111 1111 1111 für Müller</Ustrd>\n".encode()
    scrubbed = scrub_bytes(raw)
    assert len(scrubbed) == len(raw)
    assert scrubbed.decode() == "<Ustrd>Zahlung Karte 4111 11** **** 1111 für Müller</Ustrd>\n"
    assert scrub_bytes(b"no card here 2026-12-06") == b"no card here 2026-12-06"
