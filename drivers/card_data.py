"""Card data masked before it is written anywhere: text (print lines, log lines, hex dumps) and
the known card-data fields of ZVT APDUs.

========================  =====================================================================
what                      masked as
========================  =====================================================================
card number in text       a Luhn-valid run of exactly 13–19 digits, one space, dot, dash or
                          underscore between two of them (gateway.domain.card_data's
                          separators): first six and last four kept, separators kept. Unlike
                          that scrubber, no stretches inside longer runs and no exceptions
                          for letters around it: a hex dump's bytes are all two-digit groups
                          and would be starred at random)
track 2 in text           ``;PAN=YYMM…?``: the number as above, everything after ``=`` starred
track 1 in text           ``%B PAN ^NAME^ YYMM…?``: the number as above, the rest starred
ZVT BMP fields            22 (PAN), 23/24 (track 2/3), 2D (track 1), 2E (chip data), 3A (CVV),
                          3D (password), A7 (EF_ID); and the password of every command with one
========================  =====================================================================

The codecs already mask what they decode (:func:`drivers.zvt.apdu.mask_pan`); this is for the
bytes themselves, as a support log shows them.
"""

from __future__ import annotations

import re

from drivers.errors import DecodeError
from gateway.domain.card_data import KEEP_FIRST, KEEP_LAST, luhn_valid

PAN_RUN = re.compile(r"(?<![0-9])[0-9](?:[ ._\-]?[0-9]){12,18}(?![0-9])")
TRACK_2 = re.compile(r"(?<![0-9])([0-9]{13,19})=([0-9]+)")
TRACK_1 = re.compile(r"B([0-9]{13,19})\^([^^\n]*)\^([0-9]*)")


def _mask_number(run: str) -> str:
    """``run`` with every digit but the first six and the last four starred."""
    count = sum(c.isdigit() for c in run)
    seen, out = 0, []
    for char in run:
        if char.isdigit():
            out.append(char if seen < KEEP_FIRST or seen >= count - KEEP_LAST else "*")
            seen += 1
        else:
            out.append(char)
    return "".join(out)


def _masked_if_card_number(match: re.Match[str]) -> str:
    run = match.group(0)
    digits = re.sub(r"[^0-9]", "", run)
    return _mask_number(run) if luhn_valid(digits) else run


def mask_text(text: str) -> str:
    """``text`` with track data and Luhn-valid card numbers masked (see the module table)."""
    text = TRACK_1.sub(
        lambda m: f"B{_mask_number(m.group(1))}^{'*' * len(m.group(2))}^{'*' * len(m.group(3))}",
        text,
    )
    text = TRACK_2.sub(lambda m: f"{_mask_number(m.group(1))}={'*' * len(m.group(2))}", text)
    return PAN_RUN.sub(_masked_if_card_number, text)


# -- ZVT fields -------------------------------------------------------------------------------

SENSITIVE_BMPS = frozenset({0x22, 0x23, 0x24, 0x2D, 0x2E, 0x3A, 0x3D, 0xA7})
# Where each command's BMPs start in its data block (after password, config byte, …).
_BMP_OFFSET: dict[tuple[int, int], int] = {
    (0x04, 0x0F): 0,
    (0x04, 0xFF): 2,
    (0x06, 0x01): 0,
    (0x06, 0x0F): 0,
    (0x06, 0x1E): 1,
    (0x06, 0x00): 6,
    (0x06, 0x20): 3,
    (0x06, 0x22): 3,
    (0x06, 0x30): 3,
    (0x06, 0x31): 3,
    (0x06, 0x50): 3,
    (0x06, 0x93): 3,
}
# Commands whose data block starts with the 3-byte password (chapter 2).
PASSWORD_COMMANDS = frozenset(
    {(0x05, 0x01), (0x06, 0x00), (0x06, 0x20), (0x06, 0x22), (0x06, 0x30), (0x06, 0x31)}
    | {(0x06, 0x50), (0x06, 0x93)}
)


def sensitive_zvt_bytes(apdu: bytes) -> set[int]:
    """Indexes into ``apdu`` (a whole APDU) of card data and passwords, to be shown masked."""
    from drivers.zvt.apdu import BMPS, header_size, var_length

    sizes = header_size(apdu)
    if sizes is None:
        return set()
    start = sizes[0]
    control = (apdu[0], apdu[1])
    hidden: set[int] = set()
    if control in PASSWORD_COMMANDS:
        hidden.update(range(start, min(start + 3, len(apdu))))
    offset = _BMP_OFFSET.get(control)
    if offset is None:
        return hidden
    pos = start + offset
    while pos < len(apdu):  # walk the known BMPs; stop where the layout is unknown
        bmp = BMPS.get(apdu[pos])
        if bmp is None:
            break
        value = pos + 1
        try:
            if bmp.length in (-2, -3):
                size = var_length(apdu, value, -bmp.length, "field")
                value += -bmp.length
            elif bmp.length == -1:
                first = apdu[value] if value < len(apdu) else 0
                used = 1 if first < 0x80 else 1 + (first & 0x7F)
                size = int.from_bytes(apdu[value + 1 : value + used], "big") if used > 1 else first
                value += used
            else:
                size = bmp.length
        except DecodeError:
            break
        if bmp.number in SENSITIVE_BMPS:
            hidden.update(range(value, min(value + size, len(apdu))))
        pos = value + size
    return hidden
