"""Sentences Kassa stores in English and shows in the reader's language.

A card payment's terminal text (``display_text``), a refund's ``failure`` and a payment's
attention reasons are stored as English sentences: the API returns them as they are, the
payment's history keeps them, and an attention reason is also the key that takes the flag off
again (``lifecycle.clear_attention``), so a stored sentence never changes with the reader.
Each such sentence Kassa writes is made with :func:`N_` (a msgid, with ``%(name)s`` for what
varies), so ``make translations`` extracts it, and a page turns the stored words back into
their msgid and values with :func:`parse` and shows them translated
(``gateway.entrypoints.terminal_texts.in_language``). A sentence Kassa did not make (a
bank's reason, a terminal vendor's text) is shown as it was stored.
"""

from __future__ import annotations

import re
from functools import cache

_MADE: dict[str, None] = {}  # every msgid made with N_, in the order the modules made them
_VALUE = re.compile(r"%\((\w+)\)s")


def N_(msgid: str) -> str:
    """Marks ``msgid`` as a stored sentence (extracted with ``-k N_``) and returns it as is."""
    _MADE[msgid] = None
    return msgid


def say(msgid: str, **values: object) -> str:
    """``msgid`` with its values filled in: the English sentence to store."""
    return msgid % {name: str(value) for name, value in values.items()}


def made() -> tuple[str, ...]:
    return tuple(_MADE)


@cache
def _pattern(msgid: str) -> re.Pattern[str]:
    parts = _VALUE.split(msgid)  # literal, name, literal, name, …, literal
    regex = "".join(
        re.escape(part.replace("%%", "%")) if i % 2 == 0 else f"(?P<{part}>.+?)"
        for i, part in enumerate(parts)
    )
    return re.compile(regex, re.DOTALL)


def parse(text: str) -> tuple[str, dict[str, str]] | None:
    """The msgid ``text`` was made from and its values, or None for a sentence Kassa did not
    make. A sentence with no values is its own msgid."""
    if text in _MADE and not _VALUE.search(text):
        return text, {}
    for msgid in _MADE:
        if "%(" not in msgid:
            continue
        found = _pattern(msgid).fullmatch(text)
        if found is not None:
            return msgid, found.groupdict()
    return None
