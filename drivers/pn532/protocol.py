"""The host side of the PN532 link over HSU (UART): wake-up, command, ACK, response, abort.

One exchange (UM0701-02 §6.2.1, §6.3): the host sends a command frame, the PN532 answers an ACK
frame at once and the response frame when the command is done. The host may send an ACK to
abort a pending command, and a NACK to ask for the last response again. A command that got no
ACK (the chip missed it or was asleep) is sent again; a NACK from the line is answered likewise.
"""

from __future__ import annotations

import logging
import time

from drivers.errors import DecodeError, DeviceTimeout, ProtocolError
from drivers.pn532 import frames
from drivers.pn532.frames import Ack, ErrorFrame, Frame, InformationFrame, Nack
from drivers.transport import Transport

log = logging.getLogger(__name__)

#: HSU wake-up (UM0701-02 §6.2.2, HSU wake-up condition): a long preamble, 0x55 then 00s, so
#: the chip leaves power-down before the first frame; published as ``55 55 00 … 00`` in
#: Waveshare's and elechouse's PN532 HSU examples.
WAKE_UP = b"\x55\x55" + bytes(14)


#: First waits for an ACK (seconds), on a local serial line and on a network one.
LOCAL_ACK_TIMEOUT = 0.1
NETWORK_ACK_TIMEOUT = 0.5


class NoResponse(DeviceTimeout):
    """The PN532 acknowledged the command but sent no response in time; it was aborted."""


class Link:
    """Commands to a PN532 on one :class:`Transport`; not thread-safe (one device host owns it).

    ``ack_timeout`` bounds the first wait for the ACK; each resend waits twice as long as the
    one before, so a line that is slow rather than lossy (a busy host, a serial server across a
    network) is still heard. It defaults to 0.1 s on a local line, where the chip ACKs within a
    millisecond, and to 0.5 s on ``socket://`` and ``rfc2217://``, where every byte crosses a
    network and a serial server's threads. ``frame_timeout`` bounds the gap inside one frame once
    its start code arrived, ``retries`` the resends for a missing ACK or a garbled response.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        ack_timeout: float | None = None,
        frame_timeout: float = 0.1,
        retries: int = 2,
    ) -> None:
        self.transport = transport
        if ack_timeout is None:
            ack_timeout = NETWORK_ACK_TIMEOUT if transport.over_network else LOCAL_ACK_TIMEOUT
        self.ack_timeout = ack_timeout
        self.frame_timeout = frame_timeout
        self.retries = retries

    def wake_up(self) -> None:
        """Send the HSU wake-up preamble; the next command should be SAMConfiguration."""
        self.transport.write(WAKE_UP)

    def abort(self) -> None:
        """Send an ACK frame: the PN532 drops the pending command (UM0701-02 §6.2.1.3)."""
        self.transport.write(frames.ACK_BYTES)

    def command(self, code: int, params: bytes = b"", timeout: float = 1.0) -> bytes:
        """Run one command and return the response's parameters (the bytes after its code).

        Raises :class:`DeviceTimeout` when the chip does not acknowledge after every retry or
        does not answer within ``timeout`` seconds (the command is then aborted), and
        :class:`ProtocolError` for an error frame or a response to another command.
        """
        request = frames.command(code, params)
        early = self._send_until_acknowledged(code, request)
        reply = early if early is not None else self._read_response(code, timeout)
        return reply.params

    # -- steps ------------------------------------------------------------------------------

    def _send_until_acknowledged(self, code: int, request: bytes) -> InformationFrame | None:
        """Write until ACKed; return the response instead if it came first (the ACK was lost)."""
        name = frames.CMD.get(code, f"command 0x{code:02X}")
        for attempt in range(1, self.retries + 2):
            self.transport.discard_input()
            self.transport.write(request)
            try:
                frame = self._read_frame_skipping_stale(code, self.ack_timeout * 2 ** (attempt - 1))
            except DeviceTimeout:
                log.info("no ACK for %s (attempt %d); sending it again", name, attempt)
                continue
            except DecodeError as exc:
                log.info("garbled ACK for %s (%s); waiting for the response", name, exc)
                return None
            if isinstance(frame, Nack):
                log.info("NACK for %s (attempt %d); sending it again", name, attempt)
                continue
            if isinstance(frame, Ack):
                return None
            return self._check_response(code, frame)
        raise DeviceTimeout(
            f"PN532 did not acknowledge {name} after {self.retries + 1} attempt(s) on "
            f"{self.transport.url}: check the wiring, the baud rate and that it is in HSU mode"
        )

    def _read_frame_skipping_stale(self, code: int, wait: float) -> Frame:
        """The next frame, past any late response to an earlier (aborted) command."""
        frame = self._read_frame(wait)
        while isinstance(frame, InformationFrame) and frame.code != code + 1:
            log.info("skipping a late response D5 %02X", frame.code)
            frame = self._read_frame(wait)
        return frame

    def _read_response(self, code: int, timeout: float) -> InformationFrame:
        deadline = time.monotonic() + timeout
        for _ in range(self.retries + 1):
            try:
                frame = self._read_frame(max(deadline - time.monotonic(), 0.0))
            except DeviceTimeout:
                self.abort()
                raise NoResponse(
                    f"PN532 did not answer {frames.CMD.get(code, hex(code))} within "
                    f"{timeout:g} s; the command was aborted"
                ) from None
            except DecodeError as exc:
                log.info("garbled response (%s); asking for it again with a NACK", exc)
                self.transport.discard_input()
                self.transport.write(frames.NACK_BYTES)
                continue
            if isinstance(frame, Ack):  # a late or repeated ACK: the response is still coming
                continue
            return self._check_response(code, frame)
        raise ProtocolError(
            f"PN532 response to {frames.CMD.get(code, hex(code))} stayed garbled after "
            f"{self.retries + 1} attempt(s)"
        )

    @staticmethod
    def _check_response(code: int, frame: Frame) -> InformationFrame:
        if isinstance(frame, ErrorFrame):
            raise ProtocolError(
                f"PN532 answered {frames.CMD.get(code, hex(code))} with an error frame: "
                "it found a syntax error in the command (UM0701-02 §6.2.1.5)"
            )
        if not isinstance(frame, InformationFrame):
            raise ProtocolError(f"PN532 sent {type(frame).__name__} where a response was due")
        if frame.tfi != frames.PN532_TO_HOST or frame.code != code + 1:
            raise ProtocolError(
                f"expected response D5 {code + 1:02X}, got {frame.tfi:02X} {frame.code:02X}"
            )
        return frame

    # -- bytes ------------------------------------------------------------------------------

    def _read_frame(self, timeout: float) -> Frame:
        """The next frame: skip bytes up to a start code within ``timeout``, then read it whole."""
        self._skip_to_start_code(time.monotonic() + timeout, timeout)
        return frames.read_after_start_code(self._read_inside_frame)

    def _skip_to_start_code(self, deadline: float, timeout: float) -> None:
        previous = -1
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(f"no PN532 frame within {timeout:g} s")
            byte = self.transport.read(1, left)
            if not byte:
                continue
            if previous == 0x00 and byte[0] == 0xFF:
                return
            previous = byte[0]

    def _read_inside_frame(self, size: int) -> bytes:
        try:
            return self.transport.read_exactly(size, self.frame_timeout)
        except DeviceTimeout as exc:
            raise DecodeError(f"truncated frame: {exc}") from None
