"""The plumbing every simulator shares: a pty pair, a thread, paced bytes, and faults.

The simulator owns the pty's master end; a driver opens :attr:`PtyDevice.port` (the slave end)
like any serial port. A pty has no baud rate, so :meth:`send` paces bytes as a real line at
``baudrate`` would (10 bits a byte: start, 8 data, stop).
"""

from __future__ import annotations

import os
import random
import select
import threading
import time
import tty
from dataclasses import dataclass


@dataclass
class LineFaults:
    """Knobs that make the line misbehave (all off by default)."""

    garbage_before: bytes = b""  # sent before every reply
    drop_probability: float = 0.0  # chance to drop each byte sent
    response_delay: float = 0.0  # seconds before every reply


class PtyDevice:
    """A device on the master end of a pty; subclasses implement :meth:`serve`."""

    def __init__(self, baudrate: int | None = 9600, seed: int = 0) -> None:
        self.baudrate = baudrate
        self.faults = LineFaults()
        self.random = random.Random(seed)
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self.unplugged = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> PtyDevice:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        for fd in (self._master, self._slave):
            try:
                os.close(fd)
            except OSError:
                pass

    def __enter__(self) -> PtyDevice:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def unplug(self) -> None:
        """Close the line as a pulled cable would: the driver's next read or write fails."""
        self.unplugged = True
        self._stop.set()
        try:
            os.close(self._master)
        except OSError:
            pass

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            self.serve()
        except OSError:
            pass  # unplugged or stopped

    def serve(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    # -- the line's fault knobs, as attributes of the device (see LineFaults) ----------------

    @property
    def garbage_before(self) -> bytes:
        return self.faults.garbage_before

    @garbage_before.setter
    def garbage_before(self, value: bytes) -> None:
        self.faults.garbage_before = value

    @property
    def drop_probability(self) -> float:
        return self.faults.drop_probability

    @drop_probability.setter
    def drop_probability(self, value: float) -> None:
        self.faults.drop_probability = value

    @property
    def response_delay(self) -> float:
        return self.faults.response_delay

    @response_delay.setter
    def response_delay(self, value: float) -> None:
        self.faults.response_delay = value

    # -- bytes ------------------------------------------------------------------------------

    def byte_time(self, count: int) -> float:
        return count * 10 / self.baudrate if self.baudrate else 0.0

    def send(self, data: bytes) -> None:
        """Write ``data`` paced at the line's baud rate, with the configured faults."""
        if self.faults.response_delay:
            time.sleep(self.faults.response_delay)
        data = self.faults.garbage_before + data
        if self.faults.drop_probability:
            data = bytes(b for b in data if self.random.random() >= self.faults.drop_probability)
        per_byte = self.byte_time(1)
        if not per_byte:
            os.write(self._master, data)
            return
        started, sent = time.monotonic(), 0
        while sent < len(data):
            due = min(len(data), int((time.monotonic() - started) / per_byte) + 1)
            if due > sent:
                os.write(self._master, data[sent:due])
                sent = due
            if sent < len(data):
                time.sleep(max(0.0, started + sent * per_byte - time.monotonic()))

    def recv(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes the driver wrote, waiting at most ``timeout`` seconds."""
        ready, _, _ = select.select([self._master], [], [], timeout)
        if not ready:
            return b""
        return os.read(self._master, size)

    def recv_exactly(self, size: int, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0 or self.stopping:
                return None
            out += self.recv(size - len(out), left)
        return bytes(out)
