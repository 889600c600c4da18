"""A daily job queued by two processes at the same moment exists once, and neither fails.

Every ``kassa worker`` queues the daily jobs when it starts. Two workers started together (as
on two hosts) both found no job and both inserted it: the second one's insert met the unique
key and the worker died at start (seen in ``test_horizontal`` on PostgreSQL).
"""

from __future__ import annotations

import threading
import time
from datetime import date

from sqlalchemy import func, select, text

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import Job
from gateway.services import jobs
from gateway.services.promotions.privacy import RETENTION_JOB, schedule_retention
from gateway.services.promotions.sales import PURGE_JOB, schedule_purge
from gateway.services.settlement.reconciliation import schedule_daily

DAY = date(2026, 12, 6)


def _schedule(uow: UnitOfWork) -> None:
    schedule_daily(uow, 1, DAY)
    schedule_purge(uow, DAY)
    schedule_retention(uow, DAY)


def _second_is_waiting(db: Database) -> bool:
    """PostgreSQL: another connection waits on a lock (the first one's uncommitted key)."""
    with db.engine.connect() as conn:
        waiting = conn.scalar(
            text(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'"
            )
        )
    return bool(waiting)


def test_two_processes_queue_the_daily_jobs_at_once(db: Database) -> None:
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with db.unit_of_work() as uow:
                _schedule(uow)
                uow.commit()
            outcome["second"] = "committed"
        except Exception as exc:  # the defect: the worker's start failed here
            outcome["second"] = exc

    with db.unit_of_work() as uow:
        _schedule(uow)
        uow.session.flush()  # the first one's rows are written, not yet committed
        other = threading.Thread(target=second)
        other.start()
        if db.dialect == "postgresql":
            # The second one must meet the first one's uncommitted key, not find it committed.
            ceiling = time.monotonic() + 120  # a ceiling for a loaded machine, not a deadline
            while not _second_is_waiting(db):
                assert other.is_alive(), outcome
                assert time.monotonic() < ceiling, "the second transaction never waited"
                time.sleep(0.01)
        uow.commit()
    other.join(120)
    assert outcome == {"second": "committed"}
    with db.unit_of_work(readonly=True) as uow:
        keys = list(uow.session.scalars(select(Job.dedupe_key).order_by(Job.dedupe_key)))
    assert keys == sorted(
        [f"{PURGE_JOB}:2026-12-06", f"{RETENTION_JOB}:2026-12-06", "recon:1:2026-12-06"]
    )


def test_enqueue_once_says_whether_it_added(db: Database) -> None:
    with db.unit_of_work() as uow:
        assert jobs.enqueue_once(uow, "k", {}, dedupe_key="once") is True
        assert jobs.enqueue_once(uow, "k", {}, dedupe_key="once") is False
        uow.commit()
    with db.unit_of_work() as uow:
        assert jobs.enqueue_once(uow, "k", {"again": 1}, dedupe_key="once") is False
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Job)) == 1
