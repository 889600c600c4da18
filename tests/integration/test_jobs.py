"""Background jobs: QR expiry through the job table, retries, and the worker process."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, update

from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, utcnow
from gateway.domain.money import Money
from gateway.services import jobs
from gateway.services.payments import qr_payments
from gateway.services.registry import job_handlers
from gateway.services.staff.auth import authenticate_till
from tests.factories import paid_by_bank

SETTINGS = qr_payments.PaymentSettings(min_expiry_seconds=1)


def _new_payment(db: Database, demo: dict[str, Any], expires_in: int = 60) -> str:
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse("5.00", "EUR"), settings=SETTINGS, expires_in=expires_in
        )
        uow.commit()
        return payment.id


def _status(db: Database, payment_id: str) -> str:
    with db.unit_of_work() as uow:
        return uow.session.get_one(Payment, payment_id).status


def _backdate(db: Database, payment_id: str) -> None:
    past = utcnow() - timedelta(seconds=1)
    with db.unit_of_work() as uow:
        uow.session.execute(
            update(Payment)
            .where(Payment.id == payment_id)
            .values(expires_at=past)
            .execution_options(synchronize_session=False)
        )
        uow.session.execute(update(Job).values(run_at=past))
        uow.commit()


def test_payment_expires_through_the_job_table(db: Database, demo: Any) -> None:
    payment_id = _new_payment(db, demo)
    assert jobs.run_due_jobs(db, job_handlers()) == 0  # not due yet
    assert _status(db, payment_id) == "pending"
    _backdate(db, payment_id)
    assert jobs.run_due_jobs(db, job_handlers()) == 1
    assert _status(db, payment_id) == "expired"
    with db.unit_of_work() as uow:
        job = uow.session.scalars(select(Job)).one()
        assert (job.status, job.attempts) == ("done", 1)


def test_expiry_leaves_a_paid_payment_alone(db: Database, demo: Any) -> None:
    payment_id = _new_payment(db, demo)
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    _backdate(db, payment_id)
    assert jobs.run_due_jobs(db, job_handlers()) == 1
    assert _status(db, payment_id) == "paid"


def test_a_failing_job_is_retried_later_then_given_up(db: Database) -> None:
    calls: list[dict[str, Any]] = []

    def flaky(uow: Any, payload: dict[str, Any]) -> None:
        calls.append(payload)
        raise RuntimeError("bank unreachable")

    with db.unit_of_work() as uow:
        jobs.enqueue(uow, "flaky", {"n": 1}, max_attempts=2)
        uow.commit()
    assert jobs.run_due_jobs(db, {"flaky": flaky}) == 0
    with db.unit_of_work() as uow:
        job = uow.session.scalars(select(Job)).one()
        assert (job.status, job.attempts) == ("pending", 1)
        assert job.last_error == "RuntimeError: bank unreachable"
        assert job.run_at > utcnow()  # backed off
        job.run_at = utcnow()
        uow.commit()
    jobs.run_due_jobs(db, {"flaky": flaky})
    with db.unit_of_work() as uow:
        assert uow.session.scalars(select(Job)).one().status == "failed"
    assert len(calls) == 2


def test_a_job_whose_worker_died_is_taken_over_after_its_lease(db: Database) -> None:
    with db.unit_of_work() as uow:
        jobs.enqueue(uow, "noop", {})
        uow.commit()
    assert jobs.claim_due(db, "dead-worker", 10, lease_seconds=60)
    assert jobs.run_due_jobs(db, {"noop": lambda uow, p: None}) == 0  # leased to the dead one
    with db.unit_of_work() as uow:
        uow.session.execute(update(Job).values(locked_until=utcnow() - timedelta(seconds=1)))
        uow.commit()
    assert jobs.run_due_jobs(db, {"noop": lambda uow, p: None}) == 1


@pytest.mark.parametrize("db", ["sqlite", "postgresql"], indirect=True)
def test_worker_process_expires_payment_nobody_watches(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    payment_id = _new_payment(db, demo, expires_in=1)
    env = {**os.environ, "KASSA_DATABASE_URL": db.url, "KASSA_WORKER_POLL_INTERVAL_MS": "100"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "gateway.entrypoints.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        # A ceiling, not a deadline: a loaded machine takes a while to start the worker.
        ceiling = time.monotonic() + 120
        while time.monotonic() < ceiling and _status(db, payment_id) != "expired":
            if worker.poll() is not None:
                break  # the worker died: its output says why
            time.sleep(0.1)
        assert _status(db, payment_id) == "expired"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=60)[0].decode()
    assert worker.returncode == 0, output
