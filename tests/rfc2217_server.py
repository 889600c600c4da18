"""pyserial's own RFC 2217 server in front of a simulator's pty, for tests.

Wired as pyserial's ``examples/rfc2217_server.py`` does it: one TCP client at a time, a
:class:`serial.rfc2217.PortManager` between the socket and the serial port, a thread copying the
port's bytes to the socket (escaped) and one copying the socket's bytes to the port (filtered).
A pty has no modem lines, so the port reports a plugged-in cable.
"""

from __future__ import annotations

import socket
import threading
from typing import Self

import serial
import serial.rfc2217


class Rfc2217Server:
    """Serves the serial port ``device`` at ``rfc2217://127.0.0.1:<port>`` (:attr:`url`)."""

    def __init__(self, device: str) -> None:
        self.device = device
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"rfc2217://127.0.0.1:{self._listener.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="rfc2217-server", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with client, _PtyPort(self.device, timeout=0.05) as port:
                self._redirect(port, client)

    def _redirect(self, port: serial.SerialBase, client: socket.socket) -> None:
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.settimeout(0.1)
        lock = threading.Lock()
        alive = threading.Event()
        alive.set()

        def send(data: bytes) -> None:
            with lock:
                client.sendall(data)

        manager = serial.rfc2217.PortManager(port, _Writer(send))

        def port_to_socket() -> None:
            while alive.is_set() and not self._stop.is_set():
                try:
                    data = port.read(port.in_waiting or 1)
                    if data:
                        send(b"".join(manager.escape(data)))
                except (OSError, serial.SerialException):
                    break
            alive.clear()

        reader = threading.Thread(target=port_to_socket, daemon=True)
        reader.start()
        while alive.is_set() and not self._stop.is_set():
            try:
                data = client.recv(1024)
            except TimeoutError:
                manager.check_modem_lines()
                continue
            except OSError:
                break
            if not data:
                break
            port.write(b"".join(manager.filter(data)))
        alive.clear()
        reader.join(5)


class _PtyPort(serial.Serial):
    """A pty has no modem lines (their ioctls fail): report a cable that is plugged in."""

    @property
    def cts(self) -> bool:
        return True

    @property
    def dsr(self) -> bool:
        return True

    @property
    def ri(self) -> bool:
        return False

    @property
    def cd(self) -> bool:
        return True

    def _update_dtr_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_break_state(self) -> None:
        pass


class _Writer:
    """What PortManager writes its Telnet answers to (pyserial's example passes itself)."""

    def __init__(self, send: object) -> None:
        self.write = send
