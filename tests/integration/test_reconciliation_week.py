"""A simulated week: the sandbox bank's camt.053 files, with injected faults, reconcile to
exactly the expected classes, on SQLite and PostgreSQL; re-runs and decisions behave."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, ReconResult, Refund
from gateway.config import load_config
from gateway.domain.money import Money
from gateway.services.payments import qr_payments, refunds
from gateway.services.settlement import reconciliation
from gateway.services.settlement.file_import import import_settlement_file
from gateway.services.staff.auth import authenticate_till
from sandbox_bank.camt import camt053
from sandbox_bank.settlement import SettlementBatch, SettlementLine, fee_minor
from tests.conftest import isolated_env
from tests.factories import paid_by_bank

MONDAY = date(2026, 11, 16)
WEEK = [MONDAY + timedelta(days=n) for n in range(7)]
IBAN = "DE89370400440532013000"  # one of the demo merchant's settlement accounts
CONFIG = load_config(env=isolated_env())
SETTINGS = reconciliation.ReconSettings.from_settings(CONFIG.reconciliation)
IN_COLUMNS = replace(SETTINGS, columnar_from=0)  # every day through reconcile_frames


def _at(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def _paid(db: Database, demo: dict[str, Any], day: date, amount: str) -> Payment:
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse(amount, "EUR"), settings=qr_payments.PaymentSettings()
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        payment.paid_at = _at(day)
        uow.commit()
        return payment


def _refunded(db: Database, payment: Payment, day: date, amount: str) -> Refund:
    with db.unit_of_work() as uow:
        refund = refunds.request_refund(
            uow,
            payment.id,
            payment.merchant_id,
            amount=Money.parse(amount, "EUR"),
            reason=None,
            actor="staff:manager",
        )
        uow.commit()
    with db.unit_of_work() as uow:
        refunds.record_bank_result(
            uow,
            refund_id=refund.id,
            succeeded=True,
            bank_refund_id="r",
            amount_minor=refund.amount_minor,
            currency="EUR",
            reason=None,
        )
        uow.session.get_one(Refund, refund.id).updated_at = _at(day)
        uow.commit()
    return refund


def _line(
    payment: Payment, day: date, *, fee_delta: int = 0, again: bool = False
) -> SettlementLine:
    fee = fee_minor(payment.amount_minor, 150, 10) + fee_delta
    # A second settlement is a new movement at the bank: it has its own transaction id.
    return SettlementLine(
        "payment",
        payment.reference,
        f"pay_{payment.reference}" + ("_2" if again else ""),
        None,
        None,
        day,
        payment.amount_minor,
        fee,
        "EUR",
        "",
    )


def _import(db: Database, tmp_path: Path, day: date, lines: list[SettlementLine]) -> None:
    batch = SettlementBatch(
        f"stl_{day:%Y%m%d}",
        "KASSA-DEMO-0001",
        "Kassa Demo",
        IBAN,
        day,
        "EUR",
        _at(day),
        0,
        tuple(lines),
    )
    path = tmp_path / f"{day}.camt053.xml"
    path.write_text(camt053(batch))
    with db.unit_of_work() as uow:
        import_settlement_file(uow, path, CONFIG.settlement)
        uow.commit()


def _run_week(
    db: Database, merchant_id: int, settings: reconciliation.ReconSettings = SETTINGS
) -> Counter[str]:
    with db.unit_of_work() as uow:
        for day in WEEK:
            reconciliation.reconcile_day(
                uow, merchant_id, day, settings, actor="test", as_of=WEEK[-1] + timedelta(days=5)
            )
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        return Counter(f"{r.subject}:{r.outcome}" for r in uow.session.scalars(select(ReconResult)))


def test_a_week_with_faults_reconciles_to_the_expected_classes(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    paid = {
        day: [_paid(db, demo, day, f"{10 + n}.{day.day:02d}") for n in range(3)] for day in WEEK
    }
    refund = _refunded(db, paid[WEEK[2]][0], WEEK[2], "2.00")
    unknown = SettlementLine(
        "payment", "NOT-KASSA-REF", "pay_x", None, None, WEEK[5], 777, 22, "EUR", ""
    )
    for day in WEEK:
        lines = [
            _line(p, day, fee_delta=7 if (day, i) == (WEEK[4], 2) else 0)
            for i, p in enumerate(paid[day])
            if (day, i) != (WEEK[1], 0)
        ]  # fault: never settled
        if day == WEEK[3]:
            lines.append(_line(paid[WEEK[2]][1], day, again=True))  # fault: settled twice
        if day == WEEK[2]:
            lines.append(
                SettlementLine(
                    "refund",
                    paid[day][0].reference,
                    "pay",
                    "rfd",
                    refund.id,
                    day,
                    200,
                    0,
                    "EUR",
                    "",
                )
            )
        if day == WEEK[5]:
            lines.append(unknown)  # fault: unknown to Kassa
        _import(db, tmp_path, day, lines)

    counts = _run_week(db, paid[MONDAY][0].merchant_id)
    assert counts == Counter(
        {
            "payment:matched": 18,
            "payment:paid_not_settled": 1,
            "payment:settled_twice": 1,
            "payment:matched_fee_difference": 1,
            "refund:matched": 1,
            "line:matched": 20,  # 19 payment lines (incl. the first of the twin) + the refund
            "line:settled_twice": 1,
            "line:matched_fee_difference": 1,
            "line:settled_unknown": 1,
        }
    ), counts
    assert _run_week(db, paid[MONDAY][0].merchant_id) == counts  # a re-run changes nothing
    # The same verdicts, word for word, when the days are read and matched in columns.
    rows = _rows(db)
    assert _run_week(db, paid[MONDAY][0].merchant_id, IN_COLUMNS) == counts
    assert _rows(db) == rows

    missing = paid[WEEK[1]][0]
    with db.unit_of_work(readonly=True) as uow:
        result = uow.session.scalars(
            select(ReconResult).where(ReconResult.subject_id == missing.id)
        ).one()
        assert result.outcome == "paid_not_settled" and "EUR" in result.reason

    with db.unit_of_work() as uow:  # a manager writes the missing one off; it survives re-runs
        decision = reconciliation.decide(
            uow,
            missing.merchant_id,
            action="write_off",
            subject_id=missing.id,
            line_ids=(),
            note="bank confirmed loss",
            actor="staff:manager",
        )
        uow.commit()
    after = _run_week(db, missing.merchant_id)
    assert after["payment:written_off"] == 1 and after["payment:paid_not_settled"] == 0
    with db.unit_of_work() as uow:
        reconciliation.reopen(uow, missing.merchant_id, decision.id, "staff:owner")
        uow.commit()
    assert _run_week(db, missing.merchant_id) == counts
    assert _run_week(db, missing.merchant_id, IN_COLUMNS) == counts


def _rows(db: Database) -> list[tuple[object, ...]]:
    with db.unit_of_work(readonly=True) as uow:
        return sorted(
            (r.day, r.subject, r.subject_id, r.outcome, r.currency, r.expected_minor,
             r.settled_minor, r.fee_expected_minor, r.fee_charged_minor, tuple(r.linked), r.reason)
            for r in uow.session.scalars(select(ReconResult))
        )  # fmt: skip


def test_the_daily_job_reconciles_and_queues_the_next_day(db: Database, demo: Any) -> None:
    from gateway.adapters.models import Job, ReconRun
    from gateway.services import jobs
    from gateway.services.registry import job_handlers

    payment = _paid(db, demo, MONDAY, "5.00")
    with db.unit_of_work() as uow:
        reconciliation.schedule_all(uow, MONDAY + timedelta(days=1))
        reconciliation.schedule_all(uow, MONDAY + timedelta(days=1))  # idempotent
        uow.session.flush()
        job = uow.session.scalars(select(Job).where(Job.kind == reconciliation.RECON_JOB)).one()
        job.run_at = _at(MONDAY)
        uow.commit()
    assert jobs.run_due_jobs(db, job_handlers(CONFIG)) == 1
    with db.unit_of_work(readonly=True) as uow:
        run = uow.session.scalars(select(ReconRun)).one()
        assert (run.day, run.actor, run.merchant_id) == (
            "2026-11-16",
            "system:daily",
            payment.merchant_id,
        )
        keys = set(
            uow.session.scalars(select(Job.dedupe_key).where(Job.kind == reconciliation.RECON_JOB))
        )
        assert keys == {
            f"recon:{payment.merchant_id}:2026-11-16",
            f"recon:{payment.merchant_id}:2026-11-17",
        }


def test_recon_run_from_the_command_line(db: Database, demo: Any, tmp_path: Path) -> None:
    import json
    import os
    import subprocess
    import sys

    _paid(db, demo, MONDAY, "5.00")
    env = {**os.environ, "KASSA_DATABASE_URL": db.url}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "gateway.entrypoints.cli",
            "recon",
            "run",
            "--date",
            "2026-11-16",
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["date"] == "2026-11-16"
    assert list(out["merchants"].values()) == [{"paid_not_settled": 1}]
    bad = subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "recon", "run", "--date", "16.11.2026"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2
    assert bad.stderr.strip() == "kassa: --date must be YYYY-MM-DD, not '16.11.2026'"


def _callback(db: Database, day: date, batch: list[Payment], fee_delta: int = 0) -> None:
    """The bank's settlement.created callback for ``batch``, received as the endpoint would."""
    import json

    from gateway.services.bank.callbacks import VerifiedCallback, receive

    gross = sum(p.amount_minor for p in batch)
    fees = sum(fee_minor(p.amount_minor, 150, 10) for p in batch) + fee_delta
    data = {
        "settlement_id": f"stl_cb_{day:%Y%m%d}",
        "merchant_id": "KASSA-DEMO-0001",
        "date": day.isoformat(),
        "currency": "EUR",
        "gross": f"{gross / 100:.2f}",
        "fees": f"{fees / 100:.2f}",
        "refunds": "0.00",
        "net": f"{(gross - fees) / 100:.2f}",
        "payment_count": len(batch),
        "refund_count": 0,
        "files": {},
    }
    body = json.dumps(
        {"type": "settlement.created", "timestamp": _at(day).isoformat(), "data": data}
    ).encode()
    receive(db, VerifiedCallback(f"msg_{day}", int(_at(day).timestamp()), body, {}))


def test_a_day_known_only_by_its_callback_settles_as_one_batch(db: Database, demo: Any) -> None:
    monday = [_paid(db, demo, MONDAY, f"{n}.50") for n in (3, 4, 5)]
    tuesday = [_paid(db, demo, WEEK[1], f"{n}.25") for n in (6, 7)]
    _callback(db, MONDAY, monday)
    _callback(db, WEEK[1], tuesday, fee_delta=5)  # the bank charged 0.05 more than agreed
    counts = _run_week(db, monday[0].merchant_id)
    assert counts == Counter(
        {
            "payment:matched": 3,
            "line:matched": 1,
            "payment:matched_fee_difference": 2,
            "line:matched_fee_difference": 1,
        }
    ), counts
    with db.unit_of_work(readonly=True) as uow:
        line = uow.session.scalars(
            select(ReconResult).where(
                ReconResult.subject == "line", ReconResult.day == MONDAY.isoformat()
            )
        ).one()
        assert line.subject_id == "callback:stl_cb_20261116"
        assert "settled in batch stl_cb_20261116 of 3 transactions" in line.reason
