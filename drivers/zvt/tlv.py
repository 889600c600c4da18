"""The ZVT TLV container (BMP 06), PA00P015 13.08 chapter 9.

A tag is one byte, or more when its low five bits are all set (then each further byte has its
top bit set while another follows, §9.3.1); bit 6 of the first byte marks a constructed object
that holds further objects. A length is one byte for 0–127, ``81 nn`` for up to 255 and
``82 hh ll`` (high byte first) for up to 65535 (§9.3.2).

====  ============================  =================
tag   key                           decoded as
====  ============================  =================
07    text_lines                    str (CP437)
09    attribute                     int (as Print Line)
24    display_texts                 constructed
25    print_texts                   constructed
43    application_id                hex str
1F10  cardholder_authentication     int
1F12  card_technology               int
1F16  extended_error_code           hex str
1F17  extended_error_text           str
====  ============================  =================

and the rest of §9.4.1 in :data:`TAGS`; unknown tags decode as hex under ``tag_XXXX``.
Track data (1F08–1F0A) and a PAN for matching (1F1A) are reduced to a masked number.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from drivers.errors import DecodeError


@dataclass(frozen=True, slots=True)
class TlvObject:
    tag: int
    value: bytes
    children: tuple[TlvObject, ...] = ()

    @property
    def constructed(self) -> bool:
        return bool(_first_byte(self.tag) & 0x20)


def _first_byte(tag: int) -> int:
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")[0]


def _text(raw: bytes) -> str:
    return raw.rstrip(b"\x00").decode("cp437")


def _int(raw: bytes) -> int:
    return int.from_bytes(raw, "big")


def _hex(raw: bytes) -> str:
    return raw.hex().upper()


def _bcd(raw: bytes) -> int | str:
    digits = raw.hex()
    return int(digits) if digits.isdigit() else digits.upper()


def _masked(raw: bytes) -> str:
    from drivers.zvt.apdu import decode_pan, decode_track_1

    return decode_pan(raw) if not raw.isascii() or not raw.isalnum() else decode_track_1(raw)


TAGS: dict[int, tuple[str, Callable[[bytes], Any]]] = {
    0x01: ("reversal_id", _hex),
    0x07: ("text_lines", _text),
    0x08: ("receipt_number", _bcd),
    0x09: ("attribute", _int),
    0x0A: ("zvt_command", _hex),
    0x0B: ("info_field", _text),
    0x0C: ("info_field_2", _text),
    0x10: ("merchant_display_size", _hex),
    0x11: ("customer_display_size", _hex),
    0x12: ("printer_line_width", _int),
    0x13: ("extra_result_code", _hex),
    0x14: ("character_set", _int),
    0x15: ("language_code", _text),
    0x1A: ("max_apdu_length", _int),
    0x1B: ("diagnosis_type", _int),
    0x24: ("display_texts", _hex),
    0x25: ("print_texts", _hex),
    0x26: ("permitted_zvt_commands", _hex),
    0x27: ("character_sets", _hex),
    0x28: ("languages", _hex),
    0x2E: ("time_stamp", _hex),
    0x2F: ("payment_type", _hex),
    0x40: ("emv_config", _hex),
    0x41: ("zvt_card_type_id", _int),
    0x42: ("application_name", _text),
    0x43: ("application_id", _hex),
    0x44: ("application_preferred_name", _text),
    0x45: ("receipt_parameter", _hex),
    0x46: ("emv_print_data_customer", _text),
    0x47: ("emv_print_data_merchant", _text),
    0x48: ("priority", _hex),
    0x49: ("network_card_type_id", _int),
    0x4B: ("issuer_country_code", _hex),
    0x60: ("application", _hex),
    0x1F04: ("receipt_parameter_ecr", _hex),
    0x1F05: ("transaction_parameter", _hex),
    0x1F07: ("receipt_type", _int),
    0x1F08: ("track_1", _masked),
    0x1F09: ("track_2", _masked),
    0x1F0A: ("track_3", _masked),
    0x1F0E: ("date", _hex),
    0x1F0F: ("time", _hex),
    0x1F10: ("cardholder_authentication", _int),
    0x1F11: ("online_flag", _int),
    0x1F12: ("card_technology", _int),
    0x1F16: ("extended_error_code", _hex),
    0x1F17: ("extended_error_text", _text),
    0x1F1A: ("pan_for_matching", _masked),
    0x1F2B: ("trace_number_long", _bcd),
    0x1F37: ("receipt_information", _hex),
    0x1F40: ("device_name", _text),
    0x1F41: ("software_version", _text),
    0x1F42: ("serial_number", _hex),
    0x1F43: ("device_state", _int),
    0x1F44: ("terminal_identifier", _hex),
    0x1F71: ("recognised_tags", _hex),
}


def read_tlv_length(data: bytes, pos: int) -> tuple[int, int]:
    """(length, bytes used) of the TLV length that starts at ``pos`` (§9.3.2)."""
    if pos >= len(data):
        raise DecodeError("TLV length is missing")
    first = data[pos]
    if first < 0x80:
        return first, 1
    count = first & 0x7F
    if count not in (1, 2):
        raise DecodeError(f"TLV length byte {first:02X} is invalid (only 81 and 82 are defined)")
    if pos + 1 + count > len(data):
        raise DecodeError("TLV length is cut off")
    return int.from_bytes(data[pos + 1 : pos + 1 + count], "big"), 1 + count


def encode_tlv_length(size: int) -> bytes:
    if size < 0x80:
        return bytes([size])
    if size <= 0xFF:
        return bytes([0x81, size])
    return b"\x82" + size.to_bytes(2, "big")


def _read_tag(data: bytes, pos: int) -> tuple[int, int]:
    tag, end = data[pos], pos + 1
    if data[pos] & 0x1F == 0x1F:
        while True:
            if end >= len(data):
                raise DecodeError("TLV tag is cut off")
            tag = tag << 8 | data[end]
            end += 1
            if not data[end - 1] & 0x80:
                break
    return tag, end


MAX_DEPTH = 16  # constructed objects inside constructed objects; real messages use 2 or 3


class TlvTooDeep(DecodeError):
    """Constructed objects nested past :data:`MAX_DEPTH`: refused, never kept raw."""


def parse_tlv(data: bytes, depth: int = 0) -> tuple[TlvObject, ...]:
    """The data objects in ``data`` (the content of a container, without its length)."""
    if depth > MAX_DEPTH:
        raise TlvTooDeep(f"TLV objects nested deeper than {MAX_DEPTH} levels")
    objects = []
    pos = 0
    while pos < len(data):
        tag, pos = _read_tag(data, pos)
        size, used = read_tlv_length(data, pos)
        pos += used
        if pos + size > len(data):
            raise DecodeError(f"TLV tag {tag:02X} needs {size} byte(s), {len(data) - pos} left")
        value = bytes(data[pos : pos + size])
        pos += size
        children = parse_tlv(value, depth + 1) if _first_byte(tag) & 0x20 else ()
        objects.append(TlvObject(tag, value, children))
    return tuple(objects)


def tlv_to_dict(objects: tuple[TlvObject, ...]) -> dict[str, Any]:
    """Data objects by key; a tag that repeats (text lines) becomes a list."""
    out: dict[str, Any] = {}
    for obj in objects:
        name, decode = TAGS.get(obj.tag, (f"tag_{obj.tag:02X}", _hex))
        value = tlv_to_dict(obj.children) if obj.constructed else decode(obj.value)
        if name in out:
            previous = out[name]
            out[name] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            out[name] = value
    return out


def decode_tlv_container(content: bytes) -> dict[str, Any]:
    return tlv_to_dict(parse_tlv(content))


def decode_tlv_prefix(content: bytes) -> tuple[dict[str, Any], int, str | None]:
    """The top-level objects of ``content`` that parse whole, the offset where parsing
    stopped and why (None when all of it parsed). Real terminals cut containers short."""
    objects: list[TlvObject] = []
    pos = 0
    while pos < len(content):
        try:
            (obj,) = parse_tlv(content[pos : pos + _object_size(content, pos)])
        except TlvTooDeep:
            raise
        except DecodeError as exc:
            return tlv_to_dict(tuple(objects)), pos, f"TLV object at byte {pos}: {exc}"
        objects.append(obj)
        pos += _object_size(content, pos)
    return tlv_to_dict(tuple(objects)), pos, None


def _object_size(data: bytes, pos: int) -> int:
    """Tag, length and value bytes of the object at ``pos`` (which may overrun ``data``)."""
    _tag, end = _read_tag(data, pos)
    size, used = read_tlv_length(data, end)
    return end + used + size - pos


def encode_tlv(tag: int, value: bytes) -> bytes:
    size = (tag.bit_length() + 7) // 8 or 1
    return tag.to_bytes(size, "big") + encode_tlv_length(len(value)) + value


def find(objects: tuple[TlvObject, ...], tag: int) -> TlvObject | None:
    """The first object with ``tag``, searched depth-first."""
    for obj in objects:
        if obj.tag == tag:
            return obj
        found = find(obj.children, tag)
        if found is not None:
            return found
    return None
