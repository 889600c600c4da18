"""The card terminal's texts in the cashier's language.

The driver reports each Intermediate Status Information (04 FF) as its sentence from ZVT
PA00P015 13.08 §3.7, Table 17 (``drivers.zvt.codes.INTERMEDIATE_STATUS``), and the device host
stores that English sentence on the payment (``display_text``), as it stores Kassa's own
"Sending to the terminal…" and "Approved". A declined or aborted payment stores the result
code's sentence (``drivers.zvt.codes.result_message``: chapter 10's, the acquirer's host code
with its reason, or "unknown result code XX"), and a reversal the terminal refused stores it as
the refund's failure. The cashier screen shows each in the page's language; a text Kassa does
not know (a vendor's own) is shown as the terminal sent it.

Kassa's own sentences on a payment or a refund (a charge that never reached the terminal, an
outcome the terminal's records settled, a payment's attention reasons: see
``gateway.domain.sentences``) are shown translated the same way, with their values (a till, an
amount, a terminal's sentence inside Kassa's) kept or translated in turn.
"""

from __future__ import annotations

from babel.support import NullTranslations

from drivers.zvt.codes import (
    HOST_CODE_UNLISTED,
    HOST_CODES,
    HOST_DECLINED,
    RESULT_CODES,
    UNKNOWN_RESULT,
    result_message,
)
from gateway.adapters.i18n import catalogue, current_locale
from gateway.domain import sentences
from gateway.entrypoints.status_names import MSGIDS as STATUS_MSGIDS

# The modules that store sentences on payments and refunds: imported, their sentences are known.
from gateway.services.devices import cards, end_of_day, outcomes, refund_outcomes  # noqa: F401
from gateway.services.payments import lifecycle, qr_payments, refunds  # noqa: F401

STORED_LENGTH = 120  # Payment.display_text keeps this much of a sentence


def _l(sentence: str) -> str:
    """Marks a sentence for the catalogues (``make translations`` extracts ``_l``); it is
    translated when shown, in the language of the page that shows it."""
    return sentence


REMOVE_CARD = _l("Please remove card!")  # Table 17: 41–5D hex are 01–1D with this added

# Table 17's sentences, as drivers/zvt/codes.py spells them.
KNOWN = frozenset(
    {
        _l("PT is waiting for amount-confirmation"),
        _l("Please watch PIN-Pad"),
        _l("Not accepted"),
        _l("PT is waiting for response from FEP"),
        _l("PT is sending auto-reversal"),
        _l("PT is sending post-bookings"),
        _l("Card not admitted"),
        _l("Card unknown / undefined"),
        _l("Expired card"),
        _l("Insert card"),
        REMOVE_CARD,
        _l("Card not readable"),
        _l("Processing error"),
        _l("Please wait..."),
        _l("PT is commencing an automatic end-of-day batch"),
        _l("Invalid card"),
        _l("Balance display"),
        _l("System malfunction"),
        _l("Payment not possible"),
        _l("Credit not sufficient"),
        _l("Incorrect PIN"),
        _l("Limit not sufficient"),
        _l("PIN try limit exceeded"),
        _l("Card-data incorrect"),
        _l("Service-mode"),
        _l("Approved. Please fill-up"),
        _l("Approved. Please take goods"),
        _l("Declined"),
        _l("PT is waiting for input of the mobile-number"),
        _l("PT is waiting for repeat of mobile number"),
        _l("Currency selection, please wait..."),
        _l("Language selection, please wait..."),
        _l("For loading please insert card"),
        _l("Emergency transaction, please wait"),
        _l("Application selection, please wait"),
        _l("PT has detected customer card insertion"),
        _l("Please select DCC"),
        _l("PT is waiting for input of the mileage"),
        _l("PT is waiting for cashier"),
        _l("PT is commencing an automatic diagnosis"),
        _l("PT is commencing an automatic initialisation"),
        _l("Merchant-journal full"),
        _l("Debit advice not possible, PIN required"),
        _l("Connecting dial-up"),
        _l("Dial-up connection made"),
        _l("PT is waiting for application-selection"),
        _l("PT is waiting for language-selection"),
        _l("PT requests to use the cleaning card"),
        _l("Offline"),
        _l("Online"),
        _l("Offline transaction"),
    }
)


# Every result code's sentence, as stored (cut to the column's length), to its code: a stored
# text is translated only when it is exactly one of these.
RESULT_SENTENCES: dict[str, int] = {
    sentence: code
    for code in reversed(range(0x100))  # the lowest code wins a sentence two codes share
    for sentence in (result_message(code), result_message(code)[:STORED_LENGTH])
}


def result_in_language(code: int, words: NullTranslations) -> str:
    """:func:`drivers.zvt.codes.result_message` in ``words``' language; the code number stays."""
    if code in RESULT_CODES:
        return words.gettext(RESULT_CODES[code])
    if 0x01 <= code <= 0x63:
        reason = words.gettext(HOST_CODES.get(code, HOST_CODE_UNLISTED))
        return words.gettext(HOST_DECLINED) % {"code": f"{code:02d}", "reason": reason}
    return words.gettext(UNKNOWN_RESULT) % {"code": f"{code:02X}"}


def in_language(text: str | None, locale: str) -> str | None:
    """``text`` (a payment's ``display_text``, a card refund's ``failure``) in ``locale``, if
    Kassa knows the sentence."""
    if not text:
        return text
    words = catalogue(locale)
    if text in KNOWN:
        return words.gettext(text)
    first, added, rest = text.partition(f" {REMOVE_CARD}")
    if added and not rest and first in KNOWN:
        return f"{words.gettext(first)} {words.gettext(REMOVE_CARD)}"
    if text in RESULT_SENTENCES:
        return result_in_language(RESULT_SENTENCES[text], words)
    made = sentences.parse(text)
    if made is not None:
        msgid, values = made
        translated = words.gettext(msgid)
        if translated == msgid:  # English (or no translation): as stored
            return text
        return translated % {
            name: _value_in_language(name, value, locale) for name, value in values.items()
        }
    return text


def _value_in_language(name: str, value: str, locale: str) -> str:
    if name == "status" and value in STATUS_MSGIDS:
        return catalogue(locale).gettext(STATUS_MSGIDS[value])
    return in_language(value, locale) or value


def attention_in_language(attention: str | None, locale: str) -> str | None:
    """A payment's attention (its reasons, joined by "; ") in ``locale``, reason by reason."""
    if not attention:
        return attention
    pieces, shown, start = attention.split("; "), [], 0
    while start < len(pieces):  # a reason may hold "; " itself: the shortest Kassa made
        end = next(
            (
                end
                for end in range(start + 1, len(pieces) + 1)
                if sentences.parse("; ".join(pieces[start:end])) is not None
            ),
            start + 1,  # a reason Kassa did not make: as stored
        )
        reason = "; ".join(pieces[start:end])
        shown.append(in_language(reason, locale) or reason)
        start = end
    return "; ".join(shown)


def shown(text: str | None) -> str | None:
    """``text`` in the request's language (for a template: a refund's failure)."""
    return in_language(text, current_locale())


def attention_shown(attention: str | None) -> str | None:
    """A payment's attention in the request's language (for a template)."""
    return attention_in_language(attention, current_locale())
