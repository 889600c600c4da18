"""ZVT transport: RS-232 frames with CRC and ACK/NAK, or plain APDUs over TCP (PA00P016_04).

==========================  =====================================================  ==========
rule                        what                                                   section
==========================  =====================================================  ==========
block                       ``DLE STX <APDU> DLE ETX <CRC low> <CRC high>``        §3.1
code transparency           a 10 (DLE) in the APDU is sent twice; the second one   §3.1
                            counts neither in the CRC nor in the length
CRC                         CRC-16/CCITT, polynomial x^16+x^12+x^5+1 (reflected,   §3.3
                            0x8408), start 0000, over the APDU bytes and ETX
acknowledgement             ACK 06 / NAK 15, not framed, never acknowledged        §3.2
T1                          200 ms at most between two bytes of a frame, else NAK  §3.4.1
T2                          5 s at most for the ACK, else the frame is repeated    §3.4.2
retries                     a frame is sent at most three times (two repeats)      §3.5
TCP/IP                      the APDU alone, no framing, no CRC, no ACK             §4.1
==========================  =====================================================  ==========

A link works on two callables, ``read(size, timeout) -> bytes`` and ``write(bytes)``, so the
driver (over :class:`drivers.transport.Transport`) and the simulator (over its pty) share it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from drivers.errors import DecodeError, DeviceTimeout, ProtocolError
from drivers.zvt.apdu import header_size

DLE, STX, ETX, ACK, NAK = 0x10, 0x02, 0x03, 0x06, 0x15

Read = Callable[[int, float], bytes]
Write = Callable[[bytes], None]


def crc16(data: bytes) -> int:
    """CRC-16/CCITT as ZVT uses it: reflected polynomial 0x8408, start value 0 (§3.3)."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc


def frame(apdu: bytes) -> bytes:
    """``apdu`` as one serial message, DLE doubled, CRC low byte first."""
    crc = crc16(apdu + bytes([ETX]))
    stuffed = apdu.replace(bytes([DLE]), bytes([DLE, DLE]))
    return bytes([DLE, STX]) + stuffed + bytes([DLE, ETX]) + crc.to_bytes(2, "little")


def unframe(message: bytes) -> bytes:
    """The APDU in one complete serial message; a bad message raises :class:`DecodeError`."""
    if message[:2] != bytes([DLE, STX]):
        raise DecodeError("a ZVT frame starts with 10 02 (DLE STX)")
    apdu = bytearray()
    pos = 2
    while True:
        if pos >= len(message):
            raise DecodeError("truncated frame: no 10 03 (DLE ETX) before the end")
        byte = message[pos]
        if byte != DLE:
            apdu.append(byte)
            pos += 1
            continue
        follower = message[pos + 1] if pos + 1 < len(message) else None
        if follower == DLE:
            apdu.append(DLE)
            pos += 2
        elif follower == ETX:
            break
        elif follower is None:
            raise DecodeError("truncated frame: it ends after a 10 (DLE), before 10 03 and CRC")
        else:
            raise DecodeError(f"10 (DLE) followed by {follower:02X} inside the frame at byte {pos}")
    tail = message[pos + 2 :]
    if len(tail) != 2:
        raise DecodeError(f"a frame ends with a 2-byte CRC after 10 03, found {len(tail)} byte(s)")
    expected = crc16(bytes(apdu) + bytes([ETX]))
    got = int.from_bytes(tail, "little")
    if got != expected:
        raise DecodeError(f"bad CRC: frame says {got:04X}, content gives {expected:04X}")
    return bytes(apdu)


@dataclass(frozen=True, slots=True)
class LinkTimings:
    t1: float = 0.2  # between two bytes of a frame (§3.4.1)
    t2: float = 5.0  # for the ACK/NAK to a frame (§3.4.2)
    attempts: int = 3  # first transmission and two repeats (§3.5)


class _Bytes:
    """A read buffer over ``read`` so a frame is not read one system call per byte."""

    def __init__(self, read: Read) -> None:
        self._read = read
        self._buffer = bytearray()

    def byte(self, timeout: float) -> int | None:
        """The next byte within ``timeout`` seconds, else None."""
        deadline = time.monotonic() + timeout
        while not self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._buffer += self._read(256, left)
        return self._buffer.pop(0)

    def clear(self) -> None:
        self._buffer.clear()


class SerialLink:
    """Frames over a serial line: send with ACK and retries, receive with CRC check and ACK."""

    def __init__(
        self,
        read: Read,
        write: Write,
        timings: LinkTimings | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.timings = timings or LinkTimings()
        self._bytes = _Bytes(read)
        self._write = write
        self._flush = flush
        self._pending: deque[bytes] = deque()

    def discard_input(self) -> None:
        """Forget what arrived before (stale frames of an earlier dialogue)."""
        if self._flush is not None:
            self._flush()
        self._bytes.clear()
        self._pending.clear()

    def send(self, apdu: bytes) -> None:
        """Send ``apdu`` until the peer ACKs it (§3.5).

        Three NAKs raise :class:`ProtocolError`; three times no answer at all raises
        :class:`DeviceTimeout` (the terminal is off, or on another line or baud rate).
        """
        message = frame(apdu)
        naks = 0
        for _attempt in range(self.timings.attempts):
            self._write(message)
            answer = self._await_acknowledgement()
            if answer == ACK:
                return
            naks += answer == NAK
        what = f"{apdu[:2].hex(' ')} frame"
        if naks:
            raise ProtocolError(
                f"the terminal refused the {what} {naks} time(s) in {self.timings.attempts} "
                "attempts (NAK: damaged on the line); check the cable"
            )
        raise DeviceTimeout(
            f"no ACK to the {what} within {self.timings.t2:g} s, {self.timings.attempts} times; "
            "is the terminal on, on this port, at this baud rate?"
        )

    def _await_acknowledgement(self) -> int | None:
        """ACK, NAK or None (T2 passed). Frames arriving meanwhile are kept for receive()."""
        deadline = time.monotonic() + self.timings.t2
        while (left := deadline - time.monotonic()) > 0:
            byte = self._bytes.byte(left)
            if byte in (ACK, NAK):
                return byte
            if byte == DLE and self._bytes.byte(self.timings.t1) == STX:
                apdu = self._read_frame_body()
                if apdu is not None:
                    self._pending.append(apdu)
        return None

    def receive(self, timeout: float) -> bytes | None:
        """The next APDU the peer sends (ACKed), or None if none began within ``timeout``."""
        if self._pending:
            return self._pending.popleft()
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            byte = self._bytes.byte(left)
            if byte is None:
                return None
            if byte != DLE:
                continue  # noise on the line, or a stray ACK: skip to the next DLE STX
            if self._bytes.byte(self.timings.t1) != STX:
                continue
            apdu = self._read_frame_body()
            if apdu is not None:
                return apdu
        return None

    def _read_frame_body(self) -> bytes | None:
        """After DLE STX: the APDU, ACKed; or None after a NAK for a bad or slow frame."""
        raw = bytearray([DLE, STX])
        while True:
            byte = self._bytes.byte(self.timings.t1)
            if byte is None:
                self._write(bytes([NAK]))  # T1 passed inside the frame (§3.4.1)
                return None
            raw.append(byte)
            if raw[-2] == DLE and byte == ETX and _dle_run_is_odd(raw, len(raw) - 2):
                break
        crc = [self._bytes.byte(self.timings.t1), self._bytes.byte(self.timings.t1)]
        if None in crc:
            self._write(bytes([NAK]))
            return None
        raw += bytes(b for b in crc if b is not None)
        try:
            apdu = unframe(bytes(raw))
        except DecodeError:
            self._write(bytes([NAK]))
            return None
        if not self.accept(apdu):
            self._write(bytes([NAK]))
            return None
        self._write(bytes([ACK]))
        return apdu

    def accept(self, apdu: bytes) -> bool:
        """Whether to ACK a well-formed frame; a simulator overrides this to inject NAKs."""
        return True


def _dle_run_is_odd(raw: bytearray, end: int) -> bool:
    """Whether the DLE at ``end`` is a real one, not the second half of a doubled DLE."""
    run = 0
    while end - run >= 2 and raw[end - run] == DLE:
        run += 1
    return run % 2 == 1


class TcpLink:
    """Plain APDUs over a TCP stream (§4.1): no framing, no ACK; TCP keeps order and content."""

    def __init__(
        self,
        read: Read,
        write: Write,
        timings: LinkTimings | None = None,
        flush: Callable[[], None] | None = None,
    ) -> None:
        self.timings = timings or LinkTimings()
        self._bytes = _Bytes(read)
        self._write = write
        self._flush = flush

    def discard_input(self) -> None:
        if self._flush is not None:
            self._flush()
        self._bytes.clear()

    def send(self, apdu: bytes) -> None:
        self._write(apdu)

    def receive(self, timeout: float) -> bytes | None:
        first = self._bytes.byte(timeout)
        if first is None:
            return None
        raw = bytearray([first])
        deadline = time.monotonic() + max(self.timings.t2, timeout)
        while (sizes := header_size(bytes(raw))) is None or len(raw) < sum(sizes):
            byte = self._bytes.byte(deadline - time.monotonic())
            if byte is None:
                raise DeviceTimeout(f"an APDU stopped after {len(raw)} byte(s)")
            raw.append(byte)
        return bytes(raw)
