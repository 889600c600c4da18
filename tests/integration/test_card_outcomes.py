"""Card payments whose outcome is unknown never stick and are never charged twice.

The real device host and ZVT driver against the simulator, which goes silent at each step of a
payment; a real device host process killed with SIGKILL; SQLite and PostgreSQL. The payment
becomes ``unknown`` at once (the cashier sees it, the till is free), and the terminal's own
records settle it: its last receipt, or the end-of-day totals; else a manager by hand.
"""

from __future__ import annotations

import html
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from drivers.simulators.zvt import ZvtSimulator
from drivers.transport import Transport
from drivers.zvt import CardTerminal
from drivers.zvt.framing import LinkTimings
from drivers.zvt.protocol import Timeouts
from gateway.adapters.db import Database
from gateway.adapters.models import Payment
from gateway.domain.money import Money
from gateway.entrypoints.device_host import DeviceHost
from gateway.errors import Conflict
from gateway.services.devices import cards, end_of_day, outcomes
from gateway.services.payments import cancellation, payment_reads
from tests.card_helpers import (
    approved_card_payment,
    card_payment,
    close,
    first_till,
    host_for,
    read_payment,
    until,
)
from tests.integration.test_portal_pages import log_in, staff
from tests.simulators import SteppedTerminal

# A silent terminal is noticed within about a second (the protocol's own limits are 5 s and
# 180 s); ceilings in the tests below are generous multiples of these.
FAST = {"timeouts": Timeouts(t3=1.0, t4=1.0), "link_timings": LinkTimings(t2=0.3)}
SETTLE_SECONDS = 90  # the resolution job backs off 1–3 s, 2–6 s, … between tries


@pytest.fixture
def terminal() -> Iterator[SteppedTerminal]:
    with SteppedTerminal(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"
        simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.05
        simulator.ack_timeout = 0.3
        yield simulator  # type: ignore[misc]


@pytest.fixture
def host(db: Database, demo: Any, terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    device_host = host_for(
        db, first_till(db, demo), terminal.port, timezone="Europe/Berlin", **FAST
    )
    yield device_host
    close(device_host)


def _kinds(db: Database, payment_id: str) -> list[str]:
    with db.unit_of_work(readonly=True) as uow:
        payment = payment_reads.get_payment(uow, payment_id, first_merchant(uow))
        return [e.kind for e in payment.events]


def first_merchant(uow: Any) -> int:
    from sqlalchemy import select

    from gateway.adapters.models import Merchant

    return int(uow.session.scalars(select(Merchant.id).order_by(Merchant.id)).first())


@pytest.mark.parametrize(
    ("step", "booked"),
    [
        ("command", False),  # the terminal never acknowledged the authorisation
        ("card", True),  # silent after "Insert card": the customer goes on, it books
        ("pin", True),
        ("online", True),
        ("status", True),  # booked, the Status-Information never sent
        ("completion", True),  # Status-Information sent, Completion never
    ],
)
def test_a_terminal_silent_at_any_step_leaves_an_unknown_the_terminal_settles(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator, step: str, booked: bool
) -> None:
    till = first_till(db, demo)
    terminal.silent_at = step
    payment_id = card_payment(db, till, "42.00")
    until(lambda: read_payment(db, payment_id).status == "unknown", host)

    payment = read_payment(db, payment_id)
    assert payment.display_text and payment.display_text.startswith("Outcome unknown")
    assert payment.attention and "outcome unknown" in payment.attention
    # The till is free: the next sale is taken (and, the terminal still silent, not charged).
    other = card_payment(db, till, "1.00")
    until(lambda: read_payment(db, other).status == "failed", host)
    assert "did not answer" in (read_payment(db, other).display_text or "")

    terminal.speak()
    until(lambda: read_payment(db, payment_id).status != "unknown", host, SETTLE_SECONDS)
    payment = read_payment(db, payment_id)
    assert payment.status == ("authorised" if booked else "failed")
    assert payment.attention is None  # the question is answered
    charges = [b for b in terminal.journal if b.kind == "authorisation"]
    assert [b.amount_minor for b in charges] == ([4200] if booked else [])  # never twice
    if booked:
        assert payment.card and payment.card["receipt_number"] == charges[0].receipt_number
    assert _kinds(db, payment_id)[-1] == "card_outcome_resolved"


def test_the_cashier_sees_an_unknown_outcome_at_once_and_cannot_cancel_it_blindly(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    from tests.integration.test_cashier_pages import at_till

    terminal.silent_at = "pin"
    payment_id = card_payment(db, first_till(db, demo), "9.99")
    until(lambda: read_payment(db, payment_id).status == "unknown", host)
    client = app.test_client()
    at_till(client, demo)
    status = client.get(f"/cashier/payments/{payment_id}/status").get_json()
    assert (status["screen"], status["open"], status["status"]) == ("unknown", True, "unknown")
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert 'data-screen="unknown"' in page and "Do not charge the customer again" in page
    with db.unit_of_work() as uow, pytest.raises(Conflict, match="has not confirmed"):
        cancellation.cancel_payment(uow, payment_id, first_merchant(uow), "staff:cashier")


def test_a_receipt_that_cannot_tell_leaves_it_to_a_manager_who_resolves_it_with_a_note(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    terminal.silent_at = "command"
    payment_id = card_payment(db, first_till(db, demo), "5.00")
    until(lambda: read_payment(db, payment_id).status == "unknown", host)
    host.close_devices(host.tills[0])
    terminal.speak()
    # Meanwhile the terminal booked something Kassa does not know (another cash register).
    stranger = CardTerminal(Transport(terminal.port, baudrate=115200).open())
    assert stranger.charge(777).approved
    stranger.transport.close()
    until(lambda: "cannot tell" in (read_payment(db, payment_id).attention or ""), host, 60)
    assert read_payment(db, payment_id).status == "unknown"

    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    page = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert 'data-resolve="not-charged"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    path = f"/portal/payments/{payment_id}/resolve"
    refused = manager.post(path, data={"csrf_token": token.group(1), "charged": "no"})
    assert refused.status_code == 303 and read_payment(db, payment_id).status == "unknown"
    note = "not on the terminal's journal printout of 14:02"
    done = manager.post(path, data={"csrf_token": token.group(1), "charged": "no", "note": note})
    assert done.status_code == 303
    payment = read_payment(db, payment_id)
    assert payment.status == "failed" and payment.attention is None
    with db.unit_of_work(readonly=True) as uow:
        events = payment_reads.get_payment(uow, payment_id, first_merchant(uow)).events
        resolved = events[-1]
        assert resolved.kind == "card_outcome_resolved" and resolved.actor.startswith("staff:")
        assert resolved.detail == {"by": "hand", "note": note, "charged": False}
    history = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert note in html.unescape(history) and 'id="resolve"' not in history  # in its history


def _unknown_by_hand(db: Database, demo: Any, amount: str) -> str:
    """An unknown payment whose last receipt could not tell (as after the test above)."""
    till = first_till(db, demo)
    payment_id = card_payment(db, till, amount)
    with db.unit_of_work() as uow:
        cards.begin_attempt(uow, payment_id)
        outcomes.mark_unknown(uow, payment_id, "the line broke", "test")
        payment = uow.session.get_one(Payment, payment_id)
        payment.card = {**(payment.card or {}), "resolvable": False}
        uow.commit()
    return payment_id


@pytest.mark.parametrize(("terminal_total", "expected"), [(1500, "paid"), (1000, "failed")])
def test_end_of_day_totals_settle_what_the_last_receipt_could_not(
    db: Database, demo: Any, terminal_total: int, expected: str
) -> None:
    till = first_till(db, demo)
    known = approved_card_payment(db, till, "10.00", 1)
    unknown = _unknown_by_hand(db, demo, "5.00")
    count = 2 if expected == "paid" else 1
    # The batch holds receipt 1, of the payment answered before the unknown one was tried.
    totals = end_of_day.TerminalTotals(terminal_total, count, receipts=(1, count))
    with db.unit_of_work() as uow:
        batch = end_of_day.close_batch(uow, till.till_id, totals, "EUR", "test")
        uow.commit()
        assert batch.difference is None
    assert read_payment(db, unknown).status == expected
    assert read_payment(db, known).status == "paid"


def test_end_of_day_totals_that_fit_two_answers_leave_it_to_a_manager(
    db: Database, demo: Any
) -> None:
    till = first_till(db, demo)
    first = _unknown_by_hand(db, demo, "5.00")
    second = _unknown_by_hand(db, demo, "5.00")
    with db.unit_of_work() as uow:
        batch = end_of_day.close_batch(
            uow, till.till_id, end_of_day.TerminalTotals(500, 1), "EUR", "test"
        )
        uow.commit()
        assert batch.difference  # one of them was booked, but which?
    assert {read_payment(db, p).status for p in (first, second)} == {"unknown"}


def test_device_host_killed_and_terminal_unreachable_never_charges_twice(
    db: Database, demo: Any, tmp_path: Path, terminal: SteppedTerminal
) -> None:
    """kill -9 of the device host while the customer types the PIN; the terminal books alone and
    then stays unreachable. The next device host says "outcome unknown" at once and frees the
    till; when the terminal answers again, its last receipt settles the payment."""
    terminal.hold_at = "pin"  # the customer types the PIN until the test lets them finish
    config = tmp_path / "devices.toml"
    config.write_text(
        "[devices]\nsimulated = false\nheartbeat_seconds = 1\ntag_token_key = 'k'\n"
        "[[devices.tills]]\nstore = 'Berlin Mitte'\ntill = 'T01'\n"
        f"terminal_url = '{terminal.port}'\nterminal_baudrate = 115200\nreader_url = ''\n"
        "terminal_timeout_seconds = 2\n"
    )
    env = {**os.environ, "KASSA_CONFIG": str(config), "KASSA_DATABASE_URL": db.url}
    command = [sys.executable, "-m", "gateway.entrypoints.cli", "devices"]
    till = first_till(db, demo)
    payment_id = card_payment(db, till, "42.00")
    first = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    second = None
    try:
        until(terminal.held.is_set, seconds=60)
        os.kill(first.pid, signal.SIGKILL)
        first.wait(10)
        terminal.silent = True  # and the terminal cannot be reached any more
        terminal.go_on.set()
        until(lambda: len(terminal.journal) == 1, seconds=30)  # it books the payment alone
        second = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        until(lambda: read_payment(db, payment_id).status == "unknown", seconds=60)
        with db.unit_of_work() as uow:  # the till is free for the next sale (not committed)
            cards.create_card_payment(uow, till, money=Money.parse("1.00", "EUR"))
        terminal.speak()
        until(lambda: read_payment(db, payment_id).status != "unknown", seconds=SETTLE_SECONDS)
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.terminate()
                process.wait(10)
    payment = read_payment(db, payment_id)
    assert payment.status == "authorised"
    assert payment.card and payment.card["receipt_number"] == terminal.journal[0].receipt_number
    assert [b.kind for b in terminal.journal] == ["authorisation"]  # charged exactly once
