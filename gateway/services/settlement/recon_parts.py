"""A chain's day reconciled in partitions by whichever workers are free, over the job table.

The steps (``gateway/domain/reconciliation/partitions.py`` gives the matching):

1. :func:`fan_out` writes the run row (``ReconFanout``) and one ``recon_part`` job per
   partition k of N (dedupe key ``recon:{merchant}:{day}:run:{run}:part:{k}/{N}``). Each part
   reads the day in columns, keeps the keys that hash to k, and files its candidate pairs and
   ruled-out payments under each payment's judging slot (a hash of the payment id).
2. The part that completes the set (it locks the run row and counts the finished parts in it)
   enqueues one ``recon_judge`` job per slot, once. A judge checks and judges its slot's pairs
   and stages the day's verdicts.
3. The judge that completes the slots enqueues the one ``recon_residue`` job: it reads the day,
   runs the pure engine on what no pair took, and publishes the run in one transaction: the
   day's old verdicts replaced by the staged ones and its own, the ``ReconRun`` row, the
   webhook event; the scratch rows are deleted.

Each step's writes commit in the same transaction as its job's "done" (``jobs.run_claimed``):
a worker killed mid-step leaves nothing, its job is leased again, and each step first deletes
what an earlier attempt of its own partition or slot could have written, so nothing is doubled
or lost. Readers see the day's old verdicts until the last step commits, then the new ones:
the run is all or nothing. A newer run of the day supersedes one still under way; the older
run's remaining jobs then do nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from itertools import islice
from typing import Any

import polars as pl
from sqlalchemy import delete, func, insert, literal, select, true

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, ReconResult, ReconRun, utcnow
from gateway.adapters.recon_part_models import ReconFanout, ReconFanoutKey, ReconFanoutResult
from gateway.domain.reconciliation.columnar import reconcile_rest
from gateway.domain.reconciliation.partitions import (
    CANDIDATE_SCHEMA,
    judge,
    pairs_of,
    part_keys,
    slot_of,
)
from gateway.errors import NotFound
from gateway.services import jobs
from gateway.services.jobs import Handler
from gateway.services.settlement import recon_frames
from gateway.services.settlement.reconciliation import (
    ReconSettings,
    announce,
    day_frames,
    flawed_statements,
    insert_results,
    refunds_and_decisions,
)

PART_JOB = "recon_part"
JUDGE_JOB = "recon_judge"
RESIDUE_JOB = "recon_residue"
CHUNK = 10_000  # rows per bulk insert


class PolarsVersionMismatch(RuntimeError):
    """This worker's polars hashes keys differently from the run's: another worker retries."""


def fan_out(
    uow: UnitOfWork,
    merchant_id: int,
    day: date,
    settings: ReconSettings,
    *,
    actor: str,
    as_of: date | None = None,
) -> ReconFanout:
    """Start the partitioned run of the day (not committed): the run row and its part jobs."""
    if uow.session.get(Merchant, merchant_id) is None:
        raise NotFound(f"no merchant {merchant_id}")
    parts = max(settings.parts, 1)
    for older in uow.session.scalars(
        select(ReconFanout).where(
            ReconFanout.merchant_id == merchant_id,
            ReconFanout.day == day.isoformat(),
            ReconFanout.state.not_in(("done", "superseded")),
        )
    ):
        older.state = "superseded"
        older.finished_at = utcnow()
        _drop_scratch(uow, older.id)
    fanout = ReconFanout(
        merchant_id=merchant_id,
        day=day.isoformat(),
        as_of=(as_of or utcnow().date()).isoformat(),
        parts=parts,
        state="parts",
        parts_done=[],
        slots_done=[],
        polars_version=pl.__version__,
        actor=actor,
    )
    uow.session.add(fanout)
    uow.session.flush()
    for k in range(parts):
        jobs.enqueue(
            uow,
            PART_JOB,
            {"fanout_id": fanout.id, "part": k},
            dedupe_key=f"{_key(fanout)}:part:{k}/{parts}",
        )
    return fanout


def handlers(settings: ReconSettings) -> dict[str, Handler]:
    """The job handlers of the three steps, with the deployment's matching settings."""

    def part(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        run_part(uow, int(payload["fanout_id"]), int(payload["part"]), settings)

    def judge_slot(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        run_judge(uow, int(payload["fanout_id"]), int(payload["slot"]), settings)

    def residue(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        run_residue(uow, int(payload["fanout_id"]), settings)

    return {PART_JOB: part, JUDGE_JOB: judge_slot, RESIDUE_JOB: residue}


def run_part(uow: UnitOfWork, fanout_id: int, part: int, settings: ReconSettings) -> None:
    """Step 1 for partition ``part``: file its candidates and ruled-out payments."""
    fanout = _current(uow, fanout_id, "parts")
    if fanout is None:
        return
    merchant = uow.session.get_one(Merchant, fanout.merchant_id)
    frames = day_frames(uow, merchant, date.fromisoformat(fanout.day), settings)
    found = part_keys(frames.payments, frames.refunds, frames.lines, part, fanout.parts)
    slot = slot_of(pl.col("payment_id"), fanout.parts).alias("slot")
    candidates = found.candidates.rename({"id": "payment_id"}).with_columns(slot)
    ruled = found.ruled_out.to_frame("payment_id").with_columns(slot)
    _replace(uow, ReconFanoutKey, fanout.id, ReconFanoutKey.part == part)
    for frame in (candidates, ruled):
        _insert(uow, ReconFanoutKey, frame.with_columns(fanout_id=fanout.id, part=part))
    fanout = _locked(uow, fanout_id)
    if fanout.state != "parts":  # superseded meanwhile: leave nothing behind
        _replace(uow, ReconFanoutKey, fanout.id, ReconFanoutKey.part == part)
        return
    fanout.parts_done = sorted({*fanout.parts_done, part})
    if len(fanout.parts_done) == fanout.parts:
        fanout.state = "judging"
        for s in range(fanout.parts):
            jobs.enqueue(
                uow,
                JUDGE_JOB,
                {"fanout_id": fanout.id, "slot": s},
                dedupe_key=f"{_key(fanout)}:judge:{s}/{fanout.parts}",
            )


def run_judge(uow: UnitOfWork, fanout_id: int, slot: int, settings: ReconSettings) -> None:
    """Step 2 for slot ``slot``: its pairs checked and judged, the day's verdicts staged."""
    fanout = _current(uow, fanout_id, "judging")
    if fanout is None:
        return
    merchant = uow.session.get_one(Merchant, fanout.merchant_id)
    day = date.fromisoformat(fanout.day)
    candidates, ruled = _scratch(uow, fanout.id, ReconFanoutKey.slot == slot)
    refunds, decisions = refunds_and_decisions(uow, merchant.id, day, settings)
    verdicts = judge(pairs_of(candidates, ruled, refunds, decisions), settings.fees)
    _replace(uow, ReconFanoutResult, fanout.id, ReconFanoutResult.slot == slot)
    _insert(
        uow, ReconFanoutResult, _staged(verdicts, day).with_columns(fanout_id=fanout.id, slot=slot)
    )
    fanout = _locked(uow, fanout_id)
    if fanout.state != "judging":
        _replace(uow, ReconFanoutResult, fanout.id, ReconFanoutResult.slot == slot)
        return
    fanout.slots_done = sorted({*fanout.slots_done, slot})
    if len(fanout.slots_done) == fanout.parts:
        fanout.state = "residue"
        jobs.enqueue(
            uow, RESIDUE_JOB, {"fanout_id": fanout.id}, dedupe_key=f"{_key(fanout)}:residue"
        )


def run_residue(uow: UnitOfWork, fanout_id: int, settings: ReconSettings) -> None:
    """Step 3: the pure engine on the rest, then the run published in this transaction."""
    fanout = _current(uow, fanout_id, "residue")
    if fanout is None:
        return
    merchant = uow.session.get_one(Merchant, fanout.merchant_id)
    day = date.fromisoformat(fanout.day)
    frames = day_frames(uow, merchant, day, settings)
    candidates, ruled = _scratch(uow, fanout.id, None)
    pairs = judge(pairs_of(candidates, ruled, frames.refunds, frames.decisions), settings.fees)
    outcome = reconcile_rest(
        frames.payments,
        frames.refunds,
        frames.lines,
        pairs,
        fees=settings.fees,
        as_of=date.fromisoformat(fanout.as_of),
        window_days=settings.window_days,
        unsettled_after_days=settings.unsettled_after_days,
        decisions=frames.decisions,
    )
    todays = [r for r in outcome.rest.results if r.day == day]
    fanout = _locked(uow, fanout_id)
    if fanout.state != "residue":
        return
    staged = ReconFanoutResult
    counts: Counter[str] = Counter(r.outcome.value for r in todays)
    for outcome_name, n in uow.session.execute(
        select(staged.outcome, func.count())
        .where(staged.fanout_id == fanout.id)
        .group_by(staged.outcome)
    ):
        counts[outcome_name] += n
    run = ReconRun(
        merchant_id=fanout.merchant_id,
        day=fanout.day,
        source=frames.source,
        actor=fanout.actor,
        counts=dict(sorted(counts.items())),
        flawed_statements=flawed_statements(uow, merchant, day),
        started_at=fanout.created_at,
    )
    uow.session.add(run)
    uow.session.flush()
    uow.session.execute(
        delete(ReconResult)
        .where(ReconResult.merchant_id == fanout.merchant_id, ReconResult.day == fanout.day)
        .execution_options(synchronize_session=False)
    )
    columns = [c.name for c in ReconFanoutResult.__table__.columns][3:]  # from day on
    uow.session.execute(
        insert(ReconResult).from_select(
            ["merchant_id", "run_id", *columns],
            select(
                literal(fanout.merchant_id),
                literal(run.id),
                *(getattr(staged, c) for c in columns),
            ).where(staged.fanout_id == fanout.id),
        )
    )
    insert_results(uow, run, todays)
    announce(uow, run)
    fanout.state, fanout.run_id, fanout.finished_at = "done", run.id, utcnow()
    _drop_scratch(uow, fanout.id)


def _key(fanout: ReconFanout) -> str:
    return f"recon:{fanout.merchant_id}:{fanout.day}:run:{fanout.id}"


def _current(uow: UnitOfWork, fanout_id: int, state: str) -> ReconFanout | None:
    """The run if it is at this step (else its job has nothing to do), on this polars."""
    fanout = uow.session.get(ReconFanout, fanout_id)
    if fanout is None or fanout.state != state:
        return None
    if fanout.polars_version != pl.__version__:
        raise PolarsVersionMismatch(
            f"run {fanout_id} partitions keys with polars {fanout.polars_version}; this worker "
            f"has {pl.__version__}: a worker with the run's version takes the job"
        )
    return fanout


def _locked(uow: UnitOfWork, fanout_id: int) -> ReconFanout:
    """The run row, locked until this job commits (SQLite: its writer lock already is).

    ``FOR NO KEY UPDATE``: the step's scratch rows already hold a key-share lock on the row
    (their foreign key), which a plain ``FOR UPDATE`` of two steps at once would deadlock on.
    """
    return uow.session.scalars(
        select(ReconFanout)
        .where(ReconFanout.id == fanout_id)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ).one()


def _replace(uow: UnitOfWork, model: Any, fanout_id: int, which: Any) -> None:
    uow.session.execute(
        delete(model)
        .where(model.fanout_id == fanout_id, which)
        .execution_options(synchronize_session=False)
    )


def _drop_scratch(uow: UnitOfWork, fanout_id: int) -> None:
    for model in (ReconFanoutKey, ReconFanoutResult):
        _replace(uow, model, fanout_id, true())


def _insert(uow: UnitOfWork, model: Any, frame: pl.DataFrame) -> None:
    """Bulk insert (PostgreSQL: COPY, in this transaction; else executemany in slices)."""
    connection = uow.session.connection()
    if connection.dialect.name == "postgresql":
        if "linked" in frame.columns:  # JSON as text for COPY
            linked = [json.dumps(ids) for ids in frame["linked"].to_list()]
            frame = frame.with_columns(linked=pl.Series(linked, dtype=pl.String))
        raw: Any = connection.connection.driver_connection
        columns = ", ".join(frame.columns)
        with raw.cursor() as cursor:
            with cursor.copy(f"COPY {model.__tablename__} ({columns}) FROM STDIN") as copy:
                for row in frame.iter_rows():
                    copy.write_row(row)
        return
    rows = frame.iter_rows(named=True)
    while chunk := list(islice(rows, CHUNK)):
        uow.session.execute(insert(model), chunk)


def _scratch(uow: UnitOfWork, fanout_id: int, which: Any) -> tuple[pl.DataFrame, pl.Series]:
    """The candidates and ruled-out payment ids filed for the run (in one slot, or all)."""
    k = ReconFanoutKey
    where = [k.fanout_id == fanout_id] + ([which] if which is not None else [])
    columns = [getattr(k, "payment_id" if c == "id" else c) for c in CANDIDATE_SCHEMA]
    candidates = recon_frames.read_frame(
        uow,
        select(*columns).where(*where, k.line_id.is_not(None)),
        CANDIDATE_SCHEMA,
    )
    ruled = recon_frames.read_frame(
        uow, select(k.payment_id).where(*where, k.line_id.is_(None)), {"id": pl.String}
    )
    return candidates, ruled["id"]


def _staged(verdicts: pl.DataFrame, day: date) -> pl.DataFrame:
    """The verdict rows of ``day`` (a pair's payment on its paid day, its line on its booking
    day), as ``recon_results`` holds them."""
    common = {
        "outcome": pl.col("outcome"),
        "currency": pl.col("currency"),
        "expected_minor": pl.col("expected_minor"),
        "settled_minor": pl.col("settled_minor"),
        "fee_expected_minor": pl.col("fee_expected_minor"),
        "fee_charged_minor": pl.col("fee_charged_minor"),
        "reason": pl.lit(""),
    }
    payments = verdicts.filter(pl.col("paid_on") == day).select(
        day=pl.lit(day.isoformat()),
        subject=pl.lit("payment"),
        subject_id=pl.col("id"),
        linked=pl.concat_list(pl.col("line_id")),
        **common,
    )
    lines = verdicts.filter(pl.col("booking_date") == day).select(
        day=pl.lit(day.isoformat()),
        subject=pl.lit("line"),
        subject_id=pl.col("line_id"),
        linked=pl.concat_list(pl.col("id")),
        **common,
    )
    return pl.concat([payments, lines])
