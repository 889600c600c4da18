"""The job table: background work that survives any process dying.

A job is claimed with a lease (PostgreSQL: ``FOR UPDATE SKIP LOCKED``, so many workers share the
table; SQLite: one worker process), a worker runs ``[worker] threads`` jobs side by side, and a
job's handler runs in the same transaction that marks it done, so
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
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, or_, select, update
from sqlalchemy.exc import DataError, IntegrityError

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
    job = Job(**_new_job(kind, payload, run_at or utcnow(), dedupe_key, max_attempts, queue))
    uow.session.add(job)
    return job


def _new_job(
    kind: str,
    payload: dict[str, Any],
    run_at: datetime,
    dedupe_key: str | None,
    max_attempts: int = 8,
    queue: str = "default",
) -> dict[str, Any]:
    """A new job's column values, whoever writes its row (the ORM or one INSERT)."""
    return {
        "kind": kind,
        "queue": queue,
        "payload": payload,
        "run_at": run_at,
        "dedupe_key": dedupe_key,
        "status": "pending",
        "attempts": 0,
        "max_attempts": max_attempts,
    }


def enqueue_row(
    uow: UnitOfWork,
    kind: str,
    payload: dict[str, Any],
    *,
    run_at: datetime,
    dedupe_key: str | None = None,
) -> None:
    """:func:`enqueue`'s row, written now by one INSERT inside the caller's transaction, for a
    caller that does not use the job: no ORM object for a flush to write (a sale's watcher)."""
    values = _new_job(kind, payload, run_at, dedupe_key)
    uow.session.connection().execute(_JOB_INSERT, {**values, "created_at": utcnow()})


_JOB_INSERT = insert(cast(Table, Job.__table__))


def enqueue_once(
    uow: UnitOfWork,
    kind: str,
    payload: dict[str, Any],
    *,
    dedupe_key: str,
    run_at: datetime | None = None,
) -> bool:
    """Add the job unless one with ``dedupe_key`` exists; whether it was added.

    Two processes may ask at the same moment (every worker queues the daily jobs when it
    starts): the second one's insert meets the first one's row in the unique key and is
    rolled back alone, in a savepoint, instead of failing the caller's transaction.
    """
    if uow.session.scalar(select(Job.id).where(Job.dedupe_key == dedupe_key)) is not None:
        return False
    try:
        with uow.session.begin_nested():
            enqueue(uow, kind, payload, run_at=run_at, dedupe_key=dedupe_key)
    except IntegrityError:
        return False
    return True


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job this worker holds the lease of: what to run it with."""

    id: int
    kind: str
    payload: dict[str, Any]
    run_at: datetime


def claim(
    db: Database,
    worker: str,
    limit: int,
    lease_seconds: int,
    queues: Sequence[str] = ("default",),
) -> list[ClaimedJob]:
    """Lease up to ``limit`` due jobs to ``worker``, oldest first, in one statement.

    ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: one round trip takes
    the rows, marks them and reads what the handler needs, so running a job needs no second
    read. On SQLite the writing transaction (BEGIN IMMEDIATE) keeps two claims apart.
    """
    if limit <= 0:
        return []
    now = utcnow()
    due = (
        select(Job.id)
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
        due = due.with_for_update(skip_locked=True)
    statement = (
        update(Job)
        .where(Job.id.in_(due.scalar_subquery()))
        .values(
            status="running",
            locked_by=worker,
            locked_until=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
        )
        .returning(Job.id, Job.kind, Job.payload, Job.run_at)
        .execution_options(synchronize_session=False)
    )
    with db.unit_of_work() as uow:
        rows = uow.session.execute(statement).all()
        uow.commit()
    claimed = [ClaimedJob(r.id, r.kind, dict(r.payload or {}), r.run_at) for r in rows]
    return sorted(claimed, key=lambda job: (job.run_at, job.id))


def claim_due(
    db: Database,
    worker: str,
    limit: int,
    lease_seconds: int,
    queues: Sequence[str] = ("default",),
) -> list[int]:
    """The ids of the jobs :func:`claim` leased to ``worker``."""
    return [job.id for job in claim(db, worker, limit, lease_seconds, queues)]


def run_job(db: Database, job_id: int, handlers: Mapping[str, Handler], worker: str) -> bool:
    """Run one job claimed earlier (its lease read again first); True if it is done."""
    with db.unit_of_work(readonly=True) as uow:
        job = uow.session.get(Job, job_id)
        if job is None or job.status != "running" or job.locked_by != worker:
            return False
        claimed = ClaimedJob(job.id, job.kind, dict(job.payload), job.run_at)
    return run_claimed(db, claimed, handlers, worker)


def run_claimed(
    db: Database, job: ClaimedJob, handlers: Mapping[str, Handler], worker: str
) -> bool:
    """Run a job just claimed by :func:`claim`; True if it is done.

    The handler's unit of work starts empty, so a handler may call out (the bank) before its
    first query and hold no database lock meanwhile; it marks the job done in the same
    transaction as its own writes. Its log lines carry the job's payment id and a request id
    (``job-<id>``) that the bank client sends on as ``X-Request-Id``.
    """
    handler = handlers.get(job.kind)
    if handler is None:
        _record_failure(db, job.id, f"no handler for job kind {job.kind!r}")
        return False
    about = job.payload.get("payment_id")
    payment_token = logging_setup.payment_id.set(about if isinstance(about, str) else None)
    request_token = logging_setup.request_id.set(f"job-{job.id}")
    try:
        return _run_handler(db, job.id, job.kind, job.payload, handler, worker)
    finally:
        logging_setup.request_id.reset(request_token)
        logging_setup.payment_id.reset(payment_token)


def _run_handler(
    db: Database, job_id: int, kind: str, payload: dict[str, Any], handler: Handler, worker: str
) -> bool:
    started = time.perf_counter()
    try:
        with db.unit_of_work() as uow:
            handler(uow, payload)
            # One UPDATE takes the row lock and checks the lease: if it ran out and another
            # worker took the job over, nothing of this attempt is committed.
            finished = uow.session.execute(
                update(Job)
                .where(Job.id == job_id, Job.locked_by == worker)
                .values(status="done", finished_at=utcnow(), locked_until=None)
                .execution_options(synchronize_session=False)
            )
            if finished.rowcount != 1:  # type: ignore[attr-defined]
                return False
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
    """Claim and run the jobs that are due now, one after another; the number done."""
    worker = worker or worker_name()
    done = 0
    for job in claim(db, worker, limit, lease_seconds, queues):
        done += run_claimed(db, job, handlers, worker)
    return done


def run_worker(
    db: Database,
    handlers: Mapping[str, Handler],
    *,
    poll_interval: float = 0.5,
    lease_seconds: int = 60,
    stop: Callable[[], bool] = lambda: False,
    threads: int = 1,
) -> None:
    """Run due jobs until ``stop()``, ``threads`` at a time.

    Most jobs wait on something else (the bank's answer, a database round trip), so several
    run side by side: a question to the bank about one payment does not hold up the next
    payment's. The loop claims only as many jobs as it has room for (twice ``threads``: one
    running and one waiting per thread), so a job is never leased long before it runs; it
    looks again as soon as a job ends, and waits ``poll_interval`` only when nothing is due.
    """
    worker = worker_name()
    log.info("worker %s started (%d threads)", worker, threads)
    capacity = 2 * max(threads, 1)
    held = 0  # claimed and not finished
    changed = threading.Condition()

    def finished(future: Future[bool]) -> None:
        nonlocal held
        if future.exception() is not None:  # recording the job's failure failed too
            log.error("worker %s: a job ended unrecorded", worker, exc_info=future.exception())
        with changed:
            held -= 1
            changed.notify()

    with ThreadPoolExecutor(max(threads, 1), thread_name_prefix="kassa-job") as pool:
        while not stop():
            with changed:
                if held >= capacity:
                    changed.wait(poll_interval)
                    continue
                room = capacity - held
            try:
                claimed = claim(db, worker, room, lease_seconds)
            except Exception:
                log.exception("worker %s could not poll the job table; retrying", worker)
                claimed = []
            for job in claimed:
                with changed:
                    held += 1
                pool.submit(run_claimed, db, job, handlers, worker).add_done_callback(finished)
            if not claimed:
                with changed:
                    changed.wait(poll_interval)
