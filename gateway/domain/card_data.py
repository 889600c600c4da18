"""Card numbers must never be stored: find them in free text and mask them.

A card number (PAN, ISO/IEC 7812-1) is 13 to 19 digits whose last digit is the Luhn check
digit. Terminals print them on receipts, sometimes whole ("Karte 4111111111111111"), grouped
with spaces, dots, dashes or underscores. :func:`scrub_card_numbers` masks every run of digits
(one such separator allowed between two digits) that is, or holds, 13 to 19 digits passing the
Luhn check: the first six and last four digits stay, the others become ``*``, separators stay
where they were. It errs on the side of masking: a long reference that happens to hold a
Luhn-valid stretch is masked too.
"""

from __future__ import annotations

import re

MIN_DIGITS, MAX_DIGITS = 13, 19
KEEP_FIRST, KEEP_LAST = 6, 4
# A run of digits with at most one separator between two of them.
_RUN = re.compile(r"[0-9](?:[ ._\-]?[0-9])*")


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
    return _RUN.sub(_scrub_run, text)


def _scrub_run(match: re.Match[str]) -> str:
    run = match.group(0)
    where = [i for i, char in enumerate(run) if char.isdigit()]
    digits = "".join(run[i] for i in where)
    if len(digits) < MIN_DIGITS:
        return run
    masked = [False] * len(digits)
    for start, end in _card_numbers(digits):
        for index in range(start + KEEP_FIRST, end - KEEP_LAST):
            masked[index] = True
    if not any(masked):
        return run
    out = list(run)
    for index, position in enumerate(where):
        if masked[index]:
            out[position] = "*"
    return "".join(out)


def _card_numbers(digits: str) -> list[tuple[int, int]]:
    """(start, end) of each stretch of ``digits`` that reads as a card number: the whole run if
    it is one, else every Luhn-valid window of 13 to 19 digits inside it."""
    if MIN_DIGITS <= len(digits) <= MAX_DIGITS and luhn_valid(digits):
        return [(0, len(digits))]
    return [
        (start, start + size)
        for size in range(MIN_DIGITS, min(MAX_DIGITS, len(digits)) + 1)
        for start in range(len(digits) - size + 1)
        if luhn_valid(digits[start : start + size])
    ]
