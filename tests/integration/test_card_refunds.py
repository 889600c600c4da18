"""Card refunds and voids through the API, carried out by the device host at the simulated
terminal: before end of day a reversal of the whole payment (06 30), after it a refund (06 31).
SQLite and PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import select

from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import Job, Refund, utcnow
from gateway.entrypoints.device_host import DeviceHost
from gateway.services.devices import cards, end_of_day
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"
        yield simulator  # type: ignore[misc]


@pytest.fixture
def host(db: Database, demo: Any, terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    device_host = host_for(db, first_till(db, demo), terminal.port, timezone="Europe/Berlin")
    yield device_host
    close(device_host)


def _refund(
    server: Any, demo: Any, payment_id: str, key: str, amount: str | None = None
) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/payments/{payment_id}/refunds",
        json={"amount": amount} if amount else {},
        headers={
            "Authorization": f"Bearer {demo['tills'][0]['api_key']}",
            "Idempotency-Key": key,
        },
        timeout=10,
    )


def _refund_row(db: Database, refund_id: str) -> Refund:
    with db.unit_of_work(readonly=True) as uow:
        refund = uow.session.get_one(Refund, refund_id)
        uow.session.expunge(refund)
        return refund


def _authorised(db: Database, demo: Any, host: DeviceHost, amount: str) -> str:
    payment_id = card_payment(db, first_till(db, demo), amount)
    until(lambda: read_payment(db, payment_id).status == "authorised", host)
    return payment_id


def _close_the_day(db: Database, demo: Any, host: DeviceHost, payment_id: str) -> None:
    till = first_till(db, demo)
    with db.unit_of_work() as uow:
        end_of_day.request_end_of_day(uow, till.till_id, till.merchant_id, "test")
        uow.commit()
    until(lambda: read_payment(db, payment_id).status == "paid", host)


def test_a_refund_in_the_open_batch_reverses_the_whole_payment_once(
    live_server: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = _authorised(db, demo, host, "18.00")
    response = _refund(live_server, demo, payment_id, "void-1")
    assert response.status_code == 201, response.text
    refund = response.json()
    assert (refund["status"], refund["amount"]) == ("requested", "18.00")
    replay = _refund(live_server, demo, payment_id, "void-1")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json()["id"] == refund["id"]
    until(lambda: _refund_row(db, refund["id"]).status == "succeeded", host)

    payment = read_payment(db, payment_id)
    assert payment.status == "cancelled" and payment.refunded_minor == 1800
    assert [b.kind for b in terminal.journal] == ["authorisation", "reversal"]
    reversal = terminal.journal[1]
    assert _refund_row(db, refund["id"]).bank_refund_id == f"receipt-{reversal.receipt_number}"
    again = _refund(live_server, demo, payment_id, "void-2")
    assert again.status_code == 409 and "cancelled" in again.json()["detail"]


def test_part_of_a_payment_in_the_open_batch_is_refused_with_what_to_do(
    live_server: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = _authorised(db, demo, host, "18.00")
    response = _refund(live_server, demo, payment_id, "part-1", "5.00")
    assert response.status_code == 409
    body = response.json()
    assert body["type"] == "/problems/conflict" and body["current_status"] == "authorised"
    assert "reverse it whole or refund after end of day" in body["detail"]
    whole = _refund(live_server, demo, payment_id, "part-2", "18.00")  # the whole amount is fine
    assert whole.status_code == 201
    second = _refund(live_server, demo, payment_id, "part-3")
    assert second.status_code == 409 and "already being reversed" in second.json()["detail"]


def test_after_end_of_day_the_terminal_refunds_in_part_within_the_cap(
    live_server: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = _authorised(db, demo, host, "18.00")
    _close_the_day(db, demo, host, payment_id)
    first = _refund(live_server, demo, payment_id, "after-1", "5.00")
    assert first.status_code == 201, first.text
    too_much = _refund(live_server, demo, payment_id, "after-2", "13.01")
    assert too_much.status_code == 409 and "still refundable" in too_much.json()["detail"]
    until(lambda: _refund_row(db, first.json()["id"]).status == "succeeded", host)
    assert read_payment(db, payment_id).status == "partially_refunded"
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == [
        ("authorisation", 1800),
        ("refund", 500),
    ]


def test_a_void_overtaken_by_end_of_day_fails_and_says_to_refund(
    live_server: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = _authorised(db, demo, host, "9.00")
    refund = _refund(live_server, demo, payment_id, "late-1").json()
    with db.unit_of_work() as uow:  # the reversal waits; the day is closed first
        reverse = uow.session.scalars(select(Job).where(Job.kind == cards.REVERSE_JOB)).one()
        reverse.run_at = utcnow() + timedelta(hours=1)
        uow.commit()
    _close_the_day(db, demo, host, payment_id)
    with db.unit_of_work() as uow:
        uow.session.scalars(
            select(Job).where(Job.kind == cards.REVERSE_JOB)
        ).one().run_at = utcnow()
        uow.commit()
    until(lambda: _refund_row(db, refund["id"]).status == "failed", host)
    assert "refund it now" in (_refund_row(db, refund["id"]).failure or "")
    assert read_payment(db, payment_id).status == "paid"
    assert [b.kind for b in terminal.journal] == ["authorisation"]
    now = _refund(live_server, demo, payment_id, "late-2")  # the failed void counts no more
    assert now.status_code == 201 and now.json()["amount"] == "9.00"


def test_the_cashier_reverses_an_open_batch_payment_whole_from_the_refund_page(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    from tests.integration.test_cashier_pages import at_till
    from tests.integration.test_cashier_refunds import refund_form

    client = app.test_client()
    at_till(client, demo)
    payment_id = _authorised(db, demo, host, "6.00")
    page, form = refund_form(client, payment_id)
    assert "data-whole-only" in page
    part = client.post(f"/cashier/payments/{payment_id}/refund", data={**form, "amount": "1,00"})
    assert part.status_code == 422
    assert "reverse it whole or refund after end of day" in part.get_data(as_text=True)
    whole = client.post(f"/cashier/payments/{payment_id}/refund", data={**form, "amount": "6,00"})
    assert whole.status_code == 303
    until(lambda: read_payment(db, payment_id).status == "cancelled", host)
