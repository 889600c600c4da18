"""The job table: background work that survives any process dying.

A job is claimed with a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so many workers share the
table; SQLite: one worker), and its handler runs in the same transaction that marks it done, so
its effect happens exactly once. A failed attempt is retried with exponential backoff, if
retrying can help: :func:`is_permanent` tells the errors that will fail the same way every time
(input that breaks the contract, the bank refusing, a settlement file URL outside the bank's
address, text PostgreSQL cannot store); such a job fails at once, with its error kept.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import DataError

from gateway.adapters import logging_setup
from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import Job, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.errors import (
    BankRejected,
    Conflict,
    IdempotencyRequestInProgress,
    InvalidInput,
    NotFound,
)

log = logging.getLogger(__name__)

Handler = Callable[[UnitOfWork, dict[str, Any]], None]

# Errors that the same job meets again on every attempt. Everything else (the bank or the
# database unavailable, a lock, a bug fixed by the next deployment) is retried with backoff.
PERMANENT_ERRORS: tuple[type[BaseException], ...] = (
    InvalidInput,  # content that breaks the contract, a NUL in a reference, an unknown currency
    BankRejected,  # the bank said no, or a URL outside the bank's own address
    NotFound,
    Conflict,
    DataError,  # the database refuses the value itself (PostgreSQL: NUL, out of range)
    UnicodeError,
)
TEMPORARY_ERRORS: tuple[type[BaseException], ...] = (IdempotencyRequestInProgress,)


def is_permanent(exc: BaseException) -> bool:
    """True if retrying the job cannot help: it is failed at once instead of retried."""
    return isinstance(exc, PERMANENT_ERRORS) and not isinstance(exc, TEMPORARY_ERRORS)


def enqueue(
    uow: UnitOfWork,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime | None = None,
    dedupe_key: str | None = None,
    max_attempts: int = 8,
    queue: str = "default",
) -> Job:
    """Add a job inside the caller's transaction (it exists only if the caller commits)."""
    job = Job(
        kind=kind,
        queue=queue,
        payload=payload,
        run_at=run_at or utcnow(),
        dedupe_key=dedupe_key,
        status="pending",
        attempts=0,
        max_attempts=max_attempts,
    )
    uow.session.add(job)
    return job


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def claim_due(
    db: Database,
    worker: str,
    limit: int,
    lease_seconds: int,
    queues: Sequence[str] = ("default",),
) -> list[int]:
    now = utcnow()
    with db.unit_of_work() as uow:
        query = (
            select(Job)
            .where(
                Job.queue.in_(queues),
                or_(
                    (Job.status == "pending") & (Job.run_at <= now),
                    (Job.status == "running") & (Job.locked_until < now),
                ),
            )
            .order_by(Job.run_at, Job.id)
            .limit(limit)
        )
        if db.dialect == "postgresql":
            query = query.with_for_update(skip_locked=True)
        jobs = list(uow.session.scalars(query))
        for job in jobs:
            job.status = "running"
            job.locked_by = worker
            job.locked_until = now + timedelta(seconds=lease_seconds)
            job.attempts += 1
        uow.commit()
        return [job.id for job in jobs]


def run_job(db: Database, job_id: int, handlers: Mapping[str, Handler], worker: str) -> bool:
    """Run one claimed job; True if it is done.

    The handler's unit of work starts empty, so a handler may call out (the bank) before its
    first query and hold no database lock meanwhile; it marks the job done in the same
    transaction as its own writes.
    """
    with db.unit_of_work(readonly=True) as uow:
        job = uow.session.get(Job, job_id)
        if job is None or job.status != "running" or job.locked_by != worker:
            return False
        kind, payload = job.kind, dict(job.payload)
    handler = handlers.get(kind)
    if handler is None:
        _record_failure(db, job_id, f"no handler for job kind {kind!r}")
        return False
    about = payload.get("payment_id")
    token = logging_setup.payment_id.set(about if isinstance(about, str) else None)
    try:
        return _run_handler(db, job_id, kind, payload, handler, worker)
    finally:
        logging_setup.payment_id.reset(token)


def _run_handler(
    db: Database, job_id: int, kind: str, payload: dict[str, Any], handler: Handler, worker: str
) -> bool:
    started = time.perf_counter()
    try:
        with db.unit_of_work() as uow:
            handler(uow, payload)
            claimed = uow.session.get(Job, job_id, with_for_update=db.dialect == "postgresql")
            if claimed is None or claimed.locked_by != worker:
                return False  # our lease ran out and another worker took the job over
            claimed.status = "done"
            claimed.finished_at = utcnow()
            claimed.locked_until = None
            uow.commit()
        log.info(
            "job %s (%s) done in %.0f ms", job_id, kind, (time.perf_counter() - started) * 1000
        )
        return True
    except Exception as exc:  # a job's failure must never stop the worker
        permanent = is_permanent(exc)
        if permanent:
            log.warning("job %s (%s) failed for good, not retried: %s", job_id, kind, exc)
        else:
            log.warning("job %s (%s) failed: %s", job_id, kind, exc, exc_info=True)
        _record_failure(db, job_id, f"{type(exc).__name__}: {exc}", permanent=permanent)
        return False


def _record_failure(db: Database, job_id: int, error: str, *, permanent: bool = False) -> None:
    with db.unit_of_work() as uow:
        job = uow.session.get(Job, job_id)
        if job is None:
            return
        text = scrub_card_numbers(error)[:2000].replace("\x00", "\\x00")  # no NUL in a database
        job.last_error = ("permanent, not retried: " if permanent else "") + text
        job.locked_until = None
        if permanent or job.attempts >= job.max_attempts:
            job.status = "failed"
            job.finished_at = utcnow()
        else:
            job.status = "pending"
            delay = min(2**job.attempts, 3600) * (0.5 + random.random())
            job.run_at = utcnow() + timedelta(seconds=delay)
        uow.commit()


def run_due_jobs(
    db: Database,
    handlers: Mapping[str, Handler],
    *,
    worker: str | None = None,
    limit: int = 50,
    lease_seconds: int = 60,
    queues: Sequence[str] = ("default",),
) -> int:
    """Claim and run the jobs that are due now; the number done."""
    worker = worker or worker_name()
    done = 0
    for job_id in claim_due(db, worker, limit, lease_seconds, queues):
        done += run_job(db, job_id, handlers, worker)
    return done


def run_worker(
    db: Database,
    handlers: Mapping[str, Handler],
    *,
    poll_interval: float = 0.5,
    lease_seconds: int = 60,
    stop: Callable[[], bool] = lambda: False,
) -> None:
    worker = worker_name()
    log.info("worker %s started", worker)
    while not stop():
        try:
            done = run_due_jobs(db, handlers, worker=worker, lease_seconds=lease_seconds)
        except Exception:
            log.exception("worker %s could not poll the job table; retrying", worker)
            done = 0
        if not done:
            time.sleep(poll_interval)
