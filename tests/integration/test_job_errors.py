"""The job worker retries what may work next time and fails at once what never will, on SQLite
and PostgreSQL: a settlement file URL outside the bank's address, input that breaks the
contract or text the database refuses are permanent; the bank not answering is temporary."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import update

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import Job, Merchant
from gateway.errors import BankUnavailable, IdempotencyRequestInProgress, InvalidInput
from gateway.services import jobs
from gateway.services.registry import job_handlers
from gateway.services.settlement import reconciliation
from tests.conftest import app_config

# Nothing listens on the discard port of the loopback address: the bank "does not answer".
BANK_URL = "http://127.0.0.1:9"


def _run(db: Database, kind: str, handlers: dict[str, jobs.Handler], **payload: Any) -> Job:
    with db.unit_of_work() as uow:
        job = jobs.enqueue(uow, kind, payload, max_attempts=5)
        uow.commit()
        job_id = job.id
    assert jobs.run_due_jobs(db, handlers) in (0, 1)
    with db.unit_of_work(readonly=True) as uow:
        found = uow.session.get_one(Job, job_id)
        uow.session.expunge(found)
        return found


def _fetch(db: Database, url: str) -> Job:
    settings = app_config(db, bank={"url": BANK_URL, "api_key": "sk_test"})
    payload = {"settlement_id": "set_1", "url": url, "merchant_id": 1, "day": "2026-11-25"}
    return _run(db, reconciliation.FETCH_FILE_JOB, job_handlers(settings), **payload)


def test_a_settlement_file_outside_the_banks_address_is_not_retried(db: Database) -> None:
    job = _fetch(db, "http://files.example.net/set_1.xml")
    assert (job.status, job.attempts) == ("failed", 1)
    assert job.last_error is not None
    assert job.last_error.startswith("permanent, not retried: BankRejected")


def test_the_bank_not_answering_is_retried_later(db: Database) -> None:
    job = _fetch(db, f"{BANK_URL}/settlements/set_1.xml")
    assert (job.status, job.attempts) == ("pending", 1)
    assert job.last_error is not None and job.last_error.startswith("BankUnavailable")


@pytest.mark.parametrize(
    ("error", "status"),
    [
        (InvalidInput("reference 'A\\x00B' breaks the contract"), "failed"),
        (BankUnavailable("the bank answered 503"), "pending"),
        (IdempotencyRequestInProgress("still running"), "pending"),
        (RuntimeError("something else"), "pending"),
    ],
)
def test_errors_are_classified(db: Database, error: Exception, status: str) -> None:
    def handler(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        raise error

    assert _run(db, "classify", {"classify": handler}).status == status


def test_text_the_database_refuses_is_permanent(db: Database, demo: Any) -> None:
    def handler(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        uow.session.execute(update(Merchant).values(name="A\x00B"))
        uow.session.flush()

    job = _run(db, "nul", {"nul": handler})
    if db.dialect == "postgresql":
        assert job.status == "failed" and "DataError" in (job.last_error or "")
    else:
        assert job.status == "done"  # SQLite stores a NUL like any other character
