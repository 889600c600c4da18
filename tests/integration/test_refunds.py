"""Refunds: limits under concurrency, idempotency, and the bank's result applied exactly once."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, Refund
from gateway.domain.money import Money
from gateway.services.payments import qr_payments, refunds
from gateway.services.staff.auth import authenticate_till
from tests.factories import paid_by_bank

SETTINGS = qr_payments.PaymentSettings()


def paid_payment(db: Database, demo: dict[str, Any], amount: str = "12.34") -> str:
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse(amount, "EUR"), settings=SETTINGS
        )
        uow.commit()
        payment_id = payment.id
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    return payment_id


def _refund(server: Any, demo: Any, payment_id: str, key: str, **body: Any) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/payments/{payment_id}/refunds",
        json=body,
        headers={
            "Authorization": f"Bearer {demo['tills'][0]['api_key']}",
            "Idempotency-Key": key,
        },
        timeout=10,
    )


def test_partial_refund_is_queued_for_the_bank(live_server: Any, demo: Any, db: Database) -> None:
    payment_id = paid_payment(db, demo)
    response = _refund(live_server, demo, payment_id, "r1", amount="2.34", reason="broken bag")
    assert response.status_code == 201, response.text
    refund = response.json()
    assert (refund["status"], refund["amount"], refund["amount_minor"]) == (
        "requested",
        "2.34",
        234,
    )
    with db.unit_of_work() as uow:
        job = uow.session.scalars(select(Job).where(Job.kind == refunds.SUBMIT_JOB)).one()
        assert job.payload == {
            "refund_id": refund["id"],
            "payment_reference": uow.session.get_one(Payment, payment_id).reference,
            "amount": "2.34",
            "currency": "EUR",
        }


def test_refund_replays_and_needs_a_key(live_server: Any, demo: Any, db: Database) -> None:
    payment_id = paid_payment(db, demo)
    first = _refund(live_server, demo, payment_id, "same", amount="1.00")
    again = _refund(live_server, demo, payment_id, "same", amount="1.00")
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    no_key = requests.post(
        f"{live_server.url}/api/v1/payments/{payment_id}/refunds",
        json={"amount": "1.00"},
        headers={"Authorization": f"Bearer {demo['tills'][0]['api_key']}"},
        timeout=10,
    )
    assert no_key.status_code == 422 and "Idempotency-Key" in no_key.json()["detail"]
    with db.unit_of_work() as uow:
        assert uow.session.scalar(select(func.count()).select_from(Refund)) == 1


@pytest.mark.parametrize(
    ("body", "status", "detail"),
    [
        ({"amount": "12.35"}, 409, "more than the 12.34 EUR still refundable"),
        ({"amount": "0.00"}, 422, "greater than zero"),
        ({"amount": "1.001"}, 422, "EUR has 2 decimal places"),
        ({"amount": 1}, 422, "never a JSON number"),
    ],
)
def test_refund_limits(
    live_server: Any, demo: Any, db: Database, body: dict[str, Any], status: int, detail: str
) -> None:
    payment_id = paid_payment(db, demo)
    response = _refund(live_server, demo, payment_id, "k", **body)
    assert response.status_code == status, response.text
    assert detail in response.json()["detail"]


def test_unpaid_payment_cannot_be_refunded(live_server: Any, demo: Any, db: Database) -> None:
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse("1.00", "EUR"), settings=SETTINGS
        )
        uow.commit()
    response = _refund(live_server, demo, payment.id, "k")
    assert response.status_code == 409
    assert response.json()["current_status"] == "pending"


def test_concurrent_refunds_never_exceed_what_was_paid(
    live_server: Any, demo: Any, db: Database
) -> None:
    payment_id = paid_payment(db, demo, "12.34")
    barrier = threading.Barrier(10)
    results: list[requests.Response] = []

    def ask(n: int) -> None:
        barrier.wait()
        results.append(_refund(live_server, demo, payment_id, f"k{n}", amount="3.00"))

    threads = [threading.Thread(target=ask, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status_code for r in results) == [201] * 4 + [409] * 6
    with db.unit_of_work() as uow:
        total = uow.session.scalar(select(func.sum(Refund.amount_minor)))
    assert total == 1200


def _result(db: Database, refund_id: str, succeeded: bool, amount_minor: int = 234) -> None:
    with db.unit_of_work() as uow:
        refunds.record_bank_result(
            uow,
            refund_id=refund_id,
            succeeded=succeeded,
            bank_refund_id="bre_1",
            amount_minor=amount_minor,
            currency="EUR",
            reason=None if succeeded else "card account closed",
        )
        uow.commit()


def test_bank_results_move_the_payment_once(live_server: Any, demo: Any, db: Database) -> None:
    payment_id = paid_payment(db, demo)
    first = _refund(live_server, demo, payment_id, "a", amount="2.34").json()
    for _ in range(3):  # the callback delivered three times
        _result(db, first["id"], succeeded=True)
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert (payment.status, payment.refunded_minor) == ("partially_refunded", 234)
    rest = _refund(live_server, demo, payment_id, "b").json()
    assert rest["amount"] == "10.00"
    _result(db, rest["id"], succeeded=True, amount_minor=1000)
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert (payment.status, payment.refunded_minor) == ("refunded", 1234)


def test_failed_refund_frees_the_amount_again(live_server: Any, demo: Any, db: Database) -> None:
    payment_id = paid_payment(db, demo)
    refund = _refund(live_server, demo, payment_id, "a", amount="12.34").json()
    assert _refund(live_server, demo, payment_id, "b", amount="0.01").status_code == 409
    _result(db, refund["id"], succeeded=False, amount_minor=1234)
    again = _refund(live_server, demo, payment_id, "c", amount="12.34")
    assert again.status_code == 201
    with db.unit_of_work() as uow:
        failed = uow.session.get_one(Refund, refund["id"])
        assert (failed.status, failed.failure) == ("failed", "card account closed")
        assert uow.session.get_one(Payment, payment_id).status == "paid"


def test_bank_reporting_another_amount_flags_the_payment(
    live_server: Any, demo: Any, db: Database
) -> None:
    payment_id = paid_payment(db, demo)
    refund = _refund(live_server, demo, payment_id, "a", amount="2.34").json()
    _result(db, refund["id"], succeeded=True, amount_minor=999)
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert payment.status == "paid" and payment.refunded_minor == 0
        assert payment.attention and "9.99 EUR" in payment.attention
