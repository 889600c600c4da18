"""The terminal's texts on the cashier screen are in the cashier's language: every sentence of
ZVT PA00P015 13.08 §3.7 Table 17 (drivers/zvt/codes.py INTERMEDIATE_STATUS) is translated into
German and Simplified Chinese; a text Kassa does not know is shown as the terminal sent it."""

from __future__ import annotations

import pytest

from drivers.zvt.codes import INTERMEDIATE_STATUS, status_message
from gateway.entrypoints.cashier.terminal_texts import KNOWN, REMOVE_CARD, in_language


@pytest.mark.parametrize("code", sorted(INTERMEDIATE_STATUS), ids=lambda c: f"{c:02X}")
def test_every_intermediate_status_of_table_17_is_known(code: int) -> None:
    text = status_message(code)
    first, _, _ = text.partition(f" {REMOVE_CARD}")
    assert text in KNOWN or (first in KNOWN and text == f"{first} {REMOVE_CARD}")


@pytest.mark.parametrize(
    ("code", "locale", "shown"),
    [
        (0x0A, "de", "Karte einstecken"),  # Table 17: 0A "Insert card"
        (0x01, "de", "Bitte PIN-Pad beachten"),  # 01 "Please watch PIN-Pad"
        (0x0E, "zh_CN", "请稍候..."),  # 0E "Please wait..."
        (
            0x4C,
            "de",
            "Karte nicht lesbar Bitte Karte entnehmen!",
        ),  # 4C = 0C + "Please remove card!"
        (0x0A, "en", "Insert card"),
    ],
)
def test_a_status_text_in_the_pages_language(code: int, locale: str, shown: str) -> None:
    assert in_language(status_message(code), locale) == shown


def test_kassas_own_texts_and_unknown_ones() -> None:
    assert in_language("Sending to the terminal…", "zh_CN") == "正在发送到终端…"
    assert in_language("Approved", "de") == "Genehmigt"
    assert in_language("Terminal status 7F", "de") == "Terminal status 7F"  # not in Table 17
    assert in_language("declined by the card issuer", "zh_CN") == "declined by the card issuer"
    assert in_language(None, "de") is None
