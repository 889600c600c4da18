"""The terminal's texts on the cashier screen are in the cashier's language: every sentence of
ZVT PA00P015 13.08 §3.7 Table 17 (drivers/zvt/codes.py INTERMEDIATE_STATUS), and every reason a
payment was declined or aborted for (RESULT_CODES, HOST_CODES, result_message), is translated
into German and Simplified Chinese; a text Kassa does not know is shown as the terminal sent
it."""

from __future__ import annotations

import pytest

from drivers.zvt.codes import (
    HOST_CODES,
    INTERMEDIATE_STATUS,
    RESULT_CODES,
    result_message,
    status_message,
)
from gateway.adapters.i18n import catalogue
from gateway.entrypoints.terminal_texts import (
    KNOWN,
    REMOVE_CARD,
    RESULT_SENTENCES,
    STORED_LENGTH,
    in_language,
)


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


# -- why a payment was declined or aborted (chapter 10's result codes, the acquirer's host codes)

LOCALES = ("de", "zh_CN")
DE_DECLINED = "vom Kartenherausgeber oder Netzbetreiber abgelehnt"
HOST_DECLINED_IN = {
    "de": "vom Kartenherausgeber oder Netzbetreiber abgelehnt (Host-Code {code}: {reason})",
    "zh_CN": "被发卡机构或卡组织拒绝（主机代码 {code}：{reason}）",
}


def chinese(text: str) -> bool:
    return any("\u4e00" <= ch <= "\u9fff" for ch in text)


def stored(sentence: str) -> str:
    """What the payment keeps of the sentence (apply_charge: cut to the column's 120)."""
    return sentence[:STORED_LENGTH]


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("code", sorted(RESULT_CODES), ids=lambda c: f"{c:02X}")
def test_every_result_code_sentence_is_translated(code: int, locale: str) -> None:
    english = result_message(code)
    assert english == RESULT_CODES[code]
    shown = in_language(stored(english), locale)
    assert shown and shown != english
    assert shown == catalogue(locale).gettext(english)  # the catalogue's own, not a fallback
    assert chinese(shown) if locale == "zh_CN" else not chinese(shown)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("code", sorted(HOST_CODES))
def test_every_host_code_reason_is_translated_around_its_number(code: int, locale: str) -> None:
    english = result_message(code)
    assert english == (
        f"declined by the card issuer or network (host code {code:02d}: {HOST_CODES[code]})"
    )
    reason = catalogue(locale).gettext(HOST_CODES[code])
    assert reason != HOST_CODES[code]
    expected = HOST_DECLINED_IN[locale].format(code=f"{code:02d}", reason=reason)
    assert in_language(stored(english), locale) == expected


@pytest.mark.parametrize(
    ("code", "locale", "shown"),
    [
        (0x78, "de", "Karte abgelaufen"),
        (0x78, "zh_CN", "卡已过期"),
        (0x6C, "de", "Abbruch durch Zeitüberschreitung oder Abbruchtaste"),
        (51, "zh_CN", "被发卡机构或卡组织拒绝（主机代码 51：余额不足）"),
        (51, "de", f"{DE_DECLINED} (Host-Code 51: Deckung nicht ausreichend)"),
        (5, "en", "declined by the card issuer or network (host code 05: do not honour)"),
        # a host code the table does not name: the acquirer's list, translated too
        (7, "zh_CN", "被发卡机构或卡组织拒绝（主机代码 07：请参阅收单机构的代码表）"),
        (7, "de", f"{DE_DECLINED} (Host-Code 07: siehe Code-Liste des Acquirers)"),
        # a code chapter 10 does not list keeps its number
        (0x70, "zh_CN", "未知结果代码 70"),
        (0x70, "de", "unbekannter Ergebniscode 70"),
    ],
)  # fmt: skip
def test_a_decline_reason_in_the_pages_language(code: int, locale: str, shown: str) -> None:
    assert in_language(result_message(code), locale) == shown


def test_every_result_code_s_stored_text_is_known() -> None:
    """Every code 00–FF, as the payment stores it, is translated, however long its sentence."""
    for code in range(0x100):
        english = stored(result_message(code))
        assert english in RESULT_SENTENCES, f"{code:02X}"
        assert in_language(english, "zh_CN") != english, f"{code:02X}"


def test_the_longest_host_sentence_translates_as_stored() -> None:
    longest = max(range(0x01, 0x64), key=lambda code: len(result_message(code)))
    english = result_message(longest)
    assert len(english) <= STORED_LENGTH  # kept whole: the column holds 120
    assert in_language(stored(english), "de") == HOST_DECLINED_IN["de"].format(
        code=f"{longest:02d}", reason=catalogue("de").gettext(HOST_CODES[longest])
    )


def test_a_sentence_cut_at_120_still_translates(monkeypatch: pytest.MonkeyPatch) -> None:
    """A reason long enough to be cut when stored is matched as it was stored."""
    from drivers.zvt import codes
    from gateway.entrypoints import terminal_texts

    reason = "insufficient funds " + "x" * 150
    monkeypatch.setitem(codes.HOST_CODES, 51, reason)
    monkeypatch.setattr(terminal_texts, "HOST_CODES", codes.HOST_CODES)
    sentences = {terminal_texts.result_message(c)[:STORED_LENGTH]: c for c in range(0x01, 0x64)}
    monkeypatch.setattr(terminal_texts, "RESULT_SENTENCES", sentences)
    cut = stored(codes.result_message(51))
    assert len(cut) == STORED_LENGTH and cut != codes.result_message(51)
    shown = in_language(cut, "zh_CN")
    assert shown and shown.startswith("被发卡机构或卡组织拒绝（主机代码 51：")


@pytest.mark.parametrize(
    "vendor",
    [
        "Karte ungültig (Händler 4711)",  # a terminal's own text
        "declined by the card issuer or network (host code 51: insufficient funds) today",
        "declined by the card issuer or network (host code 51: card on fire)",
        "unknown result code 7G",
        "card expired!",
        "aborted without a result code",
    ],
)
def test_a_text_kassa_does_not_know_is_shown_as_sent(vendor: str) -> None:
    assert in_language(vendor, "zh_CN") == vendor
    assert in_language(vendor, "de") == vendor


def _settled_texts() -> list[str]:
    from gateway.services.devices import outcomes, refund_outcomes

    return [
        outcomes.CHARGED_TEXT,
        outcomes.NOT_CHARGED_TEXT,
        outcomes.CHARGED_BY_TOTALS,
        outcomes.NOT_CHARGED_BY_TOTALS,
        refund_outcomes.NOT_REFUNDED,
        refund_outcomes.NOT_REFUNDED_BY_TOTALS,
    ]


@pytest.mark.parametrize("locale", LOCALES)
def test_how_an_unknown_outcome_was_settled_is_said_in_the_pages_language(locale: str) -> None:
    """The last receipt or the end-of-day totals settled it: the cashier reads which."""
    for text in _settled_texts():
        shown = in_language(text, locale)
        assert shown and shown != text
        assert chinese(shown) == (locale == "zh_CN")
