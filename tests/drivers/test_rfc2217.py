"""rfc2217:// URLs: the transport and the drivers through pyserial's own RFC 2217 server
(serial.rfc2217.PortManager) in front of the simulators' ptys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.errors import DeviceUnavailable
from drivers.simulators.pn532 import NTAG215, Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator
from drivers.transport import Transport
from drivers.zvt import CardTerminal
from drivers.zvt.framing import frame
from tests.rfc2217_server import Rfc2217Server


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(115200)
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.02
    with simulator:
        yield simulator


def test_a_card_payment_through_an_rfc2217_serial_server(terminal: ZvtSimulator) -> None:
    with Rfc2217Server(terminal.port) as server:
        transport = Transport(server.url, baudrate=115200).open()  # no write timeout asked
        try:
            card = CardTerminal(transport)
            assert card.register()["terminal_id"] == "29001234"
            result = card.charge(1234)
            assert result.approved and result.amount_minor == 1234
            assert [(b.kind, b.amount_minor) for b in terminal.journal] == [("authorisation", 1234)]
        finally:
            transport.close()


def test_a_read_returns_no_more_than_asked_and_keeps_the_rest(terminal: ZvtSimulator) -> None:
    with Rfc2217Server(terminal.port) as server, Transport(server.url, baudrate=115200) as line:
        line.write(frame(bytes.fromhex("05 01 00")))  # Status Enquiry
        received = line.read_exactly(1, 5.0) + line.read_exactly(4, 5.0)
        assert received[:1] == b"\x06" and len(received) == 5  # ACK, then the terminal's frame


def test_nothing_listening_is_a_driver_error() -> None:
    with pytest.raises(DeviceUnavailable, match=r"cannot open rfc2217://127\.0\.0\.1:9"):
        Transport("rfc2217://127.0.0.1:9").open()


def test_an_nfc_reader_through_an_rfc2217_serial_server() -> None:
    from drivers.pn532.reader import NfcReader

    with Pn532Simulator(baudrate=115200) as reader, Rfc2217Server(reader.port) as server:
        transport = Transport(server.url, baudrate=115200).open()
        try:
            nfc = NfcReader(transport)
            nfc.wake_up()
            assert nfc.firmware_version()
            reader.present(NTAG215)  # type: ignore[attr-defined]
            tap = None
            for _ in range(50):
                tap = nfc.poll(timeout=0.2)
                if tap is not None:
                    break
            assert tap is not None and bytes(tap.uid) == NTAG215.uid
        finally:
            transport.close()
