"""Masking card data in text and in ZVT APDUs for the device log (drivers/card_data.py)."""

from __future__ import annotations

import pytest

from drivers.card_data import mask_text, sensitive_zvt_bytes
from gateway.domain.card_data import luhn_valid


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        # ISO/IEC 7812 test numbers as the card schemes publish them (Visa 4111…, MC 5555…)
        ("Karte 4111111111111111", "Karte 411111******1111"),
        ("PAN: 4111 1111 1111 1111 ok", "PAN: 4111 11** **** 1111 ok"),
        ("5555-5555-5555-4444", "5555-55**-****-4444"),
        # 13 and 19 digits, both Luhn-valid
        ("4222222222222", "422222***2222"),
        ("6799998900000060018", "679999*********0018"),
        # not a card number: fails Luhn, too short, or a date and a trace number
        ("Ref 1234567812345678", "Ref 1234567812345678"),
        ("Trace-Nr. 000123 Beleg-Nr. 0042", "Trace-Nr. 000123 Beleg-Nr. 0042"),
        ("19.10.2021 13:30:04", "19.10.2021 13:30:04"),
        # track 2 (ISO/IEC 7813: ;PAN=YYMM service code, discretionary data?)
        (";4111111111111111=25121010000012300000?", ";411111******1111=********************?"),
        # track 1 (%B PAN ^ NAME ^ YYMM …?)
        ("%B4111111111111111^DOE/JANE^2512101?", "%B411111******1111^********^*******?"),
    ],
)
def test_mask_text(text: str, masked: str) -> None:
    assert mask_text(text) == masked


def test_luhn() -> None:
    assert luhn_valid("79927398713")  # the worked example of ISO/IEC 7812-1 Annex B
    assert not luhn_valid("79927398710")


def test_sensitive_bmps_of_a_status_information() -> None:
    # [ECRTERM] github.com/wirelane/ecrterm ecrterm/tests/test_parsing.py PACKET_LIST[1]:
    # a 04 0F whose BMP 22 carries an unmasked number (LLVAR F1 F1: 11 bytes)
    apdu = bytes.fromhex(
        "04 0F 37 27 00 04 00 00 00 00 40 00 49 09 78 0C 09 38 48 0D 04 25 22 F1 F1 59 66 66 66"
        " 66 D2 00 21 22 01 00 17 00 01 87 01 75 0B 61 39 95 19 40 29 60 09 99 14 0E 05 12 8A 02"
    )
    start = apdu.index(bytes.fromhex("22 F1 F1")) + 3
    assert sensitive_zvt_bytes(apdu) == set(range(start, start + 11))


def test_passwords_are_sensitive() -> None:
    # [SPEC] PA00P015 2.16.1 End-of-Day "06 50 03 <password>"
    assert sensitive_zvt_bytes(bytes.fromhex("06 50 03 12 34 56")) == {3, 4, 5}
    # [ECRTERM] test_apdu.py: registration 06 00 06 98 76 54 41 09 78
    assert sensitive_zvt_bytes(bytes.fromhex("06 00 06 98 76 54 41 09 78")) == {3, 4, 5}
