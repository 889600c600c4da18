"""Two real ``kassa worker`` processes share the partitions of a day on PostgreSQL, and the day's
verdicts are the single-process run's; a worker killed (SIGKILL) mid-partition leaves its job
to be leased again, and the retried run gives the same verdicts with none doubled.

To hold the parts mid-step without racing a clock, the test takes the run row's lock itself
(``SELECT … FOR NO KEY UPDATE``): each part reads the day and writes its scratch rows, then
waits for that lock, which is where it counts the finished parts. The test sees them wait in
``pg_stat_activity``, kills a worker there, and lets go. Every wait is a poll with a generous
ceiling. Skipped without PostgreSQL (SQLite is one host's single worker).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from gateway.adapters.db import Database
from gateway.adapters.models import Job, ReconResult
from gateway.adapters.recon_part_models import ReconFanout
from gateway.services.settlement.recon_parts import PART_JOB
from tests.integration.test_horizontal import Fleet
from tests.integration.test_recon_parts import WEEK, fan_out, rows, single, week_with_faults

pytestmark = [
    pytest.mark.parametrize("db", ["postgresql"], indirect=True),
    pytest.mark.timeout(900),  # processes on a loaded machine; every wait has its own ceiling
]

WORKER_ENV = {
    "KASSA_WORKER_THREADS": "1",
    "KASSA_WORKER_LEASE_SECONDS": "20",
    "PYTHONUNBUFFERED": "1",  # the "running jobs" line reaches the log at once
}
WAITING = text(
    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
    "AND pid <> pg_backend_pid() AND query LIKE '%recon_fanouts%' "
    "AND query LIKE '%FOR NO KEY UPDATE%'"
)


@pytest.fixture
def workers(db: Database, demo: dict[str, Any], tmp_path: Path) -> Iterator[Fleet]:
    """Two worker processes, started by :func:`hold_parts` (after the run row is locked)."""
    fleet = Fleet(db, tmp_path)
    try:
        yield fleet
    finally:
        fleet.stop()


def part_jobs(db: Database, fanout_id: int) -> list[Job]:
    with db.unit_of_work(readonly=True) as uow:
        found = uow.session.scalars(
            select(Job).where(Job.kind == PART_JOB, Job.dedupe_key.like(f"%:run:{fanout_id}:%"))
        ).all()
        uow.session.expunge_all()
        return list(found)


def hold_parts(db: Database, fleet: Fleet, fanout_id: int) -> Any:
    """Take the run row's lock, start the workers, and wait until each has a part waiting."""
    conn = db.engine.connect()
    conn.begin()
    # The lock the steps take to count (their scratch rows' foreign keys pass it).
    conn.execute(
        text("SELECT id FROM recon_fanouts WHERE id = :id FOR NO KEY UPDATE"), {"id": fanout_id}
    )
    for name in ("worker-a", "worker-b"):  # started now, so no part can finish before the lock
        fleet.start(name, "worker", env=WORKER_ENV)

    def both_waiting() -> bool:
        owners = {j.locked_by for j in part_jobs(db, fanout_id) if j.status == "running"}
        with db.engine.connect() as look:
            waiting = int(look.execute(WAITING).scalar_one())
        return len(owners) == 2 and waiting == 2  # one part running per worker (one thread)

    try:
        fleet.wait_until(both_waiting, "parts of both workers waiting on the run row")
    except BaseException:
        conn.close()  # else the lock outlives the test
        for name, _ in fleet.processes:
            print(name, fleet.output(name)[-3000:])
        raise
    return conn


def wait_done(db: Database, fleet: Fleet, fanout_id: int) -> None:
    def done() -> bool:
        with db.unit_of_work(readonly=True) as uow:
            return uow.session.get_one(ReconFanout, fanout_id).state == "done"

    fleet.wait_until(done, f"run {fanout_id} published")


def no_doubles(db: Database) -> None:
    with db.unit_of_work(readonly=True) as uow:
        twice = uow.session.execute(
            select(ReconResult.subject, ReconResult.subject_id)
            .group_by(ReconResult.subject, ReconResult.subject_id)
            .having(func.count() > 1)
        ).all()
    assert twice == []


def pid_of(fleet: Fleet, name: str) -> int:
    return next(proc.pid for n, proc in fleet.processes if n == name)


def test_two_workers_run_the_partitions_of_a_day(
    db: Database, demo: dict[str, Any], tmp_path: Path, workers: Fleet
) -> None:
    merchant_id = week_with_faults(db, demo, tmp_path)
    day = WEEK[3]
    single(db, merchant_id, day)
    want = rows(db, day)
    fanout_id = fan_out(db, merchant_id, day)
    lock = hold_parts(db, workers, fanout_id)
    lock.close()  # lets the parts go on
    wait_done(db, workers, fanout_id)
    assert rows(db, day) == want
    ran = {j.locked_by.rsplit(":", 1)[-1] for j in part_jobs(db, fanout_id) if j.locked_by}
    assert ran == {str(pid_of(workers, "worker-a")), str(pid_of(workers, "worker-b"))}
    no_doubles(db)
    for name in ("worker-a", "worker-b"):
        assert "recon_part) failed" not in workers.output(name), workers.output(name)


def test_a_worker_killed_mid_partition_changes_no_verdict(
    db: Database, demo: dict[str, Any], tmp_path: Path, workers: Fleet
) -> None:
    merchant_id = week_with_faults(db, demo, tmp_path)
    day = WEEK[3]
    single(db, merchant_id, day)
    want = rows(db, day)
    fanout_id = fan_out(db, merchant_id, day)
    lock = hold_parts(db, workers, fanout_id)
    victim = pid_of(workers, "worker-a")
    killed = [
        j.id for j in part_jobs(db, fanout_id) if j.locked_by and j.locked_by.endswith(f":{victim}")
    ]
    assert killed  # worker-a holds a part, mid-step
    os.kill(victim, signal.SIGKILL)
    proc = next(p for n, p in workers.processes if n == "worker-a")
    proc.wait(timeout=120)
    workers.processes = [(n, p) for n, p in workers.processes if n != "worker-a"]
    lock.close()
    assert rows(db, day) == want  # the old verdicts, untouched so far
    wait_done(db, workers, fanout_id)  # worker-b takes the killed part when its lease ends
    assert rows(db, day) == want
    no_doubles(db)
    retried = [j for j in part_jobs(db, fanout_id) if j.id in killed]
    assert {(j.status, j.attempts) for j in retried} == {("done", 2)}
    assert all(
        j.locked_by and j.locked_by.endswith(f":{pid_of(workers, 'worker-b')}") for j in retried
    )
