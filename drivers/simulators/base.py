"""The plumbing every simulator shares: a thread, a line, paced bytes, and faults.

:class:`PtyDevice` owns a pty's master end; a driver opens :attr:`PtyDevice.port` (the slave end)
like any serial port. A pty has no baud rate, so :meth:`PtyDevice.send` paces bytes as a real
line at ``baudrate`` would (10 bits a byte: start, 8 data, stop).

:class:`TcpDevice` listens on a TCP port, as a card terminal on a LAN does, and serves one
client at a time; :attr:`TcpDevice.port` is the pyserial URL ``socket://127.0.0.1:<port>``.
"""

from __future__ import annotations

import errno
import logging
import os
import random
import select
import signal
import socket
import threading
import time
import tty
from dataclasses import dataclass
from typing import Self

from drivers.errors import DeviceDisconnected, DeviceError

log = logging.getLogger(__name__)


@dataclass
class LineFaults:
    """Knobs that make the line misbehave (all off by default)."""

    garbage_before: bytes = b""  # sent before every reply
    drop_probability: float = 0.0  # chance to drop each byte sent
    response_delay: float = 0.0  # seconds before every reply


class Device:
    """A simulated device on its own thread; subclasses move the bytes and implement
    :meth:`serve`."""

    port: str

    def __init__(self, baudrate: int | None = 9600, seed: int = 0) -> None:
        self.baudrate = baudrate
        self.faults = LineFaults()
        self.random = random.Random(seed)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self.unplugged = False

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> Self:
        self._thread.start()
        return self

    stop_wait = 5.0  # seconds stop() and unplug() wait for the device's thread to end
    closes_its_line_as_it_ends = False  # a pty's raw fds: see PtyDevice._thread_ended

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.stop_wait)
        if not (self._thread.is_alive() and self.closes_its_line_as_it_ends):
            self._close()
        # else the thread closes its line itself as it ends (_thread_ended): a number closed
        # while it still reads and writes it is handed to the next open (another test's pty,
        # a socket), and the late thread then takes that line's bytes

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        try:
            self.serve()
        except OSError as exc:
            if not (self.stopping or self.unplugged):  # else: unplugged or stopped, as asked
                log.warning("%s stopped on a line error: %s", type(self).__name__, exc)
        finally:
            self._thread_ended()

    def _thread_ended(self) -> None:
        """The device's thread is ending: close what stop() or unplug() left to it."""

    def serve(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def unplug(self) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def _close(self) -> None:  # pragma: no cover - subclasses implement it
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

    def send(self, data: bytes) -> None:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def recv(self, size: int, timeout: float) -> bytes:  # pragma: no cover - subclasses do
        raise NotImplementedError

    def recv_exactly(self, size: int, timeout: float) -> bytes | None:
        deadline = time.monotonic() + timeout
        out = bytearray()
        while len(out) < size:
            left = deadline - time.monotonic()
            if left <= 0 or self.stopping:
                return None
            out += self.recv(size - len(out), left)
        return bytes(out)


class PtyDevice(Device):
    """A device on the master end of a pty."""

    closes_its_line_as_it_ends = True

    def __init__(self, baudrate: int | None = 9600, seed: int = 0) -> None:
        super().__init__(baudrate, seed)
        self._fd_lock = threading.Lock()
        self._master, self._slave = os.openpty()
        tty.setraw(self._slave)
        tty.setraw(self._master)
        self.port = os.ttyname(self._slave)

    def _close(self) -> None:
        self._close_fd("_master")
        self._close_fd("_slave")

    def _close_fd(self, name: str) -> None:
        """Close the fd held in attribute ``name`` once: a second ``os.close`` of the number
        would close whatever another thread opened under it since (a socket, a database
        connection, the next test's pty) and break that part at random."""
        with self._fd_lock:
            fd = getattr(self, name)
            if fd < 0:
                return
            setattr(self, name, -1)
        try:
            os.close(fd)
        except OSError:
            pass

    def unplug(self) -> None:
        """Close the line as a pulled cable would: the driver's next read or write fails.

        The device's thread is stopped first, so it never selects on, reads or writes a
        number that was closed (and perhaps reused by another thread's open) under it."""
        self.unplugged = True
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self.stop_wait)
        if not self._thread.is_alive():
            self._close_fd("_master")
        # else the thread closes it as it ends (_thread_ended)

    def _thread_ended(self) -> None:
        if self.stopping:  # stop() or unplug() asked, and may have stopped waiting for it
            self._close_fd("_master")
            if not self.unplugged:
                self._close_fd("_slave")

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
        master = self._master
        if master < 0:
            raise OSError(errno.EBADF, "the simulated line is unplugged")
        ready, _, _ = select.select([master], [], [], timeout)
        if not ready:
            return b""
        return os.read(master, size)


class TcpDevice(Device):
    """A device listening on ``host:listen_port`` (0: a free port), one client at a time.

    :meth:`serve` runs once per connection and ends when the client goes away (:meth:`recv` and
    :meth:`send` raise :class:`DeviceDisconnected`); then the next client is accepted. TCP keeps
    bytes whole and in order, so only ``response_delay`` of the line faults applies.
    """

    def __init__(self, seed: int = 0, *, host: str = "127.0.0.1", listen_port: int = 0) -> None:
        super().__init__(None, seed)
        self._listener = socket.create_server((host, listen_port))
        self._listener.settimeout(0.1)
        self.address: tuple[str, int] = self._listener.getsockname()[:2]
        self.port = f"socket://{self.address[0]}:{self.address[1]}"
        self._connection: socket.socket | None = None
        self.connections = 0  # how many clients were accepted

    def _run(self) -> None:
        while not self.stopping:
            try:
                connection, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # small APDUs
            self.unplugged = False
            self.connections += 1
            self._connection = connection
            try:
                self.serve()
            except (OSError, DeviceError):
                pass
            finally:
                self._connection = None
                connection.close()

    def _close(self) -> None:
        self.unplug()
        self._listener.close()

    def unplug(self) -> None:
        """Drop the client's connection, as a pulled LAN cable would; the next one is served."""
        self.unplugged = True
        connection = self._connection
        if connection is not None:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # the serving thread closes it
            except OSError:
                pass

    # -- faults a byte stream cannot have ---------------------------------------------------

    @property
    def garbage_before(self) -> bytes:
        return b""

    @garbage_before.setter
    def garbage_before(self, value: bytes) -> None:
        if value:
            raise ValueError("garbage_before is a serial line fault; TCP delivers bytes intact")

    @property
    def drop_probability(self) -> float:
        return 0.0

    @drop_probability.setter
    def drop_probability(self, value: float) -> None:
        if value:
            raise ValueError("drop_probability is a serial line fault; TCP loses no bytes")

    # -- bytes ------------------------------------------------------------------------------

    def _client(self) -> socket.socket:
        if self._connection is None or self.unplugged:
            raise DeviceDisconnected("no client is connected")
        return self._connection

    def send(self, data: bytes) -> None:
        """Write ``data`` to the client, after ``response_delay``."""
        if self.faults.response_delay:
            time.sleep(self.faults.response_delay)
        try:
            self._client().sendall(data)
        except OSError as exc:
            raise DeviceDisconnected(f"the client went away: {exc}") from exc

    def recv(self, size: int, timeout: float) -> bytes:
        """Up to ``size`` bytes the client sent, waiting at most ``timeout`` seconds."""
        connection = self._client()
        try:
            ready, _, _ = select.select([connection], [], [], max(timeout, 0.0))
            data = connection.recv(size) if ready else None
        except OSError as exc:
            raise DeviceDisconnected(f"the client went away: {exc}") from exc
        if data is None:
            return b""
        if not data:
            raise DeviceDisconnected("the client closed the connection")
        return data


def serve_until_interrupted(simulator: Device) -> None:
    """Start the simulator, print its port, and serve until Ctrl-C (SIGINT) or SIGTERM.

    Both signals are handled, whatever the process inherited (a program started in the
    background by a non-interactive shell ignores SIGINT, and would otherwise never stop), and
    before the port is printed, so whoever reads it may stop the simulator at once.
    """

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, interrupt)
    signal.signal(signal.SIGTERM, interrupt)
    simulator.start()
    try:
        print(simulator.port, flush=True)
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
