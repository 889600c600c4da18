"""The simulators' pty line: an unplugged device closes its end once, and only its own."""

from __future__ import annotations

import os
import select
import threading

from drivers.simulators.pn532 import Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.framing import frame


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


class _Busy(Pn532Simulator):
    """A device whose thread goes on using its line after it was asked to stop (as the ZVT
    simulator does while it resends a frame nobody acknowledges)."""

    stop_wait = 0.05

    def __init__(self) -> None:
        super().__init__(baudrate=None)
        self.release = threading.Event()

    def serve(self) -> None:
        while not self.release.is_set():
            self.recv(1, 0.01)


def test_a_line_still_in_use_is_closed_by_its_thread_not_under_it() -> None:
    """stop() gave up waiting after 5 s and closed the pty anyway; the next test's pty got the
    same numbers and the late thread read the bytes meant for it (a PN532 that never heard
    GetFirmwareVersion behind the RFC 2217 server, in CI)."""
    device = _Busy().start()
    master = device._master
    device.stop()  # the thread is still in serve()
    assert device._thread.is_alive()
    os.fstat(master)  # still open: nobody else can be handed this number yet
    device.release.set()
    device._thread.join(5)
    assert not device._thread.is_alive()
    assert device._master == device._slave == -1  # the thread closed them as it ended


def test_a_terminal_resending_an_unacknowledged_frame_stops_when_asked() -> None:
    """The ZVT simulator resent a frame nobody acknowledged for 3 × T2 (§3.5) past stop(), so
    stop() waited its whole 5 s and left the line to the late thread (a 5 s teardown)."""
    terminal = ZvtSimulator(baudrate=None)
    terminal.ack_timeout = 600.0  # it would resend for half an hour
    terminal.start()
    slave = os.open(terminal.port, os.O_RDWR | os.O_NOCTTY)
    try:
        os.write(slave, frame(bytes.fromhex("05 01 00")))  # Status Enquiry, then silence
        seen = b""
        while b"\x10\x02" not in seen:  # its ACK, then its 80 00 frame waits for ours
            readable, _, _ = select.select([slave], [], [], 60.0)
            assert readable, "the simulated terminal never answered"
            seen += os.read(slave, 64)
        terminal.stop()
        assert not terminal._thread.is_alive(), "still resending after stop()"
        assert terminal._master == terminal._slave == -1
    finally:
        os.close(slave)
        terminal.stop()


def test_a_terminal_that_speaks_again_hears_what_is_sent_right_after() -> None:
    """speak() returned before the loop had dropped what came while it was silent, so a frame
    sent at once was dropped too, and its sender waited T2 (5 s) to send it again (the ~5 s
    each end-of-day test spent on the other cash register's first command)."""
    with ZvtSimulator(baudrate=None) as terminal:
        terminal.fall_silent()
        slave = os.open(terminal.port, os.O_RDWR | os.O_NOCTTY)
        try:
            terminal.speak()
            os.write(slave, frame(bytes.fromhex("05 01 00")))  # Status Enquiry, at once
            readable, _, _ = select.select([slave], [], [], 20.0)  # a ceiling, not a deadline
            assert readable, "the frame sent right after speak() was dropped"
            assert os.read(slave, 1) == b"\x06"  # ACK
        finally:
            os.close(slave)
