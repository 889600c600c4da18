"""The second road to the truth, over real HTTP: with every callback lost, Kassa asks the
sandbox bank and the payment (or refund) ends as the bank says; the late callback changes
nothing; and a payment paid at the bank is never expired here."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import select, update

from gateway.adapters.db import Database
from gateway.adapters.models import InboundEvent, Job, Payment, PaymentEvent, Refund, utcnow
from gateway.services import jobs
from gateway.services.payments import qr_payments
from gateway.services.registry import job_handlers
from tests.bank_loop import BankLoop, bank_loop

FAST_POLLS = {"bank_poll_after_seconds": 0.3, "bank_poll_max_interval_seconds": 0.5}


def _till(demo: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['tills'][0]['api_key']}", **extra}


@contextmanager
def running_worker(db: Database, loop: BankLoop) -> Iterator[None]:
    """`kassa worker` in a thread: the job table's handlers as the worker runs them."""
    stopping = threading.Event()
    thread = threading.Thread(
        target=jobs.run_worker,
        args=(db, job_handlers(loop.config)),
        kwargs={"poll_interval": 0.05, "stop": stopping.is_set},
        daemon=True,
    )
    thread.start()
    try:
        yield
    finally:
        stopping.set()
        thread.join(30)


def _new_qr(loop: BankLoop, demo: dict[str, Any], amount: str, **extra: Any) -> dict[str, Any]:
    response = requests.post(
        f"{loop.gateway.url}/api/v1/payments",
        json={"amount": amount, "currency": "EUR", "method": "qr", **extra},
        headers=_till(demo),
        timeout=10,
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def _payment(db: Database, payment_id: str) -> Payment:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        uow.session.expunge(payment)  # read as it is now, kept after the transaction
        return payment


def _history(db: Database, payment_id: str) -> list[tuple[str, str, str]]:
    with db.unit_of_work(readonly=True) as uow:
        rows = uow.session.scalars(
            select(PaymentEvent)
            .where(PaymentEvent.payment_id == payment_id)
            .order_by(PaymentEvent.id)
        )
        return [(e.kind, e.to_status, e.actor) for e in rows]


def _events(db: Database) -> list[tuple[str, str | None, str]]:
    with db.unit_of_work(readonly=True) as uow:
        rows = uow.session.scalars(select(InboundEvent).order_by(InboundEvent.id))
        return [(e.external_id, e.kind, e.status) for e in rows]


def test_a_payment_whose_callbacks_are_all_lost_is_paid_by_asking_the_bank(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    with bank_loop(db, tmp_path, payments=FAST_POLLS) as loop, running_worker(db, loop):
        loop.faults(drop_all=True)
        created = _new_qr(loop, demo, "12.34")
        assert loop.wallet_pays(created["qr_payload"]).status_code in (200, 201)

        def healed() -> bool:
            """the poll marks the payment paid although no callback arrived"""
            return _payment(db, created["id"]).status == "paid"

        loop.wait_for(healed)
        payment = _payment(db, created["id"])
        assert payment.bank_payment_id and payment.paid_at
        [(answer_id, kind, status)] = _events(db)
        assert (answer_id, kind, status) == (
            f"poll:{payment.bank_payment_id}",
            "payment.succeeded",
            "processed",
        )
        before = _history(db, created["id"])
        assert [k for k, _, _ in before] == ["created", "qr_issued", "paid"]

        loop.faults()  # the bank's retry now delivers the lost callback, late

        def late_callback_stored() -> bool:
            """the late callback arrived and was stored"""
            return len(_events(db)) == 2

        loop.wait_for(late_callback_stored)
        late = _events(db)[1]
        assert late[0].startswith("evt_") and late[1:] == ("payment.succeeded", "processed")
        after = _payment(db, created["id"])
        assert (after.status, after.bank_payment_id, after.paid_at, after.attention) == (
            "paid",
            payment.bank_payment_id,
            payment.paid_at,
            None,
        )
        assert _history(db, created["id"]) == before  # the late callback changed nothing


def test_a_lost_refund_result_is_fetched_from_the_bank(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    with bank_loop(db, tmp_path, payments=FAST_POLLS) as loop, running_worker(db, loop):
        loop.faults(drop_all=True)
        created = _new_qr(loop, demo, "8.00")
        assert loop.wallet_pays(created["qr_payload"]).status_code in (200, 201)
        loop.wait_for(lambda: _payment(db, created["id"]).status == "paid")
        refund = requests.post(
            f"{loop.gateway.url}/api/v1/payments/{created['id']}/refunds",
            json={"amount": "3.00"},
            headers=_till(demo, **{"Idempotency-Key": "lost-result"}),
            timeout=10,
        )
        assert refund.status_code == 201, refund.text

        def refunded() -> bool:
            """the refund's result, asked of the bank, is applied"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.get_one(Refund, refund.json()["id"]).status == "succeeded"

        loop.wait_for(refunded)
        assert _payment(db, created["id"]).status == "partially_refunded"
        assert any(
            kind == "refund.succeeded" and external.startswith("poll:")
            for external, kind, _ in _events(db)
        )


def test_expiry_asks_the_bank_first_and_never_expires_a_paid_payment(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    no_polls = {"bank_poll_after_seconds": 0, "min_expiry_seconds": 1}
    with bank_loop(db, tmp_path, payments=no_polls) as loop:
        loop.faults(drop_all=True)
        created = _new_qr(loop, demo, "5.00", expires_in=600)
        assert loop.wallet_pays(created["qr_payload"]).status_code in (200, 201)
        _due_now(db)
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) == 1
        payment = _payment(db, created["id"])
        assert payment.status == "paid" and payment.attention is None

        unpaid = _new_qr(loop, demo, "6.00", expires_in=600)
        _due_now(db)
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) == 1
        assert _payment(db, unpaid["id"]).status == "expired"
        with db.unit_of_work(readonly=True) as uow:
            expired = uow.session.scalars(
                select(PaymentEvent).where(
                    PaymentEvent.payment_id == unpaid["id"], PaymentEvent.kind == "expired"
                )
            ).one()
            assert expired.detail == {"bank": "not paid at the bank"}


def test_a_bank_that_does_not_answer_delays_expiry_then_a_person_is_asked(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    settings = {"bank_poll_after_seconds": 0, "expiry_bank_attempts": 2}
    with bank_loop(db, tmp_path, payments=settings) as loop:
        created = _new_qr(loop, demo, "7.00", expires_in=60)
        loop.faults(api_5xx=10_000)
        handlers = job_handlers(loop.config)
        _due_now(db)
        assert jobs.run_due_jobs(db, handlers) == 1
        assert _payment(db, created["id"]).status == "pending"  # not expired without asking
        _due_now(db)
        assert jobs.run_due_jobs(db, handlers) == 1
        payment = _payment(db, created["id"])
        assert payment.status == "expired"
        assert payment.attention and "without the bank's word" in payment.attention


def _due_now(db: Database) -> None:
    """Move every waiting job and expiry time into the past (instead of sleeping)."""
    past = utcnow() - timedelta(seconds=1)
    with db.unit_of_work() as uow:
        uow.session.execute(
            update(Payment)
            .where(Payment.status == "pending")
            .values(expires_at=past)
            .execution_options(synchronize_session=False)
        )
        uow.session.execute(
            update(Job)
            .where(Job.status == "pending", Job.kind == qr_payments.POLL_JOB)
            .values(run_at=past)
        )
        uow.commit()
