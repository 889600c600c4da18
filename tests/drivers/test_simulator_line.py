"""The simulators' pty line: an unplugged device closes its end once, and only its own."""

from __future__ import annotations

import os
import select

from drivers.simulators.pn532 import Pn532Simulator


def test_stopping_an_unplugged_device_leaves_a_reused_fd_number_alone() -> None:
    """unplug() closes the master end; stop() used to close that number again. By then
    another thread's open may hold it (POSIX hands out the lowest free number), and the
    second close cut that part's line instead: seen as a later test's simulator going silent."""
    device = Pn532Simulator(baudrate=None).start()
    master = device._master
    device.unplug()
    opened: list[int] = []
    try:
        while master not in opened and len(opened) < 64:
            opened.append(os.open(os.devnull, os.O_RDONLY))
        assert master in opened, "the freed number was not handed out again"
        device.stop()
        for fd in opened:
            os.fstat(fd)  # raises OSError (EBADF) if the device closed it
    finally:
        for fd in opened:
            os.close(fd)


def test_an_unplugged_device_fails_the_driver_and_its_thread_has_ended() -> None:
    with Pn532Simulator(baudrate=None) as device:
        slave = os.open(device.port, os.O_RDWR | os.O_NOCTTY)
        try:
            device.unplug()
            assert not device._thread.is_alive()
            readable, _, _ = select.select([slave], [], [], 5.0)
            assert readable, "the driver's end did not see the line go"
            try:
                data = os.read(slave, 1)
            except OSError:
                data = None  # EIO: nobody is on the other end
            assert not data
        finally:
            os.close(slave)
