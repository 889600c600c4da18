"""End of day: the terminal closes its batch and Kassa captures it, on SQLite and PostgreSQL.

Real device host, real ZVT driver, the ZVT simulator on a pty; queued on a schedule (the store's
clock), from the portal's Devices page and from ``kassa devices end-of-day``.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import CardBatch, Job
from gateway.entrypoints.device_host import DeviceHost
from gateway.services.devices import cards, end_of_day
from tests.card_helpers import (
    approved_card_payment,
    card_payment,
    close,
    first_till,
    host_for,
    read_payment,
    status_of,
    until,
)
from tests.integration.test_portal_pages import log_in, staff


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        yield simulator  # type: ignore[misc]


@pytest.fixture
def host(db: Database, demo: Any, terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    device_host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin")
    yield device_host
    close(device_host)


def _batches(db: Database) -> list[CardBatch]:
    with db.unit_of_work(readonly=True) as uow:
        rows = list(uow.session.scalars(select(CardBatch).order_by(CardBatch.id)))
        uow.session.expunge_all()
        return rows


def _request(db: Database, demo: Any, actor: str = "test") -> None:
    till = first_till(db, demo)
    with db.unit_of_work() as uow:
        end_of_day.request_end_of_day(uow, till.till_id, till.merchant_id, actor)
        uow.commit()


def test_end_of_day_captures_the_batch_when_both_sides_agree(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    till = first_till(db, demo)
    first = card_payment(db, till, "10.00")
    until(lambda: status_of(db, first) == "authorised", host)
    second = card_payment(db, till, "2.50")
    until(lambda: status_of(db, second) == "authorised", host)
    _request(db, demo)
    until(lambda: len(_batches(db)) == 1, host)

    (batch,) = _batches(db)
    assert (batch.terminal_total_minor, batch.terminal_count) == (1250, 2)
    assert (batch.kassa_total_minor, batch.kassa_count) == (1250, 2)
    assert batch.difference is None and batch.currency == "EUR"
    assert batch.terminal_by_card_type == [
        {"card_type": "girocard", "count": 2, "amount_minor": 1250}
    ]
    assert "Kassenschnitt" in (batch.receipt_text or "")
    for payment_id in (first, second):
        payment = read_payment(db, payment_id)
        assert payment.status == "paid" and payment.attention is None
    assert terminal.batches_closed == 1 and terminal.open_batch() == []


def test_a_difference_is_flagged_with_both_sides_and_shown_on_the_devices_page(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    till = first_till(db, demo)
    charged = card_payment(db, till, "10.00")
    until(lambda: status_of(db, charged) == "authorised", host)
    unknown_to_terminal = card_payment(db, till, "5.00")  # approved, but not at this terminal
    with db.unit_of_work() as uow:
        approved = cards.TerminalOutcome(
            approved=True, result_code=0, message="Approved", amount_minor=500, receipt_number=99
        )
        cards.apply_charge(uow, unknown_to_terminal, approved, "test")
        uow.session.execute(
            Job.__table__.delete().where(Job.queue == cards.device_queue(till.till_id))
        )
        uow.commit()
    _request(db, demo)
    until(lambda: len(_batches(db)) == 1, host)

    (batch,) = _batches(db)
    assert batch.difference == (
        "total: terminal 10.00 EUR, Kassa 15.00 EUR; payments: terminal 1, Kassa 2"
    )
    for payment_id in (charged, unknown_to_terminal):
        payment = read_payment(db, payment_id)
        assert payment.status == "paid"  # the terminal closed its batch: captured anyway
        assert payment.attention and "differs from Kassa's" in payment.attention
    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    page = manager.get("/portal/devices").get_data(as_text=True)
    assert 'data-batch-state="difference"' in page
    assert "terminal 10.00 EUR, Kassa 15.00 EUR" in page


def test_refunds_at_the_terminal_lower_kassas_side_of_the_next_batch(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    from gateway.domain.money import Money
    from gateway.services.payments import refunds

    till = first_till(db, demo)
    first = card_payment(db, till, "20.00")
    until(lambda: status_of(db, first) == "authorised", host)
    _request(db, demo)
    until(lambda: status_of(db, first) == "paid", host)
    with db.unit_of_work() as uow:
        refunds.request_refund(
            uow, first, till.merchant_id, amount=Money.parse("4.00", "EUR"), reason=None, actor="t"
        )
        uow.commit()
    until(lambda: read_payment(db, first).refunded_minor == 400, host)
    second = card_payment(db, till, "7.00")
    until(lambda: status_of(db, second) == "authorised", host)
    _request(db, demo)
    until(lambda: len(_batches(db)) == 2, host)
    batch = _batches(db)[1]
    assert (batch.terminal_total_minor, batch.kassa_total_minor) == (300, 300)
    assert batch.difference is None and batch.payment_ids == [second]


def test_the_schedule_follows_the_stores_clock_and_queues_the_next_day(
    db: Database, demo: Any, host: DeviceHost
) -> None:
    till = host.tills[0]
    till.end_of_day_at = time(22, 30)
    host.schedule_end_of_day()
    host.schedule_end_of_day()  # once per day, however often the host starts
    with db.unit_of_work(readonly=True) as uow:
        (job,) = uow.session.scalars(select(Job).where(Job.kind == cards.END_OF_DAY_JOB))
        berlin = job.run_at.astimezone(ZoneInfo("Europe/Berlin"))
        assert (berlin.hour, berlin.minute) == (22, 30)
        assert job.queue == till.queue and job.payload["scheduled"] is True
        job_id = job.id
    with db.unit_of_work() as uow:  # it is due: run it now
        uow.session.get_one(Job, job_id).run_at = datetime.now(UTC)
        uow.commit()
    until(lambda: len(_batches(db)) == 1, host)
    with db.unit_of_work(readonly=True) as uow:
        queued = uow.session.scalars(
            select(Job).where(Job.kind == cards.END_OF_DAY_JOB, Job.status == "pending")
        ).all()
        assert len(queued) == 1 and queued[0].run_at > datetime.now(UTC)


@pytest.mark.parametrize(
    ("now", "timezone", "expected"),
    [
        # Berlin is UTC+1 in winter: 22:30 local is 21:30 UTC, today if still ahead.
        ("2026-12-02T10:00:00+00:00", "Europe/Berlin", "2026-12-02T21:30:00+00:00"),
        ("2026-12-02T21:30:00+00:00", "Europe/Berlin", "2026-12-03T21:30:00+00:00"),
        # The night the clocks go forward (29 March 2026) is still 22:30 local: 20:30 UTC.
        ("2026-03-29T12:00:00+00:00", "Europe/Berlin", "2026-03-29T20:30:00+00:00"),
        ("2026-12-02T10:00:00+00:00", "Asia/Tokyo", "2026-12-02T13:30:00+00:00"),
    ],
)
def test_next_end_of_day_is_local_time(now: str, timezone: str, expected: str) -> None:
    at = end_of_day.next_end_of_day(datetime.fromisoformat(now), time(22, 30), timezone)
    assert at == datetime.fromisoformat(expected)


def test_the_devices_page_button_is_for_managers_with_a_csrf_token(
    app: Any, db: Database, demo: Any
) -> None:
    till = first_till(db, demo)
    path = f"/portal/devices/{till.till_id}/end-of-day"
    cashier = app.test_client()
    log_in(cashier, *staff(demo, "cashier"))
    assert cashier.post(path).status_code in (400, 403)
    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    assert manager.post(path).status_code == 400  # no CSRF token
    page = manager.get("/portal/devices").get_data(as_text=True)
    assert f'data-end-of-day="{till.label}"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    response = manager.post(path, data={"csrf_token": token.group(1)})
    assert response.status_code == 303
    again = manager.post(path, data={"csrf_token": token.group(1)}, follow_redirects=True)
    assert "already waiting for its device host" in again.get_data(as_text=True)
    with db.unit_of_work(readonly=True) as uow:
        (job,) = uow.session.scalars(select(Job).where(Job.kind == cards.END_OF_DAY_JOB))
        assert job.queue == cards.device_queue(till.till_id)
        assert job.payload["requested_by"].startswith("staff:")


def test_end_of_day_from_the_command_line(db: Database, demo: Any, tmp_path: Path) -> None:
    env = {**os.environ, "KASSA_DATABASE_URL": db.url}
    command = [sys.executable, "-m", "gateway.entrypoints.cli", "devices", "end-of-day"]
    run = subprocess.run(
        [*command, "--till", "Berlin Mitte/T01"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    assert "end of day queued for Berlin Mitte/T01" in run.stdout
    wrong = subprocess.run(
        [*command, "--till", "Berlin Mitte/T99"],
        env=env, capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert wrong.returncode == 2 and "no till 'T99' in store 'Berlin Mitte'" in wrong.stderr
    with db.unit_of_work(readonly=True) as uow:
        (job,) = uow.session.scalars(select(Job).where(Job.kind == cards.END_OF_DAY_JOB))
        assert job.payload == {"requested_by": "cli"}


@pytest.mark.parametrize(
    ("kassa", "difference"),
    [
        (["4.79", "4.79"], None),  # both sides: 2 payments, 9.58
        (["9.58"], "payments: terminal 2, Kassa 1"),
        (["4.79"], "total: terminal 9.58 EUR, Kassa 4.79 EUR; payments: terminal 2, Kassa 1"),
    ],
)
def test_a_field_terminals_end_of_day_totals_against_kassas_batch(
    app: Any, db: Database, demo: Any, kassa: list[str], difference: str | None
) -> None:
    """The totals of a real terminal's End-of-Day (EVerest/zvt's capture, see
    tests/drivers/test_zvt_totals.py: BMP 04 9.58, BMP 60 Eurocard 2 payments) compared with
    Kassa's authorised payments; a difference is flagged on each with both sides shown."""
    from types import SimpleNamespace

    from drivers.zvt.apdu import decode_apdu, decode_bmps
    from drivers.zvt.totals import batch_totals
    from gateway.entrypoints.device_host import terminal_totals
    from tests.drivers.test_zvt_totals import END_OF_DAY_STATUS

    till = first_till(db, demo)
    ids = []
    for number, amount in enumerate(kassa):
        payment_id = card_payment(db, till, amount)
        with db.unit_of_work() as uow:
            approved = cards.TerminalOutcome(
                approved=True, result_code=0, message="Approved",
                amount_minor=read_payment(db, payment_id).amount_minor,
                receipt_number=233 + number,
            )  # fmt: skip
            cards.apply_charge(uow, payment_id, approved, "test")
            uow.commit()
        ids.append(payment_id)
    fields = decode_bmps(decode_apdu(END_OF_DAY_STATUS).data)
    result = SimpleNamespace(
        totals=batch_totals(fields), amount_minor=fields["amount_minor"], receipt_text=""
    )
    with db.unit_of_work() as uow:
        batch = end_of_day.close_batch(uow, till.till_id, terminal_totals(result), "EUR", "test")
        uow.commit()
        assert batch.difference == difference
        assert batch.terminal_by_card_type == [
            {"card_type": "Eurocard", "count": 2, "amount_minor": 958}
        ]
        sides = end_of_day.batch_sides(batch)
    assert (sides["terminal_total"], sides["terminal_count"]) == ("9.58 EUR", 2)
    for payment_id in ids:
        payment = read_payment(db, payment_id)
        assert payment.status == "paid"
        assert (payment.attention is None) == (difference is None)
    if difference:
        manager = app.test_client()
        log_in(manager, *staff(demo, "manager"))
        page = manager.get("/portal/devices").get_data(as_text=True)
        assert 'data-batch-state="difference"' in page and "terminal 2, Kassa 1" in page


@pytest.mark.parametrize(
    ("kassa", "refund", "difference"),
    [
        # The terminal's 9.58 is the payments alone (refunds not netted): it agrees.
        (["4.79", "4.79"], "1.00", None),
        # The terminal's 9.58 is the payments less the refund (netted): it agrees too.
        (["5.79", "4.79"], "1.00", None),
        # Neither reading gives 9.58: a difference, with Kassa's net side.
        (["5.79", "4.79"], "0.50", "total: terminal 9.58 EUR, Kassa 10.08 EUR"),
    ],
)
def test_a_field_terminals_totals_with_a_refund_in_the_batch_under_either_reading(
    db: Database, demo: Any, kassa: list[str], refund: str, difference: str | None
) -> None:
    """The same field capture (EVerest/zvt: BMP 04 9.58, BMP 60 Eurocard 2 payments) against a
    batch that also holds a refund at the terminal (06 31). The ZVT spec does not say whether
    a terminal nets refunds in its End-of-Day totals and the capture holds none, so Kassa
    takes either reading as agreeing; a reversal (06 30) is out of both sides."""
    from types import SimpleNamespace

    from drivers.zvt.apdu import decode_apdu, decode_bmps
    from drivers.zvt.totals import batch_totals
    from gateway.domain.money import Money
    from gateway.entrypoints.device_host import terminal_totals
    from gateway.services.payments import refunds
    from tests.drivers.test_zvt_totals import END_OF_DAY_STATUS

    till = first_till(db, demo)

    def approved(amount: str, receipt: int) -> str:
        return approved_card_payment(db, till, amount, receipt)

    earlier = approved("3.00", 230)
    with db.unit_of_work() as uow:  # yesterday's batch: the earlier payment is paid
        yesterday = end_of_day.TerminalTotals(total_minor=300, count=1)
        end_of_day.close_batch(uow, till.till_id, yesterday, "EUR", "test")
        uow.commit()
    with db.unit_of_work() as uow:  # refunded at the terminal today (06 31)
        given_back = refunds.request_refund(
            uow, earlier, till.merchant_id, amount=Money.parse(refund, "EUR"), reason=None,
            actor="test",
        )  # fmt: skip
        uow.session.flush()
        refunds.record_bank_result(
            uow, refund_id=given_back.id, succeeded=True, bank_refund_id="receipt-232",
            amount_minor=given_back.amount_minor, currency="EUR", reason=None, actor="test",
        )  # fmt: skip
        uow.commit()
    ids = [approved(amount, 233 + number) for number, amount in enumerate(kassa)]
    fields = decode_bmps(decode_apdu(END_OF_DAY_STATUS).data)
    result = SimpleNamespace(
        totals=batch_totals(fields), amount_minor=fields["amount_minor"], receipt_text=""
    )
    with db.unit_of_work() as uow:
        batch = end_of_day.close_batch(uow, till.till_id, terminal_totals(result), "EUR", "test")
        uow.commit()
        assert batch.difference == difference
        assert batch.payment_ids == ids
    for payment_id in ids:
        assert read_payment(db, payment_id).status == "paid"
