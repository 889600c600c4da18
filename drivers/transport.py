"""Transport: a serial line to a device, opened from any pyserial URL.

``/dev/ttyUSB0`` (a local port, opened with exclusive access), ``socket://host:port`` (a
terminal's TCP port or a serial server), ``rfc2217://host:port`` (a serial device server; no
write timeout there, and reads poll briefly) and ``loop://`` (tests).
Reads wait on the operating system until bytes arrive or the deadline passes (no busy loops);
an unplugged device raises :class:`DeviceDisconnected`; :meth:`Transport.reconnect` reopens
with exponential backoff. A :attr:`Transport.tap` sees every byte written and read (the
support log, :mod:`drivers.device_log`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

import serial
from serial.tools import list_ports

from drivers.errors import DeviceDisconnected, DeviceTimeout, DeviceUnavailable

log = logging.getLogger(__name__)

try:  # a pulled USB adapter can fail in termios (setting the timeout) before any read or write
    from termios import error as _TermiosError

    LINE_ERRORS: tuple[type[BaseException], ...] = (
        serial.SerialException,
        OSError,
        _TermiosError,
    )
except ImportError:  # pragma: no cover - not POSIX
    LINE_ERRORS = (serial.SerialException, OSError)


# How long one read of an RFC 2217 port waits before the deadline is looked at again.
POLL_SECONDS = 0.02


@dataclass(frozen=True, slots=True)
class PortInfo:
    device: str
    description: str
    hwid: str


def candidate_ports() -> list[PortInfo]:
    """Serial ports on this machine that could have a terminal or reader on them."""
    return [
        PortInfo(p.device, p.description or "", p.hwid or "")
        for p in sorted(list_ports.comports(), key=lambda p: p.device)
    ]


class Transport:
    """One open serial line. Not thread-safe: one device host owns it."""

    def __init__(self, url: str, *, baudrate: int = 9600, write_timeout: float = 2.0) -> None:
        self.url = url
        self.baudrate = baudrate
        self.write_timeout = write_timeout
        self._port: serial.SerialBase | None = None
        # Called with ("out", bytes) after each write and ("in", bytes) for each read.
        self.tap: Callable[[str, bytes], None] | None = None
        self._spill = bytearray()  # bytes a port returned beyond what a read asked for
        # pyserial's RFC 2217 client has no write timeout (it raises NotImplementedError), and
        # each change of its read timeout renegotiates the line settings over the network: its
        # reads run with one short timeout, repeated until the caller's deadline.
        self._polled = url.startswith("rfc2217://")

    @property
    def over_network(self) -> bool:
        """True for ``socket://`` and ``rfc2217://`` lines: every byte crosses a network."""
        return self.url.startswith(("socket://", "rfc2217://"))

    # -- life cycle -------------------------------------------------------------------------

    def open(self) -> Transport:
        if self._port is not None:
            return self
        try:
            self._port = serial.serial_for_url(
                self.url,
                baudrate=self.baudrate,
                timeout=POLL_SECONDS if self._polled else 0,
                write_timeout=None if self._polled else self.write_timeout,
                exclusive=True,
            )
        except (serial.SerialException, OSError, ValueError, NotImplementedError) as exc:
            raise DeviceUnavailable(f"cannot open {self.url}: {exc}") from exc
        self._spill.clear()
        return self

    def close(self) -> None:
        port, self._port = self._port, None
        if port is not None:
            try:
                port.close()
            except LINE_ERRORS:
                pass

    def reconnect(
        self, attempts: int = 8, first_delay: float = 0.1, max_delay: float = 5.0
    ) -> None:
        """Close and reopen, waiting 0.1 s, 0.2 s, 0.4 s … between attempts."""
        self.close()
        delay = first_delay
        for attempt in range(1, attempts + 1):
            try:
                self.open()
                log.info("reconnected to %s after %d attempt(s)", self.url, attempt)
                return
            except DeviceUnavailable:
                if attempt == attempts:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, max_delay)

    @property
    def is_open(self) -> bool:
        return self._port is not None and bool(self._port.is_open)

    def __enter__(self) -> Transport:
        return self.open()

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # -- bytes ------------------------------------------------------------------------------

    def _open_port(self) -> serial.SerialBase:
        if self._port is None:
            raise DeviceDisconnected(f"{self.url} is not open")
        return self._port

    def write(self, data: bytes) -> None:
        port = self._open_port()
        try:
            port.write(data)
            port.flush()
        except LINE_ERRORS as exc:
            self.close()
            raise DeviceDisconnected(f"{self.url} went away while writing: {exc}") from exc
        self._tapped("out", data)

    def _tapped(self, direction: str, data: bytes) -> None:
        if self.tap is not None and data:
            try:
                self.tap(direction, bytes(data))
            except Exception:  # the support log never breaks the device
                log.exception("device log tap failed on %s", self.url)

    def read(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes, returning as soon as any arrive or after ``timeout`` seconds."""
        port = self._open_port()
        if self._spill:
            out = bytes(self._spill[:size])
            del self._spill[:size]
            return out
        try:
            data = self._read_polled(port, size, timeout) if self._polled else b""
            if not self._polled:
                port.timeout = max(timeout, 0)
                data = bytes(port.read(1))
                if data and size > 1:
                    port.timeout = 0
                    data += bytes(port.read(min(size - 1, max(port.in_waiting, 0))))
        except LINE_ERRORS as exc:
            self.close()
            raise DeviceDisconnected(f"{self.url} went away while reading: {exc}") from exc
        self._tapped("in", data)  # all the port gave, once; spilled bytes are not seen twice
        self._spill += data[size:]  # an RFC 2217 read may return a whole network chunk
        return data[:size]

    @staticmethod
    def _read_polled(port: serial.SerialBase, size: int, timeout: float) -> bytes:
        deadline = time.monotonic() + max(timeout, 0)
        while True:
            data = bytes(port.read(1))  # waits up to POLL_SECONDS
            if data or time.monotonic() >= deadline:
                break
        waiting = max(port.in_waiting, 0)
        if data and size > len(data) and waiting:
            data += bytes(port.read(min(size - len(data), waiting)))
        return data

    def read_exactly(self, size: int, timeout: float) -> bytes:
        """Exactly ``size`` bytes within ``timeout`` seconds, else :class:`DeviceTimeout`."""
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeviceTimeout(
                    f"{self.url}: {len(out)} of {size} bytes arrived within {timeout:g} s"
                )
            out += self.read(size - len(out), left)
        return bytes(out)

    def discard_input(self) -> None:
        port = self._open_port()
        self._spill.clear()
        try:
            port.reset_input_buffer()
        except LINE_ERRORS as exc:
            self.close()
            raise DeviceDisconnected(f"{self.url} went away: {exc}") from exc
