"""ZVT commands the cash register sends, and the terminal's messages decoded (PA00P015 13.08).

=================================  =====  ===================================================
message                            APDU   data (chapter)
=================================  =====  ===================================================
Registration                       06 00  password, config-byte, [CC [03 service-byte]] (2.1)
Authorisation                      06 01  04 amount, 49 CC (2.2)
Log-Off                            06 02  – (2.24)
Repeat Receipt                     06 20  password [03 service-byte] (2.20)
Reversal                           06 30  password 87 receipt-no [04 amount] [49 CC] (2.9)
Refund                             06 31  password [04 amount] [49 CC] (2.15)
End-of-Day                         06 50  password (2.16)
Diagnosis                          06 70  – (2.17)
Abort                              06 B0  – (2.23)
Status-Enquiry                     05 01  [password] (2.56)
Status-Information        terminal 04 0F  27 result-code, BMPs, 06 TLV (3.1)
Intermediate Status       terminal 04 FF  status [timeout] [06 TLV] (3.7)
Print Line                terminal 06 D1  attribute text (3.5)
Print Text-Block          terminal 06 D3  06 TLV with 25 print-texts (3.6)
Completion                terminal 06 0F  BMPs, or SW-version + status after 05 01 (3.2)
Abort                     terminal 06 1E  [result-code [BMPs] [06 TLV]] (3.3, 2.22)
Initialisation                     06 93  password [BMPs] (2.18)
acknowledgement                    80 00  positive; 84 xx negative, xx a result code (5.2.3)
=================================  =====  ===================================================
"""

from __future__ import annotations

from typing import Any

from drivers.errors import DecodeError
from drivers.zvt.apdu import (
    BMPS,
    Apdu,
    bcd_encode,
    bcd_int,
    decode_bmps,
    encode_bmp,
    text,
    var_length,
)
from drivers.zvt.codes import (
    TERMINAL_STATUS,
    result_message,
    status_message,
)
from drivers.zvt.tlv import decode_tlv_container, parse_tlv, read_tlv_length

# Config byte (Table 1): ECR prints payment (02) and administration (04) receipts, wants
# intermediate status (08), and receives the receipts as print commands (80).
DEFAULT_CONFIG_BYTE = 0x8E
SERVICE_SEND_STATUS = 0x01  # Repeat Receipt: send the Status-Information again (Table 5)

ACKNOWLEDGE = Apdu(0x80, 0x00)


def negative(code: int) -> Apdu:
    return Apdu(0x84, code)


def _currency(code: str) -> bytes:
    return bcd_encode(int(code), 2)


def _amount(amount_minor: int) -> bytes:
    if amount_minor < 0 or amount_minor > 999_999_999_999:
        raise ValueError(f"an amount is 0 to 999999999999 minor units, not {amount_minor}")
    return encode_bmp(0x04, bcd_encode(amount_minor, 6))


def registration(
    password: str,
    currency: str = "978",
    config_byte: int = DEFAULT_CONFIG_BYTE,
    service_byte: int | None = None,
) -> Apdu:
    data = bcd_encode(password, 3) + bytes([config_byte]) + _currency(currency)
    if service_byte is not None:
        data += encode_bmp(0x03, bytes([service_byte]))
    return Apdu(0x06, 0x00, data)


def authorisation(amount_minor: int, currency: str = "978") -> Apdu:
    return Apdu(0x06, 0x01, _amount(amount_minor) + encode_bmp(0x49, _currency(currency)))


def refund(password: str, amount_minor: int, currency: str = "978") -> Apdu:
    data = bcd_encode(password, 3) + _amount(amount_minor) + encode_bmp(0x49, _currency(currency))
    return Apdu(0x06, 0x31, data)


def reversal(password: str, receipt_number: int) -> Apdu:
    data = bcd_encode(password, 3) + encode_bmp(0x87, bcd_encode(receipt_number, 2))
    return Apdu(0x06, 0x30, data)


def end_of_day(password: str) -> Apdu:
    return Apdu(0x06, 0x50, bcd_encode(password, 3))


def repeat_receipt(password: str, service_byte: int = SERVICE_SEND_STATUS) -> Apdu:
    return Apdu(0x06, 0x20, bcd_encode(password, 3) + encode_bmp(0x03, bytes([service_byte])))


def abort() -> Apdu:
    return Apdu(0x06, 0xB0)


def log_off() -> Apdu:
    return Apdu(0x06, 0x02)


def diagnosis() -> Apdu:
    return Apdu(0x06, 0x70)


def status_enquiry(password: str | None = None) -> Apdu:
    return Apdu(0x05, 0x01, bcd_encode(password, 3) if password else b"")


# -- decoding ----------------------------------------------------------------------------------


def _with_result(fields: dict[str, Any]) -> dict[str, Any]:
    if "result_code" in fields:
        fields["result_message"] = result_message(fields["result_code"])
    return fields


def _status_information(data: bytes) -> dict[str, Any]:
    return _with_result(decode_bmps(data))


def _intermediate_status(data: bytes) -> dict[str, Any]:
    if not data:
        raise DecodeError("Intermediate Status-Information 04 FF without a status byte")
    fields: dict[str, Any] = {"status": data[0], "status_text": status_message(data[0])}
    if len(data) > 1:
        fields["timeout_minutes"] = bcd_int(data[1:2], "timeout byte")
    if len(data) > 2:
        fields.update(decode_bmps(data, 2))  # a TLV container (06), or kept raw
    return fields


def _print_line(data: bytes) -> dict[str, Any]:
    if not data:
        raise DecodeError("Print Line 06 D1 without an attribute byte")
    body, tlv = data[1:], None
    if 0x06 in body:  # text may be followed by a TLV container (tag 1F07 receipt type)
        cut = body.rfind(b"\x06")
        try:
            size, used = read_tlv_length(body, cut + 1)
            if cut + 1 + used + size == len(body):
                body, tlv = body[:cut], decode_tlv_container(body[cut + 1 + used :])
        except DecodeError:
            pass
    fields: dict[str, Any] = {"attribute": data[0], "text": text(body)}
    if tlv is not None:
        fields["tlv"] = tlv
    return fields


def _completion(data: bytes) -> dict[str, Any]:
    """BMP fields, or after Status-Enquiry: LLLVAR software version, terminal status (2.56.5)."""
    if len(data) >= 3 and all(0xF0 <= byte <= 0xF9 for byte in data[:3]):  # an LLLVAR
        size = var_length(data, 0, 3, "software version")
        if 3 + size > len(data):
            raise DecodeError(f"software version needs {size} byte(s), {len(data) - 3} left")
        fields: dict[str, Any] = {"software_version": text(data[3 : 3 + size])}
        rest = data[3 + size :]
        if rest:
            fields["terminal_status"] = rest[0]
            fields["terminal_status_text"] = TERMINAL_STATUS.get(rest[0], f"status {rest[0]:02X}")
            fields.update(decode_bmps(rest, 1))
        return fields
    return _with_result(decode_bmps(data))


def _abort(data: bytes) -> dict[str, Any]:
    """Result code, then BMPs: 06 TLV (3.3), 87 receipt numbers of open pre-authorisations
    (2.22); with 6F "wrong currency" the terminal's currency code alone (2.2.9). Some
    terminals send 06 1E 00: an abort with no result code at all."""
    if not data:
        return {"result_code": None, "result_message": "aborted without a result code"}
    fields = _with_result({"result_code": data[0]})
    rest = data[1:]
    if len(rest) == 2 and rest[0] not in BMPS:
        fields["currency"] = str(bcd_int(rest, "currency code")).rjust(3, "0")
    else:
        fields.update(decode_bmps(data, 1))
    return fields


def _password_then_bmps(data: bytes) -> dict[str, Any]:
    if len(data) < 3:
        raise DecodeError(f"expected a 3-byte password, found {len(data)} byte(s)")
    return {"password": "******", **decode_bmps(data, 3)}


def _registration(data: bytes) -> dict[str, Any]:
    if len(data) < 4:
        raise DecodeError("Registration 06 00 needs a password and a config byte")
    fields: dict[str, Any] = {"password": "******", "config_byte": data[3]}
    if len(data) >= 6:
        fields["currency"] = str(bcd_int(data[4:6], "currency code")).rjust(3, "0")
    fields.update(decode_bmps(data, 6) if len(data) > 6 else {})
    if len(data) == 5:
        raise DecodeError("Registration 06 00: currency code cut off")
    return fields


def _acknowledgement(apdu: Apdu) -> dict[str, Any]:
    fields: dict[str, Any] = {"positive": apdu.cls == 0x80 or apdu.instr == 0x00}
    if apdu.cls == 0x84:
        fields["result_code"] = apdu.instr
        fields["result_message"] = result_message(apdu.instr)
    if apdu.data:
        fields["data"] = apdu.data.hex().upper()
    return fields


_DECODERS = {
    (0x04, 0x0F): _status_information,
    (0x04, 0xFF): _intermediate_status,
    (0x06, 0xD1): _print_line,
    (0x06, 0xD3): decode_bmps,
    (0x06, 0x0F): _completion,
    (0x06, 0x1E): _abort,
    (0x06, 0x00): _registration,
    (0x06, 0x30): _password_then_bmps,
    (0x06, 0x31): _password_then_bmps,
    (0x06, 0x20): _password_then_bmps,
    (0x06, 0x50): _password_then_bmps,
    (0x06, 0x93): _password_then_bmps,
}


def decode_message(apdu: Apdu) -> dict[str, Any]:
    """The fields of any APDU this driver knows, else its data as BMP fields."""
    if apdu.cls in (0x80, 0x84):
        return _acknowledgement(apdu)
    decoder = _DECODERS.get(apdu.control, decode_bmps)
    return decoder(apdu.data)


def print_lines(apdu: Apdu) -> list[tuple[int, str]]:
    """(attribute, text) for each line of a Print Line or Print Text-Block (3.5, 3.6)."""
    if apdu.control == (0x06, 0xD1):
        fields = _print_line(apdu.data)
        return [(fields["attribute"], fields["text"])]
    if not apdu.data or apdu.data[0] != 0x06:
        raise DecodeError("Print Text-Block 06 D3 must hold a TLV container (06)")
    size, used = read_tlv_length(apdu.data, 1)
    lines: list[tuple[int, str]] = []
    for obj in parse_tlv(apdu.data[1 + used : 1 + used + size]):
        if obj.tag != 0x25:
            continue
        for item in obj.children:
            if item.tag == 0x07:
                lines.append((0, text(item.value)))
            elif item.tag == 0x09 and item.value:
                lines.append((item.value[0], ""))
    return lines
