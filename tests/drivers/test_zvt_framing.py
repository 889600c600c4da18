"""ZVT serial framing: DLE STX … DLE ETX CRC, DLE doubling, ACK/NAK and retries.

Sources:
- [SPEC] PA00P016_04 "ECR-Interface ZVT-Protocol, Transport-Protocol" §3.1–3.5 (block
  structure, CRC over APDU + ETX, low byte first, DLE doubling, two repeats).
- [ECRTERM] github.com/wirelane/ecrterm ``ecrterm/tests/test_parsing.py``
  ``test_version_completion``: a framed Completion captured from a terminal, CRC ``B1 11``.
- [CATALOGUE] Greg Cook, "Catalogue of parametrised CRC algorithms" (reveng), CRC-16/KERMIT
  (poly 0x1021 reflected, init 0): check value for "123456789" is 0x2189.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError, DeviceTimeout, ProtocolError
from drivers.zvt.framing import (
    ACK,
    NAK,
    LinkTimings,
    SerialLink,
    TcpLink,
    crc16,
    frame,
    unframe,
)

COMPLETION_FRAME = bytes.fromhex("10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11")
COMPLETION_APDU = bytes.fromhex("06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00")
# [ECRTERM] test_parsing.py PACKET_LIST[2]: a registration whose TLV holds 10 02 (tag 10)
REGISTRATION_APDU = bytes.fromhex(
    "06 00 63 00 00 00 FE 09 78 03 00 06 59 10 02 16 02 12 01 40 1A 02 10 00 26 28 0A 02 04 0F"
    " 0A 02 06 0F 0A 02 06 1E 0A 02 04 FF 0A 02 06 D8 0A 02 06 DB 0A 02 06 D9 0A 02 06 DA 0A 02"
    " 06 DD 0A 02 06 D3 27 03 14 01 FF 28 10 15 02 44 45 15 02 45 4E 15 02 46 52 15 02 49 54 40"
    " 02 C0 00 1F 04 02 F1 00 1F 05 01 00"
)


def test_crc_is_crc16_kermit() -> None:
    assert crc16(b"123456789") == 0x2189  # [CATALOGUE]


def test_captured_frame_crc_covers_apdu_and_etx_low_byte_first() -> None:
    assert crc16(COMPLETION_APDU + b"\x03") == 0x11B1  # [ECRTERM], sent as B1 11 ([SPEC] §3.1)
    assert frame(COMPLETION_APDU) == COMPLETION_FRAME
    assert unframe(COMPLETION_FRAME) == COMPLETION_APDU


def test_dle_in_the_apdu_is_doubled_and_left_out_of_the_crc() -> None:
    framed = frame(REGISTRATION_APDU)
    body = framed[2:-4]
    assert body.count(b"\x10") == 2 * REGISTRATION_APDU.count(b"\x10")
    assert b"\x59\x10\x10\x02\x16" in body  # the TLV's tag 10 02 travels as 10 10 02
    crc = crc16(REGISTRATION_APDU + b"\x03")
    assert framed[-2:] == crc.to_bytes(2, "little")
    assert unframe(framed) == REGISTRATION_APDU


@given(st.binary(max_size=300))
def test_frame_round_trip(apdu: bytes) -> None:
    assert unframe(frame(apdu)) == apdu


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        (COMPLETION_FRAME[:-1] + b"\x12", "bad CRC"),
        (COMPLETION_FRAME[:-2], "a 2-byte CRC"),
        (COMPLETION_FRAME[:-3], "truncated frame"),
        (COMPLETION_FRAME[:10], "truncated frame"),
        (COMPLETION_FRAME[2:], "starts with 10 02"),
        (bytes.fromhex("10 02 06 10 0F 10 03 00 00"), "DLE"),
    ],
)
def test_bad_frames(raw: bytes, problem: str) -> None:
    with pytest.raises(DecodeError, match=problem):
        unframe(raw)


class Line:
    """A scripted peer: bytes it will send (optionally after a pause) and bytes it received."""

    def __init__(self, *script: bytes | float) -> None:
        self.script = list(script)
        self.written = bytearray()

    def read(self, size: int, timeout: float) -> bytes:
        if not self.script:
            time.sleep(min(timeout, 0.01))
            return b""
        item = self.script[0]
        if isinstance(item, float):
            self.script.pop(0)
            time.sleep(item)
            return b""
        chunk, rest = item[:size], item[size:]
        if rest:
            self.script[0] = rest
        else:
            self.script.pop(0)
        return chunk

    def write(self, data: bytes) -> None:
        self.written += data


FAST = LinkTimings(t1=0.05, t2=0.1)


def link(line: Line) -> SerialLink:
    return SerialLink(line.read, line.write, FAST)


def test_send_repeats_after_nak_and_timeout() -> None:
    line = Line(bytes([NAK]), 0.15, bytes([ACK]))
    link(line).send(COMPLETION_APDU)
    assert line.written == COMPLETION_FRAME * 3  # [SPEC] §3.5: up to two repeats


def test_send_gives_up_after_three_naks() -> None:
    line = Line(bytes([NAK]) * 3)
    with pytest.raises(ProtocolError, match="refused"):
        link(line).send(COMPLETION_APDU)
    assert line.written == COMPLETION_FRAME * 3


def test_send_times_out_when_nobody_answers() -> None:
    with pytest.raises(DeviceTimeout, match="no ACK"):
        link(Line()).send(COMPLETION_APDU)


def test_receive_skips_noise_and_acknowledges() -> None:
    line = Line(b"\x00\xff\x42\x10\x99", COMPLETION_FRAME)
    assert link(line).receive(1.0) == COMPLETION_APDU
    assert line.written == bytes([ACK])


def test_receive_naks_a_damaged_frame_and_takes_the_repeat() -> None:
    damaged = COMPLETION_FRAME[:-1] + b"\x00"
    line = Line(damaged, COMPLETION_FRAME)
    assert link(line).receive(1.0) == COMPLETION_APDU
    assert line.written == bytes([NAK, ACK])


def test_receive_naks_when_a_frame_stalls_longer_than_t1() -> None:
    line = Line(COMPLETION_FRAME[:6], 0.1, COMPLETION_FRAME)
    assert link(line).receive(1.0) == COMPLETION_APDU
    assert line.written[:1] == bytes([NAK])  # [SPEC] §3.4.1
    assert line.written[-1:] == bytes([ACK])


def test_receive_handles_doubled_dle_before_etx() -> None:
    apdu = bytes.fromhex("06 D1 02 00 10")
    line = Line(frame(apdu))
    assert link(line).receive(1.0) == apdu


def test_frames_that_arrive_while_waiting_for_ack_are_kept() -> None:
    line = Line(COMPLETION_FRAME, bytes([ACK]))
    serial = link(line)
    serial.send(bytes.fromhex("06 B0 00"))
    assert serial.receive(0.1) == COMPLETION_APDU


def test_tcp_link_reads_plain_apdus_split_anywhere() -> None:
    # [SPEC] PA00P016_04 §4: over TCP/IP the APDU travels alone, in arbitrary pieces
    block = bytes.fromhex("06 D3 FF 2C 01") + bytes(300)
    line = Line(block[:2], 0.02, block[2:4], block[4:100], block[100:] + COMPLETION_APDU)
    tcp = TcpLink(line.read, line.write, FAST)
    assert tcp.receive(1.0) == block
    assert tcp.receive(1.0) == COMPLETION_APDU
    tcp.send(COMPLETION_APDU)
    assert line.written == COMPLETION_APDU  # no DLE STX, no CRC, no ACK
