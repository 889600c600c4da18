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
        kwargs={
            "poll_interval": 0.05,
            "stop": stopping.is_set,
            "threads": loop.config.worker.threads,  # side by side, as `kassa worker` runs them
        },
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
    """Every callback dropped: the worker's polls (several at once) pay each payment once;
    the callbacks the bank delivers late afterwards are stored and change nothing."""
    with bank_loop(db, tmp_path, payments=FAST_POLLS) as loop, running_worker(db, loop):
        loop.faults(drop_all=True)
        created = [_new_qr(loop, demo, amount) for amount in ("12.34", "5.60", "7.80")]
        for each in created:
            assert loop.wallet_pays(each["qr_payload"]).status_code in (200, 201)

        def healed() -> bool:
            """the polls mark every payment paid although no callback arrived"""
            return all(_payment(db, each["id"]).status == "paid" for each in created)

        loop.wait_for(healed)
        paid = {each["id"]: _payment(db, each["id"]) for each in created}
        assert all(p.bank_payment_id and p.paid_at for p in paid.values())
        assert sorted(_events(db)) == sorted(
            (f"poll:{p.bank_payment_id}", "payment.succeeded", "processed") for p in paid.values()
        )
        before = {pid: _history(db, pid) for pid in paid}
        assert all(
            [k for k, _, _ in h] == ["created", "qr_issued", "paid"] for h in before.values()
        )

        loop.faults()  # the bank's retries now deliver the lost callbacks, late

        def late_callbacks_stored() -> bool:
            """the late callbacks arrived and were stored"""
            return len(_events(db)) == 2 * len(created)

        loop.wait_for(late_callbacks_stored)
        late = [e for e in _events(db) if not e[0].startswith("poll:")]
        assert all(
            e[0].startswith("evt_") and e[1:] == ("payment.succeeded", "processed") for e in late
        )
        for pid, payment in paid.items():
            after = _payment(db, pid)
            assert (after.status, after.bank_payment_id, after.paid_at, after.attention) == (
                "paid",
                payment.bank_payment_id,
                payment.paid_at,
                None,
            )
            assert _history(db, pid) == before[pid]  # the late callback changed nothing


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
