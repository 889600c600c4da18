"""Kassa's own sentences stored on payments and refunds (gateway.domain.sentences): each one
is known to the pages, translated in every catalogue with the same values, fits where it is
stored, and reads back as its msgid and values."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from gateway.domain import sentences
from gateway.domain.sentences import say
from gateway.entrypoints import terminal_texts
from gateway.services.devices import cards, outcomes, refund_outcomes
from gateway.services.payments import qr_payments

ROOT = Path(__file__).resolve().parents[2]
VALUE = re.compile(r"%\((\w+)\)s")


def _made_in_the_code() -> set[str]:
    found = set()
    for path in (ROOT / "gateway").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "N_"
                and node.args
                and isinstance(node.args[0], ast.Constant)
            ):
                found.add(node.args[0].value)
    return found


def test_the_pages_know_every_sentence_the_code_stores() -> None:
    in_code = _made_in_the_code()
    assert len(in_code) >= 25
    assert in_code <= set(sentences.made()), "import its module in terminal_texts"


@pytest.mark.parametrize("locale", ["de", "zh_CN"])
def test_every_stored_sentence_is_translated_with_the_same_values(locale: str) -> None:
    path = ROOT / "gateway" / "translations" / locale / "LC_MESSAGES" / "messages.po"
    with path.open("rb") as po:
        catalogue = {m.id: m for m in read_po(po) if m.id}
    for msgid in sentences.made():
        message = catalogue[msgid]
        assert message.string and not message.fuzzy, msgid
        assert sorted(VALUE.findall(message.string)) == sorted(VALUE.findall(msgid)), msgid


def test_terminal_texts_fit_the_column() -> None:
    """Payment.display_text holds 120 characters: a longer sentence was stored cut."""
    for text in (
        cards.SENDING,
        cards.APPROVED,
        cards.NOT_REACHED,
        say(cards.WRONG_CURRENCY, terminal="EUR", asked="USD"),
        outcomes.UNKNOWN_TEXT,
        outcomes.NOT_SENT_TEXT,
        outcomes.CHARGED_TEXT,
        outcomes.NOT_CHARGED_TEXT,
        outcomes.CHARGED_BY_TOTALS,
        outcomes.NOT_CHARGED_BY_TOTALS,
    ):
        assert len(text) <= 120, text


def test_a_sentence_reads_back_as_its_msgid_and_values() -> None:
    for msgid in sentences.made():
        names = VALUE.findall(msgid)
        values = {name: f"<{name} 1; x>" for name in names}
        assert sentences.parse(say(msgid, **values)) == (msgid, values)
    assert sentences.parse("a bank's own words") is None


def test_attention_reasons_in_chinese_with_their_values() -> None:
    refused = say(cards.REVERSAL_REFUSED, message="already reversed")
    expired = qr_payments.EXPIRED_WITHOUT_BANK
    late = say(qr_payments.PAID_TOO_LATE, status="expired")
    attention = f"{refused}; {expired}; a bank's own words; {late}"
    assert terminal_texts.attention_in_language(attention, "zh_CN") == (
        "终端拒绝了撤销：已冲正; "  # the terminal's sentence inside Kassa's is translated too
        "在银行未答复的情况下已过期（银行没有应答）：请向银行核实顾客是否已付款; "
        "a bank's own words; "
        "在本系统中状态为“已过期”之后才在银行付款：请给顾客退款或接受这笔付款"
    )
    assert terminal_texts.attention_in_language(attention, "en") == attention
    untold = say(refund_outcomes.UNTOLD, refund="ab12cd34")
    assert "; " in untold  # the sentence holds the reasons' separator itself
    assert terminal_texts.attention_in_language(f"{expired}; {untold}", "zh_CN") == (
        "在银行未答复的情况下已过期（银行没有应答）：请向银行核实顾客是否已付款; "
        "银行卡退款 ab12cd34：终端的最后一张凭条无法说明是否已退款；请查看终端日志并手动处理"
    )
    assert terminal_texts.attention_in_language(None, "de") is None


def test_a_refund_failure_in_german_keeps_its_till_and_seconds() -> None:
    stored = say(refund_outcomes.NOT_SENT, till="T01", seconds="90")
    assert terminal_texts.in_language(stored, "de") == (
        "Nicht erstattet: Das Terminal an Kasse T01 war innerhalb von 90 s nicht erreichbar, es "
        "wurde kein Geld zurückgezahlt. Erstatten Sie erneut, sobald es eingeschaltet ist, oder "
        "auf anderem Weg."
    )


def test_a_status_inside_a_sentence_is_named_from_the_public_msgid_table() -> None:
    """terminal_texts read a status's msgid from flask_babel's private ``LazyString._args``;
    status_names has a public table of msgids, the lazy names built from it."""
    from gateway.adapters.i18n import catalogue
    from gateway.entrypoints import status_names

    assert set(status_names.MSGIDS) == set(status_names.NAMES)
    assert status_names.MSGIDS["expired"] == "Expired"
    late = say(qr_payments.PAID_TOO_LATE, status="expired")
    for locale in ("de", "zh_CN"):
        named = catalogue(locale).gettext("Expired")
        assert named != "Expired"
        assert named in (terminal_texts.in_language(late, locale) or "")
