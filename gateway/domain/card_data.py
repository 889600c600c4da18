"""Card numbers must never be stored: find them in free text and mask them.

This is the one rule for every text Kassa writes that came from outside (settlement files and
their archived copies, remittance texts, receipts, error messages, log lines) and the rule
``kassa db scan-pans`` looks for.

A card number (PAN, ISO/IEC 7812-1) is 13 to 19 digits whose last digit is the Luhn check
digit. Terminals, banks and acquirers write them whole ("Karte 4111111111111111") or in groups
separated by a space, dot, dash or underscore (``5500.0000.0000.0004``, ``4111_1111_1111_1111``).

=========================================  =================================================
text                                       masked?
=========================================  =================================================
a run of 13–19 digits, Luhn-valid, with    yes: first six and last four digits kept, the
at most one separator between two digits   others become ``*``, separators stay in place
a Luhn-valid 13–19 digit stretch of whole  yes (``4111 1111 1111 1111 2028``: the year is
groups inside a longer grouped run         not part of the card number)
a longer run without separators            no: a 20+ digit number is a reference, not a card
digits glued to a letter (``A4111…``,      no: a hash, a token or an IBAN's check digits,
``…1111x``)                                not a card number standing alone
a valid IBAN or RF creditor reference      no (ISO 13616 / ISO 11649, mod 97 = 1)
a UUID (8-4-4-4-12 hex digits)             no, even when all its digits are decimal
=========================================  =================================================
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

MIN_DIGITS, MAX_DIGITS = 13, 19
KEEP_FIRST, KEEP_LAST = 6, 4
SEPARATORS = " ._-"
# A maximal run of at least 13 digits with at most one separator between two of them.
_RUN = re.compile(r"(?<![0-9])[0-9](?:[ ._\-]?[0-9]){12,}")
_GROUP = re.compile(r"[0-9]+")
# An IBAN (ISO 13616) or RF creditor reference (ISO 11649), printed whole or in groups of four.
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}[0-9]{2}(?: ?[A-Za-z0-9]){8,31}(?![A-Za-z0-9])")
# A UUID (RFC 9562) such as 00000000-0000-0000-0000-000000000001: digit groups, not a card.
_UUID = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
    r"(?![0-9A-Za-z])"
)
_MASK_CHARS = "*Xx#"
_DIGITS = "0123456789"


def luhn_valid(digits: str) -> bool:
    """Whether ``digits`` end in their Luhn check digit (ISO/IEC 7812-1 Annex B)."""
    total = 0
    for position, char in enumerate(reversed(digits)):
        value = int(char)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return bool(digits) and total % 10 == 0


def scrub_card_numbers(text: str) -> str:
    """``text`` with every card number in it masked (first six and last four digits kept)."""
    spans = list(card_number_spans(text))
    if not spans:
        return text
    out = list(text)
    for start, end in spans:
        seen, count = 0, sum(c.isdigit() for c in text[start:end])
        for position in range(start, end):
            if text[position].isdigit():
                if KEEP_FIRST <= seen < count - KEEP_LAST:
                    out[position] = "*"
                seen += 1
    return "".join(out)


def card_number_spans(text: str) -> Iterator[tuple[int, int]]:
    """(start, end) of every card number in ``text`` (see the module table)."""
    protected: list[tuple[int, int]] | None = None
    for run in _RUN.finditer(text):
        start, end = run.span()
        if protected is None:
            protected = _protected_spans(text)
        if any(p_start <= start and end <= p_end for p_start, p_end in protected):
            continue
        yield from _in_run(text, start, end)


def may_hold_card_number(text: str) -> bool:
    """False when ``text`` certainly holds no card number (no run of 13 digits): a quick test
    before :func:`scrub_card_numbers`, for texts joined by a line feed (no run spans two)."""
    return _RUN.search(text) is not None


def has_card_number(text: str) -> bool:
    """Whether ``text`` holds a card number that :func:`scrub_card_numbers` would mask."""
    return next(card_number_spans(text), None) is not None


def scrub_bytes(data: bytes) -> bytes:
    """``data`` (a file's raw bytes, any ASCII-compatible encoding) with card numbers masked."""
    text = data.decode("latin-1")  # one character per byte: positions and length survive
    scrubbed = scrub_card_numbers(text)
    return data if scrubbed == text else scrubbed.encode("latin-1")


# Bytes that can be part of a card number, an IBAN, or a letter glued to one (any byte of a
# multi-byte character counts as a letter).
_WORD_BYTES = frozenset(
    b"0123456789 ._-ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
    + bytes(range(0x80, 0x100))
)


# A stream is masked piece by piece; a piece with nowhere safe to cut is held back up to this
# size (one "word" of 16 MiB: not a text a bank writes), then masked as it is.
MAX_CARRY = 1 << 24


def safe_cut(data: bytes) -> int:
    """Where ``data`` may be cut so that a card number is never split nor misread: after its
    last byte that is neither part of one nor next to one (0: nowhere)."""
    end = len(data)
    while end > 0 and data[end - 1] in _WORD_BYTES:
        end -= 1
    return end


def scrub_json(value: Any) -> Any:
    """A JSON-like value (dicts, lists, strings, numbers) with the card numbers in its strings
    masked; a whole number that is a card number becomes a masked string."""
    if isinstance(value, str):
        return scrub_card_numbers(value)
    if isinstance(value, int) and not isinstance(value, bool) and has_card_number(str(value)):
        return scrub_card_numbers(str(value))
    if isinstance(value, list | tuple):
        return [scrub_json(v) for v in value]
    if isinstance(value, dict):
        return {k: scrub_json(v) for k, v in value.items()}
    return value


def masked_card_number(value: str | None) -> str | None:
    """A card number column's value as ``first6****last4`` at most, without separators.

    ``value`` is what a file gives for the card: whole, grouped with any separator, or already
    masked (``411111XXXXXX1111``). Anything else is not a card number: None.
    """
    if not value:
        return None
    compact = "".join(c for c in value.strip() if c not in SEPARATORS)
    if (
        not compact
        or len(compact) > MAX_DIGITS
        or any(not (c.isdigit() or c in _MASK_CHARS) for c in compact)
    ):
        return None
    return "".join(
        c if c in _DIGITS and (i < KEEP_FIRST or i >= len(compact) - KEEP_LAST) else "*"
        for i, c in enumerate(compact)
    )


def _in_run(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The card numbers in one run: the run itself, or stretches of its whole groups."""
    groups = [m.span() for m in _GROUP.finditer(text, start, end)]
    glued_left = start > 0 and text[start - 1].isalpha()
    glued_right = end < len(text) and text[end].isalpha()
    first = 1 if glued_left else 0
    last = len(groups) - 2 if glued_right else len(groups) - 1
    found: list[tuple[int, int]] = []
    for i in range(first, last + 1):
        digits = ""
        for j in range(i, last + 1):
            digits += text[groups[j][0] : groups[j][1]]
            if len(digits) > MAX_DIGITS:
                break
            if len(digits) >= MIN_DIGITS and luhn_valid(digits):
                found.append((groups[i][0], groups[j][1]))
    # A card number inside another found one (a Luhn-valid stretch of a longer one) is part of it.
    for span in found:
        if not any(o != span and o[0] <= span[0] and span[1] <= o[1] for o in found):
            yield span


def _protected_spans(text: str) -> list[tuple[int, int]]:
    """Spans of UUIDs, and of valid IBANs and RF references (tried from the longest grouping
    down)."""
    spans = [match.span() for match in _UUID.finditer(text)]
    for match in _IBAN.finditer(text):
        candidate = match.group()
        while candidate:
            if _mod97_valid(candidate.replace(" ", "")):
                spans.append((match.start(), match.start() + len(candidate)))
                break
            cut = candidate.rfind(" ")
            candidate = candidate[:cut] if cut > 0 else ""
    return spans


def _mod97_valid(code: str) -> bool:
    """ISO 7064 MOD 97-10 as IBANs and RF references use it (letters count A=10 … Z=35)."""
    if len(code) < 5 or not code.isalnum() or not code.isascii():
        return False
    moved = (code[4:] + code[:4]).upper()
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1
