"""The exchanges Kassa makes with a contactless card or phone: SELECT PPSE, and SELECT of its
own loyalty application (:data:`LOYALTY_AID`), whose member id is the one stable identity a
phone offers (its UID is random at every tap).

The PPSE (Proximity Payment System Environment, EMV Book B §3.3) answers with an FCI whose
directory entries (tag 61) name the card's payment applications: AID (tag 4F) and label
(tag 50). That is enough to show "VISA DEBIT" on the cashier screen. Records, the PAN and
GET PROCESSING OPTIONS are never requested: the card terminal handles payment, not us.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.errors import DecodeError

PPSE_NAME = b"2PAY.SYS.DDF01"
#: Kassa's loyalty application on a phone's wallet or a store card (a proprietary AID: an
#: unregistered RID starts with F, ISO/IEC 7816-5 §5.2). Its FCI carries the member id.
LOYALTY_AID = bytes.fromhex("F04B4153534101")
#: SELECT by DF name (CLA 00 INS A4 P1 04 P2 00), Lc 0E, "2PAY.SYS.DDF01", Le 00.
SELECT_PPSE = bytes.fromhex("00A404000E") + PPSE_NAME + b"\x00"
SW_OK = b"\x90\x00"


@dataclass(frozen=True, slots=True)
class Tlv:
    """One BER-TLV data object (ISO/IEC 7816-4 §5.2, EMV Book 3 Annex B)."""

    tag: bytes
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(self.tag[0] & 0x20)

    def children(self) -> list[Tlv]:
        return parse_tlv(self.value) if self.constructed else []


def parse_tlv(data: bytes) -> list[Tlv]:
    """The data objects in ``data``, in order; 00/FF padding between them is skipped."""
    items: list[Tlv] = []
    position = 0
    while position < len(data):
        if data[position] in (0x00, 0xFF):
            position += 1
            continue
        tag, position = _read_tag(data, position)
        length, position = _read_length(data, position)
        if position + length > len(data):
            raise DecodeError(f"TLV {tag.hex().upper()} claims {length} bytes; fewer are left")
        items.append(Tlv(tag, data[position : position + length]))
        position += length
    return items


def _read_tag(data: bytes, position: int) -> tuple[bytes, int]:
    start = position
    position += 1
    if data[start] & 0x1F == 0x1F:  # more tag bytes follow while bit 8 is set
        while position < len(data) and data[position] & 0x80:
            position += 1
        position += 1
    if position > len(data):
        raise DecodeError("TLV tag runs past the end of the data")
    return data[start:position], position


def _read_length(data: bytes, position: int) -> tuple[int, int]:
    if position >= len(data):
        raise DecodeError("TLV without a length")
    first = data[position]
    if first < 0x80:
        return first, position + 1
    count = first & 0x7F
    if count == 0 or count > 3 or position + 1 + count > len(data):
        raise DecodeError(f"TLV length byte 0x{first:02X} is not a usable length")
    return int.from_bytes(data[position + 1 : position + 1 + count], "big"), position + 1 + count


def select_by_aid(aid: bytes) -> bytes:
    """SELECT by DF name (ISO/IEC 7816-4 §11.2.2): 00 A4 04 00 Lc AID 00."""
    return bytes([0x00, 0xA4, 0x04, 0x00, len(aid)]) + aid + b"\x00"


def loyalty_member_id(response: bytes) -> str | None:
    """The member id in the answer to SELECT :data:`LOYALTY_AID`: the value of tag C0 (a
    private tag, ISO/IEC 7816-4 §5.2) anywhere in its FCI, as text; None when the application
    is absent (a status other than 90 00, e.g. 6A 82) or names no member."""
    if len(response) < 2 or response[-2:] != SW_OK:
        return None
    for item in _walk(parse_tlv(response[:-2])):
        if item.tag == b"\xc0" and item.value:
            return item.value.decode("ascii", errors="replace").strip() or None
    return None


def ppse_applications(response: bytes) -> tuple[tuple[str, str], ...]:
    """(AID in hex, label) for each directory entry of a SELECT PPSE response (FCI + SW1 SW2).

    Raises :class:`DecodeError` for a status word other than 90 00 or a malformed FCI.
    """
    if len(response) < 2 or response[-2:] != SW_OK:
        raise DecodeError(f"SELECT PPSE answered status {response[-2:].hex(' ').upper()}")
    entries = [item for item in _walk(parse_tlv(response[:-2])) if item.tag == b"\x61"]
    return tuple(_application(entry) for entry in entries)


def _walk(items: list[Tlv]) -> list[Tlv]:
    found: list[Tlv] = []
    for item in items:
        found.append(item)
        if item.constructed and item.tag != b"\x61":
            found.extend(_walk(item.children()))
    return found


def _application(entry: Tlv) -> tuple[str, str]:
    fields = {item.tag: item.value for item in entry.children()}
    label = fields.get(b"\x50", b"").decode("ascii", errors="replace").strip()
    return fields.get(b"\x4f", b"").hex().upper(), label
