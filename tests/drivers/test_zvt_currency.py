"""The currency code (BMP 49) on the wire, and a terminal that takes another currency
(PA00P015 13.08 §2.2.9: Abort 06 1E with result code 6F and the terminal's currency)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from drivers.simulators.zvt import ZvtSimulator
from drivers.transport import Transport
from drivers.zvt import CardTerminal
from drivers.zvt.framing import LinkTimings
from drivers.zvt.protocol import Timeouts


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(115200)
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.02
    with simulator:
        yield simulator


def _terminal(sim: ZvtSimulator, currency: str) -> CardTerminal:
    return CardTerminal(
        Transport(sim.port, baudrate=115200).open(),
        currency=currency,
        timeouts=Timeouts(t3=2.0, t4=3.0),
        timings=LinkTimings(t2=0.5),
    )


def test_charge_and_refund_carry_the_terminals_currency(sim: ZvtSimulator) -> None:
    sim.currency = "392"
    terminal = _terminal(sim, "392")
    assert terminal.register()["currency"] == "392"
    charged = terminal.charge(1000)
    assert charged.approved and charged.currency == "392"
    assert "Betrag JPY 1000" in charged.receipt_text
    assert terminal.refund(400).approved
    authorisation, refund = sim.received[1], sim.received[2]
    assert authorisation.data.endswith(bytes.fromhex("49 0392"))
    assert refund.data.endswith(bytes.fromhex("49 0392"))


def test_a_payment_in_a_currency_the_terminal_does_not_take_is_aborted_unbooked(
    sim: ZvtSimulator,
) -> None:
    result = _terminal(sim, "392").charge(1000)  # the terminal takes euros
    assert not result.approved and result.result_code == 0x6F
    assert sim.journal == []
