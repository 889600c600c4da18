"""The audit trail from the background processes: rows written by `kassa worker` say
``worker`` and rows written by the device host (`kassa devices`) say ``device-host``, and they
join the same hash chain as the web's (`kassa audit verify` passes). Real processes, on SQLite
and PostgreSQL."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, utcnow
from gateway.adapters.promotion_models import Customer
from gateway.services import jobs
from gateway.services.promotions import privacy
from gateway.services.staff import audit
from tests.factories import merchant_with_stores

KASSA = [sys.executable, "-m", "gateway.entrypoints.cli"]


def audit_rows(db: Database, action: str) -> list[AuditEntry]:
    with db.unit_of_work(readonly=True) as uow:
        found = list(uow.session.scalars(select(AuditEntry).where(AuditEntry.action == action)))
        uow.session.expunge_all()
        return found


def run_until(command: list[str], env: dict[str, str], cwd: Path, done: Callable[[], bool]) -> str:
    """Run a Kassa process until ``done()`` (a ceiling of 180 s, not a deadline), then stop it
    and return its output."""
    process = subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        ceiling = time.monotonic() + 180
        while time.monotonic() < ceiling and not done() and process.poll() is None:
            time.sleep(0.2)
    finally:
        process.terminate()
        output = process.communicate(timeout=60)[0].decode(errors="replace")
    return output


def verify_cli(db: Database) -> Any:
    from gateway.entrypoints.cli import main

    return CliRunner().invoke(main, ["audit", "verify"], env={"KASSA_DATABASE_URL": db.url})


def test_the_worker_s_rows_say_worker_and_join_the_chain(db: Database, tmp_path: Path) -> None:
    shop = merchant_with_stores(db, "A")
    long_ago = datetime(2015, 1, 1, tzinfo=UTC)
    with db.unit_of_work() as uow:
        uow.session.add(
            Customer(
                merchant_id=shop["merchant_id"], token=uuid.uuid4().hex,
                referral_code=uuid.uuid4().hex[:16], spend_currency="EUR", created_at=long_ago,
            )
        )  # fmt: skip
        audit.record(uow, "test.before_the_worker", merchant_id=shop["merchant_id"])
        jobs.enqueue(
            uow, privacy.RETENTION_JOB, {"day": (utcnow().date() - timedelta(days=1)).isoformat()},
            run_at=utcnow(), dedupe_key="retention-now",
        )  # fmt: skip
        uow.commit()
    env = {**os.environ, "KASSA_DATABASE_URL": db.url, "KASSA_WORKER_POLL_INTERVAL_MS": "100"}
    output = run_until(
        [*KASSA, "worker"],
        env,
        tmp_path,
        lambda: bool(audit_rows(db, "customer.anonymise_inactive")),
    )
    (row,) = audit_rows(db, "customer.anonymise_inactive")
    assert (row.source, row.actor, row.merchant_id) == (
        "worker", "system:retention", shop["merchant_id"]
    ), output  # fmt: skip
    verified = verify_cli(db)
    assert verified.exit_code == 0, verified.output


def test_the_device_host_s_rows_say_device_host_and_join_the_chain(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    """The simulated terminal closes its batch when asked (`kassa devices end-of-day`)."""
    env = {**os.environ, "KASSA_DATABASE_URL": db.url}
    queued = subprocess.run(
        [*KASSA, "devices", "end-of-day", "--till", "Berlin Mitte/T01"],
        env=env, capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert queued.returncode == 0, queued.stderr
    output = run_until(
        [*KASSA, "devices", "--simulate"],
        env,
        tmp_path,
        lambda: bool(audit_rows(db, "end_of_day.closed")),
    )
    (row,) = audit_rows(db, "end_of_day.closed")
    assert row.source == "device-host", output
    (requested,) = audit_rows(db, "end_of_day.requested")
    assert requested.source == "cli"
    verified = verify_cli(db)
    assert verified.exit_code == 0, verified.output
