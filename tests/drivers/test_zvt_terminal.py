"""The real ZVT driver against the simulated terminal over a pty (PA00P015 13.08 chapter 2)."""

from __future__ import annotations

import os
import time
import tty
from collections.abc import Callable, Iterator

import pytest

from drivers.errors import DeviceDisconnected, DeviceTimeout, ProtocolError
from drivers.simulators.zvt import ZvtSimulator
from drivers.transport import Transport
from drivers.zvt import CardResult, CardTerminal
from drivers.zvt.framing import LinkTimings
from drivers.zvt.protocol import Timeouts

FAST_BAUD = 115200
TIMEOUTS = Timeouts(t3=2.0, t4=3.0)
TIMINGS = LinkTimings(t2=0.5)


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(FAST_BAUD)
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.02
    simulator.ack_timeout = 0.3
    simulator.start()
    yield simulator
    simulator.stop()


def connect(
    sim: ZvtSimulator, on_status: Callable[[str], None] | None = None, baud: int = FAST_BAUD
) -> CardTerminal:
    transport = Transport(sim.port, baudrate=baud).open()
    return CardTerminal(transport, on_status=on_status, timeouts=TIMEOUTS, timings=TIMINGS)


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``condition()``; ``timeout`` is a ceiling for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_register(sim: ZvtSimulator) -> None:
    completion = connect(sim).register()
    assert completion == {"payment_type": 0, "terminal_id": "29001234", "currency": "978"}
    assert sim.received[0].encode() == bytes.fromhex("06 00 06 00 00 00 8E 09 78")


def test_charge_approved(sim: ZvtSimulator) -> None:
    statuses: list[str] = []
    result = connect(sim, statuses.append).charge(1234)
    assert statuses == ["Insert card", "Please watch PIN-Pad", "Please wait..."]
    assert result.approved and result.result_code == 0 and result.message == "no error"
    assert result.amount_minor == 1234 and result.currency == "978"
    assert (result.trace_number, result.receipt_number) == (1, 1)
    assert result.masked_pan == "6799********0019"
    assert result.terminal_id == "29001234"
    assert result.card_name == "Girocard"
    assert result.aid == "000001"
    assert result.timestamp is not None
    assert result.status["tlv"]["application"]["application_id"] == "A0000003591010"
    assert "Zahlung erfolgt" in result.receipt_text
    assert "Betrag EUR 12.34" in result.receipt_text
    assert [b.amount_minor for b in sim.journal] == [1234]


def test_numbers_increase(sim: ZvtSimulator) -> None:
    terminal = connect(sim)
    first, second = terminal.charge(100), terminal.charge(200)
    assert (second.trace_number, second.receipt_number) == (2, 2)
    assert first.receipt_number == 1


def test_decline_is_a_result_not_an_exception(sim: ZvtSimulator) -> None:
    sim.decline_next = 0x05
    result = connect(sim).charge(500)
    assert not result.approved
    assert result.result_code == 5
    assert "do not honour" in result.message
    assert "Zahlung abgelehnt" in result.receipt_text
    assert sim.journal == []


def test_refund_and_reversal(sim: ZvtSimulator) -> None:
    terminal = connect(sim)
    sale = terminal.charge(1500)
    refund = terminal.refund(300)
    assert refund.approved and refund.amount_minor == 300
    assert sale.receipt_number is not None
    reversal = terminal.reverse(sale.receipt_number)
    assert reversal.approved and reversal.amount_minor == 1500
    again = terminal.reverse(sale.receipt_number)
    assert not again.approved and again.message == "already reversed"
    unknown = terminal.reverse(999)
    assert not unknown.approved and unknown.message == "reversal not possible"
    assert [b.kind for b in sim.journal] == ["authorisation", "refund", "reversal"]
    assert sim.received[-1].encode() == bytes.fromhex("06 30 06 00 00 00 87 09 99")


def test_end_of_day_diagnosis_status_log_off(sim: ZvtSimulator) -> None:
    terminal = connect(sim)
    terminal.charge(1000)
    day = terminal.end_of_day()
    assert day.approved and day.amount_minor == 1000
    assert "Kassenschnitt erfolgreich" in day.receipt_text
    assert terminal.diagnosis() == {"terminal_id": "29001234"}
    assert terminal.status_enquiry()["terminal_status_text"] == "PT ready"
    terminal.log_off()
    assert sim.received[-1].encode() == bytes.fromhex("06 02 00")


def test_abort_mid_transaction(sim: ZvtSimulator) -> None:
    sim.pin_delay = 30.0  # longer than T4 (3 s): had the abort not worked, charge() would raise
    terminal: CardTerminal
    cancelled: list[str] = []

    def on_status(text: str) -> None:
        if text == "Please watch PIN-Pad" and not cancelled:
            cancelled.append(text)
            terminal.abort()  # as the cashier's cancel button would, while charge() runs

    terminal = connect(sim, on_status)
    started = time.monotonic()
    result = terminal.charge(700)
    assert time.monotonic() - started < sim.pin_delay / 2  # did not wait for the PIN
    assert not result.approved
    assert result.result_code == 0x6C
    assert result.message == "abort via timeout or abort-key"
    assert sim.journal == []
    sim.pin_delay = 0.02
    assert terminal.charge(700).approved  # the terminal is ready again


def test_nak_storm_is_recovered_within_three_attempts(sim: ZvtSimulator) -> None:
    sim.nak_storm = 2
    result = connect(sim).charge(100)
    assert result.approved
    assert [a.control for a in sim.received].count((0x06, 0x01)) == 1


def test_nak_storm_beyond_three_attempts_fails(sim: ZvtSimulator) -> None:
    sim.nak_storm = 3
    with pytest.raises(ProtocolError, match="refused"):
        connect(sim).charge(100)
    assert sim.journal == []


def test_garbage_before_each_frame_is_skipped(sim: ZvtSimulator) -> None:
    sim.garbage_before = b"\x00\xff\x42\x13"
    result = connect(sim).charge(100)
    assert result.approved and result.masked_pan == "6799********0019"


def test_silent_terminal_times_out() -> None:
    master, slave = os.openpty()  # a line with nobody on the other end
    tty.setraw(slave)
    try:
        transport = Transport(os.ttyname(slave), baudrate=FAST_BAUD).open()
        terminal = CardTerminal(transport, timeouts=TIMEOUTS, timings=TIMINGS)
        started = time.monotonic()
        with pytest.raises(DeviceTimeout, match="no ACK"):
            terminal.charge(100)
        # Gave up after three unanswered tries (3 × T2 = 1.5 s), not a T3 per try (6 s).
        assert time.monotonic() - started < 3 * TIMEOUTS.t3
        transport.close()
    finally:
        os.close(master)
        os.close(slave)


def test_terminal_silent_during_the_transaction_hits_t4(sim: ZvtSimulator) -> None:
    sim.pin_delay = 5.0
    transport = Transport(sim.port, baudrate=FAST_BAUD).open()
    terminal = CardTerminal(transport, timeouts=Timeouts(t3=2.0, t4=0.5), timings=TIMINGS)
    with pytest.raises(DeviceTimeout, match="T4"):
        terminal.charge(100)


def test_unplug_raises_device_disconnected(sim: ZvtSimulator) -> None:
    def on_status(text: str) -> None:
        if text == "Insert card":
            sim.unplug()

    with pytest.raises(DeviceDisconnected):
        connect(sim, on_status).charge(100)


def test_repeat_receipt_after_the_till_vanished_mid_payment(sim: ZvtSimulator) -> None:
    """The ECR dies while the customer types the PIN; the terminal books the payment anyway.

    A new ECR process asks with Repeat Receipt (06 20) and learns the payment went through,
    so it records it instead of charging the customer a second time.
    """
    transport = Transport(sim.port, baudrate=FAST_BAUD).open()

    def on_status(text: str) -> None:
        if text == "Please watch PIN-Pad":
            transport.close()  # the till process is gone

    first = CardTerminal(transport, on_status=on_status, timeouts=TIMEOUTS, timings=TIMINGS)
    with pytest.raises(DeviceDisconnected):
        first.charge(4200)
    wait_until(lambda: len(sim.journal) == 1 and sim.phase == "idle")

    recovered = connect(sim).repeat_last_receipt()
    assert isinstance(recovered, CardResult)
    assert recovered.approved
    assert recovered.amount_minor == 4200
    assert recovered.receipt_number == sim.journal[0].receipt_number
    assert recovered.masked_pan == "6799********0019"
    assert "Belegwiederholung" in recovered.receipt_text
    assert len(sim.journal) == 1  # charged exactly once


def test_repeat_receipt_without_a_transaction_is_none(sim: ZvtSimulator) -> None:
    assert connect(sim).repeat_last_receipt() is None


def test_charge_at_9600_baud() -> None:
    simulator = ZvtSimulator(9600)
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.01
    with simulator:
        result = connect(simulator, baud=9600).charge(999)
    assert result.approved and result.amount_minor == 999


def test_spec_terminal_reverses_when_the_status_was_never_acknowledged(
    sim: ZvtSimulator,
) -> None:
    """PA00P015 §2.2.8: without the ECR's acknowledgement the terminal must auto-reverse."""
    sim.book_without_ack = False
    transport = Transport(sim.port, baudrate=FAST_BAUD).open()

    def on_status(text: str) -> None:
        if text == "Please watch PIN-Pad":
            transport.close()

    first = CardTerminal(transport, on_status=on_status, timeouts=TIMEOUTS, timings=TIMINGS)
    with pytest.raises(DeviceDisconnected):
        first.charge(4200)
    wait_until(lambda: sim.phase == "idle" and len(sim.received) == 1)  # it has concluded
    assert connect(sim).repeat_last_receipt() is None
    assert sim.journal == []
