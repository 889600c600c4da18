"""PN532 host-link frames (NXP UM0701-02 §6.2.1): encode, decode, and the chip's facts as data.

================================  ===========================================================
Frame (UM0701-02 section)         Bytes
================================  ===========================================================
normal information (§6.2.1.1)     00 00 FF LEN LCS TFI PD0…PDn DCS 00   (LEN counts TFI+data)
extended information (§6.2.1.2)   00 00 FF FF FF LENM LENL LCS TFI PD0…PDn DCS 00
ACK (§6.2.1.3)                    00 00 FF 00 FF 00
NACK (§6.2.1.4)                   00 00 FF FF 00 00
error (§6.2.1.5)                  00 00 FF 01 FF 7F 81 00   (syntax error at application level)
================================  ===========================================================

LEN + LCS ≡ 0 and TFI + PD0 + … + PDn + DCS ≡ 0 (mod 256). TFI is D4 from host to PN532 and
D5 back; PD0 is the command code, and a response's code is the command's plus one. The chip
accepts at most 264 data bytes (265 with TFI) and answers in the smallest frame that fits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import DecodeError

HOST_TO_PN532 = 0xD4
PN532_TO_HOST = 0xD5
START_CODE = b"\x00\xff"
ACK_BYTES = bytes.fromhex("0000ff00ff00")
NACK_BYTES = bytes.fromhex("0000ffff0000")
ERROR_BYTES = bytes.fromhex("0000ff01ff7f8100")
MAX_DATA = 264  # PD0…PDn, UM0701-02 §6.2.1.2

#: Command codes (UM0701-02 §7, table 17).
CMD: dict[int, str] = {
    0x00: "Diagnose",
    0x02: "GetFirmwareVersion",
    0x04: "GetGeneralStatus",
    0x06: "ReadRegister",
    0x08: "WriteRegister",
    0x0C: "ReadGPIO",
    0x0E: "WriteGPIO",
    0x10: "SetSerialBaudRate",
    0x12: "SetParameters",
    0x14: "SAMConfiguration",
    0x16: "PowerDown",
    0x32: "RFConfiguration",
    0x40: "InDataExchange",
    0x42: "InCommunicateThru",
    0x44: "InDeselect",
    0x46: "InJumpForPSL",
    0x4A: "InListPassiveTarget",
    0x4E: "InPSL",
    0x50: "InATR",
    0x52: "InRelease",
    0x54: "InSelect",
    0x56: "InJumpForDEP",
    0x58: "RFRegulationTest",
    0x60: "InAutoPoll",
    0x86: "TgGetData",
    0x88: "TgGetInitiatorCommand",
    0x8A: "TgGetTargetStatus",
    0x8C: "TgInitAsTarget",
    0x8E: "TgSetData",
    0x90: "TgResponseToInitiator",
    0x92: "TgSetGeneralBytes",
    0x94: "TgSetMetaData",
}

#: Error codes of a response's status byte, bits 0–5 (UM0701-02 §7.1, table 16).
ERR: dict[int, str] = {
    0x01: "Time out, the target has not answered.",
    0x02: "A CRC error has been detected by the CIU.",
    0x03: "A parity error has been detected by the CIU.",
    0x04: "An erroneous bit count has been detected during an anticollision/select operation.",
    0x05: "Framing error during MIFARE operation.",
    0x06: "An abnormal bit-collision has been detected during bit-wise anticollision at 106 kbps.",
    0x07: "Communication buffer size insufficient.",
    0x09: "RF buffer overflow has been detected by the CIU.",
    0x0A: "In active mode, the RF field has not been switched on in time by the counterpart.",
    0x0B: "RF protocol error.",
    0x0D: "Temperature error: the chip overheated and switched off the antenna drivers.",
    0x0E: "Internal buffer overflow.",
    0x10: "Invalid parameter (range, format, …).",
    0x12: "DEP protocol: the PN532 as target does not support the command from the initiator.",
    0x13: "DEP, MIFARE or ISO/IEC 14443-4: the data format does not match the specification.",
    0x14: "MIFARE: authentication error.",
    0x23: "ISO/IEC 14443-3: UID check byte is wrong.",
    0x25: "DEP protocol: invalid device state, the operation is not allowed in this state.",
    0x26: "Operation not allowed in this configuration (host controller interface).",
    0x27: "This command is not acceptable in the current context of the PN532 "
    "(initiator vs. target, unknown target number, target not in the right state).",
    0x29: "The PN532 configured as target has been released by its initiator.",
    0x2A: "ISO/IEC 14443-3B only: the ID of the card does not match (the card was exchanged).",
    0x2B: "ISO/IEC 14443-3B only: the card previously activated has disappeared.",
    0x2C: "NFCID3 of initiator and target do not match in DEP 212/424 kbps passive.",
    0x2D: "An over-current event has been detected.",
    0x2E: "NAD missing in DEP frame.",
}


@dataclass(frozen=True, slots=True)
class Ack:
    """Sync frame: the previous frame arrived; from the host it aborts the pending command."""


@dataclass(frozen=True, slots=True)
class Nack:
    """Host → PN532: the last response was garbled, send it again."""


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """PN532 → host: the chip found an application-level (syntax) error in the command."""


@dataclass(frozen=True, slots=True)
class InformationFrame:
    """A command (TFI D4) or a response (TFI D5): ``code`` is PD0, ``params`` PD1…PDn."""

    tfi: int
    code: int
    params: bytes = b""

    @property
    def command(self) -> int:
        """The command this frame carries or answers (a response's code is command + 1)."""
        return self.code - 1 if self.tfi == PN532_TO_HOST else self.code

    @property
    def name(self) -> str:
        return CMD.get(self.command, f"unknown command 0x{self.command:02X}")


Frame = Ack | Nack | ErrorFrame | InformationFrame
ReadExactly = Callable[[int], bytes]


def encode(tfi: int, data: bytes, *, extended: bool = False) -> bytes:
    """An information frame around ``data`` (PD0…PDn); extended when it must be (or is asked)."""
    if not data:
        raise ValueError("an information frame needs at least a command code")
    if len(data) > MAX_DATA:
        raise ValueError(f"{len(data)} data bytes; the PN532 takes at most {MAX_DATA}")
    body = bytes([tfi]) + data
    dcs = -sum(body) & 0xFF
    length = len(body)
    if extended or length > 0xFF:
        lenm, lenl = divmod(length, 256)
        header = bytes([0xFF, 0xFF, lenm, lenl, -(lenm + lenl) & 0xFF])
    else:
        header = bytes([length, -length & 0xFF])
    return b"\x00" + START_CODE + header + body + bytes([dcs, 0x00])


def command(code: int, params: bytes = b"", *, extended: bool = False) -> bytes:
    """A host → PN532 frame."""
    return encode(HOST_TO_PN532, bytes([code]) + params, extended=extended)


def response(code: int, params: bytes = b"") -> bytes:
    """A PN532 → host frame; ``code`` is the response code (command + 1)."""
    return encode(PN532_TO_HOST, bytes([code]) + params)


def read_after_start_code(read: ReadExactly) -> Frame:
    """Read one frame whose ``00 FF`` start code was just consumed; ``read(n)`` gives n bytes.

    ``read`` raises :class:`DecodeError` (truncated) when the bytes run out.
    """
    head = read(2)
    if head == b"\x00\xff":
        _expect_postamble(read)
        return Ack()
    if head == b"\xff\x00":
        _expect_postamble(read)
        return Nack()
    length = _read_length(head, read)
    body = read(length + 1)
    data, dcs = body[:-1], body[-1]
    if (sum(data) + dcs) & 0xFF:
        raise DecodeError(
            f"bad DCS: data sum 0x{sum(data) & 0xFF:02X} + DCS 0x{dcs:02X} is not 0 mod 256"
        )
    _expect_postamble(read)
    return _information(data)


def _read_length(head: bytes, read: ReadExactly) -> int:
    if head == b"\xff\xff":  # extended frame, UM0701-02 §6.2.1.2
        lenm, lenl, lcs = read(3)
        if (lenm + lenl + lcs) & 0xFF:
            raise DecodeError(
                f"bad LCS: LENM 0x{lenm:02X} + LENL 0x{lenl:02X} + LCS 0x{lcs:02X} is not 0 mod 256"
            )
        length = lenm * 256 + lenl
    else:
        length, lcs = head
        if (length + lcs) & 0xFF:
            raise DecodeError(f"bad LCS: LEN 0x{length:02X} + LCS 0x{lcs:02X} is not 0 mod 256")
    if length == 0:
        raise DecodeError("information frame with LEN 0 (it needs at least the TFI)")
    return length


def _expect_postamble(read: ReadExactly) -> None:
    byte = read(1)
    if byte != b"\x00":
        raise DecodeError(f"missing postamble: expected 00 after the frame, got {byte.hex()}")


def _information(data: bytes) -> Frame:
    tfi = data[0]
    if len(data) == 1 and tfi == 0x7F:
        return ErrorFrame()
    if tfi not in (HOST_TO_PN532, PN532_TO_HOST):
        raise DecodeError(f"unknown TFI 0x{tfi:02X}: expected D4 (host → PN532) or D5 (back)")
    if len(data) < 2:
        raise DecodeError(f"TFI 0x{tfi:02X} without a command code")
    return InformationFrame(tfi, data[1], bytes(data[2:]))


def decode(raw: bytes) -> Frame:
    """Exactly one frame, with any number of 00 preamble/postamble bytes around it."""
    start = raw.find(START_CODE)
    if start < 0:
        raise DecodeError(f"no start code 00 FF in {raw.hex(' ') or 'nothing'}")
    if raw[:start].strip(b"\x00"):
        raise DecodeError(f"{start} byte(s) before the start code that are not 00 preamble")
    buffer = _Buffer(raw, start + len(START_CODE))
    frame = read_after_start_code(buffer.read)
    rest = raw[buffer.position :]
    if rest.strip(b"\x00"):
        raise DecodeError(f"{len(rest)} byte(s) after the frame's postamble")
    return frame


class _Buffer:
    def __init__(self, raw: bytes, position: int) -> None:
        self.raw, self.position = raw, position

    def read(self, size: int) -> bytes:
        chunk = self.raw[self.position : self.position + size]
        if len(chunk) < size:
            raise DecodeError(
                f"truncated frame: needed {size} more byte(s) at offset {self.position}, "
                f"got {len(chunk)}"
            )
        self.position += size
        return chunk
