"""ZVT APDUs and their bitmap (BMP) fields, as data.

An APDU is ``CLASS INSTR LENGTH DATA`` (PA00P016_04 §5.2.1). The length is one byte for 0–254
data bytes; ``FF`` announces an extended length of two bytes, low byte first, for 0–65535
(§5.2.4). Data blocks are mostly bitmap fields: one byte naming the field, then its value in
the format the bitmap table gives (PA00P015 13.08 chapter 13, "Summary of utilised BMPs";
LLVAR/LLLVAR in PA00P016_04 §5.2.8).

=====  ======================  ==========================  =======================
BMP    key                     format                      decoded as
=====  ======================  ==========================  =======================
04     amount_minor            6 byte BCD                  int (minor units)
0B     trace_number            3 byte BCD                  int
0C     time                    3 byte BCD HHMMSS           "HH:MM:SS"
0D     date                    2 byte BCD MMDD             "MM-DD"
22     masked_pan              LLVAR BCD, E = masked       str, never unmasked
27     result_code             1 byte binary               int
29     terminal_id             4 byte BCD                  8-digit str
3C     additional_text         LLLVAR ASCII                str
49     currency                2 byte BCD                  ISO 4217 numeric str
87     receipt_number          2 byte BCD                  int
8B     card_name               LLVAR ASCII, NUL-ended      str
06     tlv                     TLV container (§9)          dict (see ``tlv.py``)
=====  ======================  ==========================  =======================

and every other BMP of chapter 13 in :data:`BMPS`. Card numbers (BMP 22) and track data
(23, 24, 2D) never leave this module in full: see :func:`mask_pan`.

Real terminals send more than the table: vendor BMPs, TLV containers cut short. A BMP that is
not in the table has no length we could know, so :func:`decode_bmps` keeps it and everything
after it as :class:`Undecoded` (raw hex and the reason) under the key ``undecoded``; a TLV
container whose objects overrun it keeps the objects that fit. Only bytes that break the
framing (a known field cut off, a bad LLVAR length, an amount that is not BCD) are refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import DecodeError
from drivers.zvt.tlv import (
    decode_tlv_container,
    decode_tlv_prefix,
    encode_tlv_length,
    read_tlv_length,
)

# -- the APDU ----------------------------------------------------------------------------------

COMMANDS: dict[tuple[int, int], str] = {
    (0x06, 0x00): "Registration",
    (0x06, 0x01): "Authorisation",
    (0x06, 0x02): "Log-Off",
    (0x06, 0x03): "Account Balance Request",
    (0x06, 0x0F): "Completion",
    (0x06, 0x12): "Reprint Receipts",
    (0x06, 0x1E): "Abort (from terminal)",
    (0x06, 0x20): "Repeat Receipt",
    (0x06, 0x22): "Pre-Authorisation",
    (0x06, 0x30): "Reversal",
    (0x06, 0x31): "Refund",
    (0x06, 0x50): "End-of-Day",
    (0x06, 0x70): "Diagnosis",
    (0x06, 0x93): "Initialisation",
    (0x06, 0xB0): "Abort",
    (0x06, 0xD1): "Print Line",
    (0x06, 0xD3): "Print Text-Block",
    (0x04, 0x01): "Set Date and Time in ECR",
    (0x04, 0x0F): "Status-Information",
    (0x04, 0xFF): "Intermediate Status-Information",
    (0x05, 0x01): "Status-Enquiry",
    (0x80, 0x00): "Positive Acknowledgement",
}


@dataclass(frozen=True, slots=True)
class Apdu:
    """One application message: control field (class, instruction) and its data block."""

    cls: int
    instr: int
    data: bytes = b""

    @property
    def control(self) -> tuple[int, int]:
        return (self.cls, self.instr)

    @property
    def name(self) -> str:
        if self.cls == 0x84:
            return "Negative Acknowledgement"
        return COMMANDS.get(self.control, f"unknown command {self.cls:02X} {self.instr:02X}")

    def encode(self) -> bytes:
        return encode_apdu(self)


def encode_apdu(apdu: Apdu) -> bytes:
    size = len(apdu.data)
    if size > 0xFFFF:
        raise ValueError(f"an APDU carries at most 65535 data bytes, not {size}")
    length = bytes([size]) if size < 0xFF else b"\xff" + size.to_bytes(2, "little")
    return bytes([apdu.cls, apdu.instr]) + length + apdu.data


def header_size(head: bytes) -> tuple[int, int] | None:
    """(header length, data length) once enough of ``head`` has arrived, else None."""
    if len(head) < 3:
        return None
    if head[2] != 0xFF:
        return 3, head[2]
    if len(head) < 5:
        return None
    return 5, int.from_bytes(head[3:5], "little")


def decode_apdu(raw: bytes) -> Apdu:
    """The APDU in ``raw``, which must hold exactly one."""
    sizes = header_size(raw)
    if sizes is None:
        raise DecodeError(f"truncated APDU: {len(raw)} byte(s), a header needs 3 (or 5)")
    start, size = sizes
    if len(raw) - start != size:
        raise DecodeError(
            f"APDU {raw[0]:02X} {raw[1]:02X} says {size} data bytes but "
            f"{len(raw) - start} follow the header"
        )
    return Apdu(raw[0], raw[1], bytes(raw[start:]))


# -- field codecs ------------------------------------------------------------------------------


def bcd_digits(raw: bytes) -> str:
    return raw.hex().upper()


def bcd_int(raw: bytes, what: str | None = None) -> int:
    """Packed BCD as a number; ``what`` names the field in the error (``"timeout byte"``)."""
    digits = bcd_digits(raw)
    if not digits.isdigit():
        shown = " ".join(f"0x{byte:02X}" for byte in raw) or "nothing"
        raise DecodeError(f"{what or 'value'} {shown} is not packed BCD")
    return int(digits)


def bcd_encode(value: int | str, size: int) -> bytes:
    """``value`` as ``size`` bytes of packed BCD, with leading zeros (1.2: "123456" → 12 34 56)."""
    digits = str(value).rjust(size * 2, "0")
    if not digits.isdigit() or len(digits) != size * 2:
        raise ValueError(f"{value!r} does not fit {size} bytes of BCD")
    return bytes.fromhex(digits)


def mask_pan(digits: str) -> str:
    """At most the first six and last four digits; shorter numbers keep only the last four.

    The terminal normally masks (``E`` nibbles, shown as ``*``); this is the second line of
    defence for a terminal that sends a full card number.
    """
    if len(digits) > 12:
        keep_head, keep_tail = 6, 4
    else:
        keep_head, keep_tail = 0, min(4, max(len(digits) - 4, 0))
    middle = "*" * (len(digits) - keep_head - keep_tail)
    return digits[:keep_head] + middle + digits[len(digits) - keep_tail :]


def decode_pan(raw: bytes) -> str:
    """BMP 22: BCD nibbles, E = a masked digit, D = separator, F = padding (chapter 13)."""
    out = []
    for nibble in raw.hex().upper():
        if nibble in "DF":
            break
        out.append("*" if nibble == "E" else nibble)
    return mask_pan("".join(out))


def decode_track_1(raw: bytes) -> str:
    """BMP 2D: track 1 is ASCII (``B<card number>^NAME^…``); only the masked number stays."""
    number = raw.decode("latin-1").lstrip("%B").split("^", 1)[0]
    return mask_pan("".join("*" if c == "E" else c for c in number if c.isdigit() or c == "E"))


def text(raw: bytes) -> str:
    """Texts are in the ZVT 8-bit character set, CP437 (chapter 15.2), often NUL-terminated."""
    return raw.rstrip(b"\x00").decode("cp437")


def currency(raw: bytes) -> str:
    return str(bcd_int(raw)).rjust(3, "0")


def hhmmss(raw: bytes) -> str:
    d = bcd_digits(raw)
    return f"{d[0:2]}:{d[2:4]}:{d[4:6]}"


def mmdd(raw: bytes) -> str:
    d = bcd_digits(raw)
    return f"{d[0:2]}-{d[2:4]}"


def yymmdd(raw: bytes) -> str:
    d = bcd_digits(raw)
    return f"{d[0:2]}-{d[2:4]}-{d[4:6]}"


def binary(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def hexstr(raw: bytes) -> str:
    return raw.hex().upper()


def redacted(raw: bytes) -> str:
    return "*" * (len(raw) * 2)


def receipt_number(raw: bytes) -> int | None:
    """BMP 87; ``FF FF`` stands for "no receipt" (e.g. no open pre-authorisation, 2.22)."""
    return None if raw == b"\xff\xff" else bcd_int(raw, "receipt number")


@dataclass(frozen=True, slots=True)
class Undecoded:
    """Bytes kept as they came: from ``offset`` in the data block to its end, and why."""

    offset: int
    hex: str
    reason: str


# -- the bitmap table (chapter 13, with formats from §3.1.1) ------------------------------------

LLVAR = -2
LLLVAR = -3
TLV = -1


@dataclass(frozen=True, slots=True)
class Bmp:
    number: int
    key: str
    length: int  # bytes, or LLVAR / LLLVAR / TLV
    decode: Callable[[bytes], Any]


def _table(*rows: tuple[int, str, int, Callable[[bytes], Any]]) -> dict[int, Bmp]:
    return {number: Bmp(number, key, length, fn) for number, key, length, fn in rows}


BMPS: dict[int, Bmp] = _table(
    (0x01, "timeout", 1, binary),
    (0x02, "max_status_infos", 1, binary),
    (0x03, "service_byte", 1, binary),
    (0x04, "amount_minor", 6, bcd_int),
    (0x05, "pump_number", 1, binary),
    (0x06, "tlv", TLV, decode_tlv_container),
    (0x0B, "trace_number", 3, bcd_int),
    (0x0C, "time", 3, hhmmss),
    (0x0D, "date", 2, mmdd),
    (0x0E, "expiry_date", 2, bcd_digits),
    (0x17, "card_sequence_number", 2, bcd_int),
    (0x19, "payment_type", 1, binary),
    (0x22, "masked_pan", LLVAR, decode_pan),
    (0x23, "track_2", LLVAR, decode_pan),
    (0x24, "track_3", LLLVAR, decode_pan),
    (0x27, "result_code", 1, binary),
    (0x29, "terminal_id", 4, bcd_digits),
    (0x2A, "vu_number", 15, text),
    (0x2D, "track_1", LLVAR, decode_track_1),
    (0x2E, "chip_data", LLLVAR, hexstr),
    (0x37, "original_trace_number", 3, bcd_int),
    (0x3A, "cvv", 2, redacted),
    (0x3B, "aid", 8, text),
    (0x3C, "additional_text", LLLVAR, text),
    (0x3D, "password", 3, redacted),
    (0x49, "currency", 2, currency),
    (0x4C, "blocked_goods_groups", LLVAR, bcd_digits),
    (0x60, "individual_totals", LLLVAR, hexstr),
    (0x87, "receipt_number", 2, receipt_number),
    (0x88, "turnover_number", 3, bcd_int),
    (0x8A, "card_type", 1, binary),
    (0x8B, "card_name", LLVAR, text),
    (0x8C, "card_type_network", 1, binary),
    (0x9A, "geldkarte_record", LLLVAR, hexstr),
    (0xA0, "result_code_as", 1, binary),
    (0xA7, "ef_id", LLVAR, redacted),
    (0xAA, "date_full", 3, yymmdd),
    (0xAF, "ef_info", LLLVAR, hexstr),
    (0xBA, "aid_parameter", 5, hexstr),
    (0xD2, "card_output_direction", 1, binary),
    (0xFA, "card_reader_activation", 1, binary),
)


def var_length(data: bytes, pos: int, digits: int, what: str) -> int:
    """The value length of an LLVAR ``FxFy`` / LLLVAR ``FxFyFz`` at ``pos`` (PA00P016_04
    §5.2.8); ``what`` names the field in the error."""
    head = data[pos : pos + digits]
    if len(head) < digits:
        raise DecodeError(f"{what} is cut off in its length")
    if any(b & 0xF0 != 0xF0 or b & 0x0F > 9 for b in head):
        raise DecodeError(
            f"{what} has a bad length {head.hex(' ').upper()} (each byte F0 to F9 expected)"
        )
    return int("".join(str(b & 0x0F) for b in head))


def _field_extent(data: bytes, pos: int, bmp: Bmp) -> tuple[int, int]:
    """(start, end) of the value of ``bmp`` that begins at ``pos``; a TLV container's end may
    lie past the data (the caller keeps what is there)."""
    if bmp.length == TLV:
        size, used = read_tlv_length(data, pos)
        return pos + used, pos + used + size
    if bmp.length in (LLVAR, LLLVAR):
        size = var_length(data, pos, -bmp.length, f"BMP {bmp.number:02X} ({bmp.key})")
        start = pos - bmp.length
    else:
        size, start = bmp.length, pos
    if start + size > len(data):
        raise DecodeError(
            f"BMP {bmp.number:02X} ({bmp.key}) needs {size} byte(s), {len(data) - start} left"
        )
    return start, start + size


def _tlv_field(data: bytes, start: int, end: int) -> tuple[dict[str, Any], Undecoded | None]:
    """A TLV container's objects; what does not parse (a cut container) stays raw."""
    content = data[start:end]
    objects, stop, problem = decode_tlv_prefix(content)
    if end > len(data):
        problem = f"the TLV container announces {end - start} byte(s), {len(content)} follow"
    if problem is None:
        return objects, None
    return objects, Undecoded(start + stop, data[start + stop :].hex().upper(), problem)


def decode_bmps(data: bytes, offset: int = 0) -> dict[str, Any]:
    """Every bitmap field of a data block, keyed by name; repeated fields keep the last value.

    An unknown BMP ends the decoding: it and the rest are kept under ``undecoded``.
    """
    fields: dict[str, Any] = {}
    pos = offset
    while pos < len(data):
        bmp = BMPS.get(data[pos])
        if bmp is None:
            fields["undecoded"] = Undecoded(
                pos,
                data[pos:].hex().upper(),
                f"BMP {data[pos]:02X} is not in the published table (PA00P015 chapter 13), "
                "so its length is unknown",
            )
            break
        start, end = _field_extent(data, pos + 1, bmp)
        if bmp.length == TLV:
            fields[bmp.key], undecoded = _tlv_field(data, start, end)
            if undecoded is not None:
                fields["undecoded"] = undecoded
                break
            pos = end
            continue
        try:
            fields[bmp.key] = bmp.decode(data[start:end])
        except DecodeError as exc:
            raise DecodeError(f"BMP {bmp.number:02X} ({bmp.key}): {exc}") from exc
        pos = end
    return fields


def encode_bmp(number: int, value: bytes) -> bytes:
    """One bitmap field; LLVAR/LLLVAR/TLV lengths are added from the table."""
    bmp = BMPS[number]
    if bmp.length == TLV:
        return bytes([number]) + encode_tlv_length(len(value)) + value
    if bmp.length in (LLVAR, LLLVAR):
        digits = str(len(value)).rjust(-bmp.length, "0")
        if len(digits) != -bmp.length:
            raise ValueError(f"BMP {number:02X} holds at most {10**-bmp.length - 1} bytes")
        return bytes([number]) + bytes(0xF0 | int(d) for d in digits) + value
    if len(value) != bmp.length:
        raise ValueError(f"BMP {number:02X} ({bmp.key}) is {bmp.length} byte(s), not {len(value)}")
    return bytes([number]) + value
