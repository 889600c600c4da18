"""A day reconciled in partitions over the job table gives the single-process verdicts, row
for row, on SQLite and PostgreSQL; a retried step doubles nothing, and readers see the day's
old verdicts until the run is published."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Job, ReconResult, ReconRun
from gateway.adapters.recon_part_models import ReconFanout, ReconFanoutKey, ReconFanoutResult
from gateway.services import jobs
from gateway.services.settlement import recon_parts, reconciliation
from sandbox_bank.settlement import SettlementLine
from tests.integration.test_reconciliation_week import (
    SETTINGS,
    WEEK,
    _import,
    _line,
    _paid,
    _refunded,
)

AS_OF = WEEK[-1] + timedelta(days=5)
IN_PARTS = replace(SETTINGS, parts=3, parts_from=0)
HANDLERS = recon_parts.handlers(IN_PARTS)


def week_with_faults(db: Database, demo: dict[str, Any], tmp_path: Path) -> int:
    """Three payments a day and their camt.053 lines; missing, twice, a fee off, a refund, an
    unknown line, and a line naming two payments' references in its remittance."""
    paid = {
        day: [_paid(db, demo, day, f"{10 + n}.{day.day:02d}") for n in range(3)] for day in WEEK
    }
    refund = _refunded(db, paid[WEEK[2]][0], WEEK[2], "2.00")
    for day in WEEK:
        lines = [
            _line(p, day, fee_delta=7 if (day, i) == (WEEK[4], 2) else 0)
            for i, p in enumerate(paid[day])
            if (day, i) != (WEEK[1], 0)
        ]
        if day == WEEK[3]:
            lines.append(_line(paid[WEEK[2]][1], day, again=True))
            lines.append(
                SettlementLine("payment", None, "pay_both", None, None, day, 999, 0, "EUR",
                               f"{paid[WEEK[3]][2].reference} {paid[WEEK[3]][1].reference}")
            )  # fmt: skip
        if day == WEEK[2]:
            lines.append(
                SettlementLine("refund", paid[day][0].reference, "pay", "rfd", refund.id, day,
                               200, 0, "EUR", "")
            )  # fmt: skip
        if day == WEEK[5]:
            lines.append(
                SettlementLine("payment", "NOT-KASSA", "pay_x", None, None, day, 777, 22, "EUR", "")
            )
        _import(db, tmp_path, day, lines)
    return paid[WEEK[0]][0].merchant_id


def rows(db: Database, day: date) -> list[tuple[object, ...]]:
    today = select(ReconResult).where(ReconResult.day == day.isoformat())
    with db.unit_of_work(readonly=True) as uow:
        return sorted(
            (r.subject, r.subject_id, r.outcome, r.currency, r.expected_minor, r.settled_minor,
             r.fee_expected_minor, r.fee_charged_minor, tuple(r.linked), r.reason)
            for r in uow.session.scalars(today)
        )  # fmt: skip


def single(db: Database, merchant_id: int, day: date) -> ReconRun:
    with db.unit_of_work() as uow:
        run = reconciliation.reconcile_day(
            uow, merchant_id, day, SETTINGS, actor="test", as_of=AS_OF
        )
        uow.commit()
        return run


def fan_out(db: Database, merchant_id: int, day: date) -> int:
    with db.unit_of_work() as uow:
        run = reconciliation.reconcile_or_fan_out(
            uow, merchant_id, day, IN_PARTS, actor="test", as_of=AS_OF
        )
        assert run is None  # under way
        fanout_id = uow.session.scalars(
            select(ReconFanout.id).order_by(ReconFanout.id.desc())
        ).first()
        uow.commit()
    assert fanout_id is not None
    return fanout_id


def run_all(db: Database) -> None:
    """Run the reconciliation jobs until none is left to run (other jobs have no handler here)."""
    for _ in range(100):
        jobs.run_due_jobs(db, HANDLERS)
        with db.unit_of_work(readonly=True) as uow:
            left = uow.session.scalar(
                select(func.count()).where(
                    Job.kind.like("recon_%"), Job.status.in_(("pending", "running"))
                )
            )
        if not left:
            return
    raise AssertionError("reconciliation jobs still pending after 100 rounds")


def count(db: Database, model: Any) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model)) or 0)


def test_partitions_give_the_single_process_verdicts(
    db: Database, demo: dict[str, Any], tmp_path: Path
) -> None:
    merchant_id = week_with_faults(db, demo, tmp_path)
    for day in WEEK:
        first = single(db, merchant_id, day)
        want = rows(db, day)
        fanout_id = fan_out(db, merchant_id, day)
        run_all(db)
        assert rows(db, day) == want, day
        with db.unit_of_work(readonly=True) as uow:
            fanout = uow.session.get_one(ReconFanout, fanout_id)
            assert fanout.state == "done"
            run = uow.session.get_one(ReconRun, fanout.run_id)
            assert (run.counts, run.source) == (first.counts, first.source)
            kinds = sorted(
                j.dedupe_key.split(":run:")[1]
                for j in uow.session.scalars(select(Job).where(Job.kind.like("recon_%")))
                if j.dedupe_key and f":run:{fanout_id}:" in j.dedupe_key
            )
        assert kinds == sorted(
            [f"{fanout_id}:part:{k}/3" for k in range(3)]
            + [f"{fanout_id}:judge:{k}/3" for k in range(3)]
            + [f"{fanout_id}:residue"]
        )
    assert count(db, ReconFanoutKey) == count(db, ReconFanoutResult) == 0  # scratch cleared


def test_a_retried_step_doubles_nothing_and_readers_see_all_or_nothing(
    db: Database, demo: dict[str, Any], tmp_path: Path
) -> None:
    merchant_id = week_with_faults(db, demo, tmp_path)
    day = WEEK[3]
    single(db, merchant_id, day)
    want = rows(db, day)
    with db.unit_of_work() as uow:  # yesterday's verdicts, which readers see until the end
        reconciliation.decide(uow, merchant_id, action="write_off", subject_id=None,
                              line_ids=("1",), note="test", actor="staff:manager")  # fmt: skip
        uow.commit()
    with db.unit_of_work() as uow:
        reconciliation.reconcile_day(uow, merchant_id, day, SETTINGS, actor="t", as_of=AS_OF)
        uow.commit()
    before = rows(db, day)
    with db.unit_of_work() as uow:
        decision = uow.session.scalars(select(reconciliation.ReconDecision)).one()
        reconciliation.reopen(uow, merchant_id, decision.id, "staff:owner")
        uow.commit()
    fanout_id = fan_out(db, merchant_id, day)
    # Each part and judge step runs twice (a retry after a crash that came after its writes):
    # it replaces its own rows.
    for step, n in ((recon_parts.run_part, 3), (recon_parts.run_judge, 3)):
        for k in range(n):
            for _ in range(2):
                with db.unit_of_work() as uow:
                    step(uow, fanout_id, k, IN_PARTS)
                    uow.commit()
        assert rows(db, day) == before  # nothing published yet
    with db.unit_of_work(readonly=True) as uow:
        fanout = uow.session.get_one(ReconFanout, fanout_id)
        assert (fanout.state, fanout.parts_done, fanout.slots_done) == (
            "residue",
            [0, 1, 2],
            [0, 1, 2],
        )
    run_all(db)  # the judge jobs find the step done; the residue job publishes
    assert rows(db, day) == want
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(ReconFanout, fanout_id).state == "done"
        subjects = uow.session.execute(
            select(ReconResult.subject, ReconResult.subject_id, func.count())
            .group_by(ReconResult.subject, ReconResult.subject_id)
            .having(func.count() > 1)
        ).all()
        assert subjects == []


def test_a_newer_run_supersedes_one_under_way(
    db: Database, demo: dict[str, Any], tmp_path: Path
) -> None:
    merchant_id = week_with_faults(db, demo, tmp_path)
    day = WEEK[2]
    single(db, merchant_id, day)
    want = rows(db, day)
    older = fan_out(db, merchant_id, day)
    with db.unit_of_work() as uow:
        recon_parts.run_part(uow, older, 0, IN_PARTS)
        uow.commit()
    newer = fan_out(db, merchant_id, day)
    run_all(db)
    assert rows(db, day) == want
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(ReconFanout, older).state == "superseded"
        assert uow.session.get_one(ReconFanout, newer).state == "done"
        assert (
            len(uow.session.scalars(select(ReconRun).where(ReconRun.day == day.isoformat())).all())
            == 2
        )


@pytest.mark.parametrize("parts", [1, 2])
def test_small_days_keep_one_process(db: Database, demo: dict[str, Any], parts: int) -> None:
    payment = _paid(db, demo, WEEK[0], "5.00")
    settings = replace(SETTINGS, parts=parts)  # parts_from as configured: far above one payment
    with db.unit_of_work() as uow:
        run = reconciliation.reconcile_or_fan_out(
            uow, payment.merchant_id, WEEK[0], settings, actor="t"
        )
        assert run is not None and sum(run.counts.values()) == 1
        uow.commit()
    assert count(db, ReconFanout) == 0
