"""The real ZVT driver against the simulated terminal over TCP/IP (PA00P016_04 §4.1).

Over TCP the APDUs go alone: no DLE STX … DLE ETX, no CRC, no link-level ACK/NAK. The dialogue's
own acknowledgements (``80 00``, PA00P016_04 §5.2.3) remain.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from drivers.errors import DeviceDisconnected
from drivers.simulators.zvt import ZvtTcpSimulator
from drivers.transport import Transport
from drivers.zvt import CardResult, CardTerminal
from drivers.zvt.apdu import header_size
from drivers.zvt.protocol import Timeouts

ROOT = Path(__file__).resolve().parents[2]
TIMEOUTS = Timeouts(t3=2.0, t4=3.0)

Connect = Callable[..., CardTerminal]


@pytest.fixture
def sim() -> Iterator[ZvtTcpSimulator]:
    simulator = ZvtTcpSimulator()
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.02
    simulator.ack_timeout = 1.0
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def connect(sim: ZvtTcpSimulator) -> Iterator[Connect]:
    """Open a CardTerminal on the simulator; closed at the end of the test, not by the garbage
    collector (pyserial's socket close sleeps 0.3 s, which must not land inside a dialogue)."""
    opened: list[Transport] = []

    def open_terminal(on_status: Callable[[str], None] | None = None) -> CardTerminal:
        transport = Transport(sim.port).open()
        opened.append(transport)
        return CardTerminal(transport, on_status=on_status, tcp=True, timeouts=TIMEOUTS)

    yield open_terminal
    for transport in opened:
        transport.close()


def wait_until(condition: Callable[[], bool], timeout: float = 60.0) -> None:
    """Poll until ``condition()``; ``timeout`` is a ceiling for a loaded machine."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.02)


def test_port_is_a_pyserial_socket_url(sim: ZvtTcpSimulator) -> None:
    host, port = sim.address
    assert sim.port == f"socket://{host}:{port}"
    assert host == "127.0.0.1" and port > 0


def test_register(sim: ZvtTcpSimulator, connect: Connect) -> None:
    completion = connect().register()
    assert completion == {"payment_type": 0, "terminal_id": "29001234", "currency": "978"}
    assert sim.received[0].encode() == bytes.fromhex("06 00 06 00 00 00 8E 09 78")


def test_charge_approved(sim: ZvtTcpSimulator, connect: Connect) -> None:
    statuses: list[str] = []
    result = connect(statuses.append).charge(1234)
    assert statuses == ["Insert card", "Please watch PIN-Pad", "Please wait..."]
    assert result.approved and result.result_code == 0
    assert result.amount_minor == 1234 and result.currency == "978"
    assert (result.trace_number, result.receipt_number) == (1, 1)
    assert result.masked_pan == "6799********0019"
    assert result.card_name == "Girocard"
    assert "Zahlung erfolgt" in result.receipt_text
    assert [b.amount_minor for b in sim.journal] == [1234]


def test_decline_is_a_result_with_its_code(sim: ZvtTcpSimulator, connect: Connect) -> None:
    sim.decline_next = 0x05
    result = connect().charge(500)
    assert not result.approved
    assert result.result_code == 5
    assert "do not honour" in result.message
    assert "Zahlung abgelehnt" in result.receipt_text
    assert sim.journal == []


def test_refund_and_reversal(sim: ZvtTcpSimulator, connect: Connect) -> None:
    terminal = connect()
    sale = terminal.charge(1500)
    refund = terminal.refund(300)
    assert refund.approved and refund.amount_minor == 300
    assert sale.receipt_number is not None
    reversal = terminal.reverse(sale.receipt_number)
    assert reversal.approved and reversal.amount_minor == 1500
    again = terminal.reverse(sale.receipt_number)
    assert not again.approved and again.message == "already reversed"
    assert [b.kind for b in sim.journal] == ["authorisation", "refund", "reversal"]


def test_end_of_day_and_repeat_receipt(connect: Connect) -> None:
    terminal = connect()
    assert terminal.repeat_last_receipt() is None
    sale = terminal.charge(1000)
    again = terminal.repeat_last_receipt()
    assert isinstance(again, CardResult)
    assert again.receipt_number == sale.receipt_number and again.amount_minor == 1000
    assert "Belegwiederholung" in again.receipt_text
    day = terminal.end_of_day()
    assert day.approved and day.amount_minor == 1000
    assert "Kassenschnitt erfolgreich" in day.receipt_text
    assert terminal.status_enquiry()["terminal_status_text"] == "PT ready"


def test_the_ecr_reconnects_after_unplug(sim: ZvtTcpSimulator, connect: Connect) -> None:
    """The LAN cable is pulled while the card is inserted; the terminal finishes and books alone.

    The same CardTerminal opens a new connection for its next command and learns the outcome
    with Repeat Receipt (PA00P015 §2.20), then charges again on the new connection.
    """

    pulled: list[str] = []

    def on_status(text: str) -> None:
        if text == "Insert card" and not pulled:
            pulled.append(text)
            sim.unplug()

    terminal = connect(on_status)
    with pytest.raises(DeviceDisconnected):
        terminal.charge(4200)
    wait_until(lambda: len(sim.journal) == 1 and sim.phase == "idle")

    recovered = terminal.repeat_last_receipt()
    assert isinstance(recovered, CardResult)
    assert recovered.approved and recovered.amount_minor == 4200
    assert terminal.charge(100).approved
    assert sim.connections == 2
    assert [b.amount_minor for b in sim.journal] == [4200, 100]


def test_a_new_till_process_connects_after_the_old_one_closed(
    sim: ZvtTcpSimulator, connect: Connect
) -> None:
    first = connect()
    assert first.charge(700).approved
    first.transport.close()
    second = connect()
    assert second.charge(800).receipt_number == 2
    assert sim.connections == 2


def test_serial_line_faults_are_refused(sim: ZvtTcpSimulator, connect: Connect) -> None:
    with pytest.raises(ValueError, match="no ACK/NAK"):
        sim.nak_storm = 2
    with pytest.raises(ValueError, match="TCP"):
        sim.garbage_before = b"\x00"
    with pytest.raises(ValueError, match="TCP"):
        sim.drop_probability = 0.1
    sim.response_delay = 0.01  # a slow terminal still makes sense
    assert connect().charge(100).approved


def read_apdu(client: socket.socket) -> bytes:
    raw = b""
    while (sizes := header_size(raw)) is None or len(raw) < sum(sizes):
        chunk = client.recv(1)
        assert chunk, f"the connection closed after {raw.hex(' ')}"
        raw += chunk
    return raw


def test_raw_authorisation_is_answered_with_unframed_apdus(sim: ZvtTcpSimulator) -> None:
    """Independent of the driver: one hand-built Authorisation over a plain socket.

    PA00P015 §2.2.1: ``06 01 <len>`` then BMP 04 (amount, 6 bytes BCD in cents) and BMP 49
    (currency code, 09 78 = EUR). The terminal answers ``80 00 00`` first (PA00P016_04 §5.2.3),
    then sends as master (04 FF, 04 0F, 06 D3, 06 0F), each acknowledged with ``80 00 00``.
    """
    command = bytes.fromhex("06 01 0A 04 00 00 00 00 12 34 49 09 78")
    with socket.create_connection(sim.address, timeout=3) as client:
        client.sendall(command)
        assert read_apdu(client) == bytes.fromhex("80 00 00")  # not 10 02 … nor a lone 06 ACK
        controls: list[str] = []
        while not controls or controls[-1] not in ("06 0f", "06 1e"):
            apdu = read_apdu(client)  # each message starts right where the last one ended
            controls.append(apdu[:2].hex(" "))
            client.sendall(bytes.fromhex("80 00 00"))
        client.settimeout(0.2)
        with pytest.raises(TimeoutError):
            client.recv(1)  # no DLE ETX, CRC or ACK after the last APDU either
    assert controls == ["04 ff", "04 ff", "04 ff", "04 0f", "06 d3", "06 0f"]
    assert sim.received[0].encode() == command
    assert sim.journal[0].amount_minor == 1234


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_simulate_tcp_prints_a_socket_url_and_serves_until_ctrl_c() -> None:
    port = free_port()
    script = (
        "from drivers.zvt.cli import zvt_simulate_command as c; "
        f"c(['--tcp', '--port', '{port}', '--pin-delay', '0.01'])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        assert url == f"socket://127.0.0.1:{port}"
        with Transport(url) as transport:
            assert CardTerminal(transport, tcp=True).charge(250).approved
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
