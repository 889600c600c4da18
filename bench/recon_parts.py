"""Benchmark of a chain's day reconciled in partitions over the job table, on PostgreSQL.

The day of ``bench.recon_columnar`` (N payments × N bank lines, ``N // 500`` faults of each
kind) is loaded into a PostgreSQL schema of its own (COPY) as payments of the demo merchant and
camt.053 entries on its account, spread over the 7 days of the run's window. Then, each a
process of its own (``ru_maxrss`` its peak):

- **single process**: ``reconcile_day`` reading the day in columns (``columnar_from`` 0),
  storing the day's verdicts, committed;
- **partitions, 1 and 2 workers**: ``fan_out`` (4 partitions), then 1 or 2 worker processes run
  the job table until the run is published; timed from the fan-out's commit to the published
  run (the peak is the largest worker's);
- **columnar in memory** and the **polars join**: ``bench.recon_columnar``'s two sides on ready
  frames (no database), for scale.

Every run's outcome counts must equal the single-process run's. Medians of ``--repeat`` runs.
Run from the repository root: ``.venv/bin/python -m bench.recon_parts`` (200 000; ``--n``).
``KASSA_BENCH_DATABASE_URL`` names the server (default: the test server on 127.0.0.1:5432).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
from sqlalchemy import select, text

from bench.recon import FEES, START
from bench.recon_columnar import child as columnar_child
from bench.recon_columnar import generate

SERVER = os.environ.get("KASSA_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
DAY = START + timedelta(days=3)  # the window (day ± 3) holds all 7 days of payments
IBAN = "DE89370400440532013000"  # the demo merchant's settlement account
PARTS = 4


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def schema_url(schema: str) -> str:
    sep = "&" if "?" in SERVER else "?"
    return f"{SERVER}{sep}options=-csearch_path%3D{schema}"


def load(url: str, n: int, workdir: Path) -> dict[str, Any]:
    """Migrate, seed the demo merchant, COPY the day in; the merchant's id and the load time."""
    from gateway.adapters.db import Database
    from gateway.adapters.models import InboundEvent, Merchant, SettlementFile, Till
    from gateway.services.demo import seed_demo
    from gateway.services.staff import mfa

    mfa.configure("bench")  # the demo enrols its manager's second factor
    t0 = time.perf_counter()
    db = Database(url)
    db.upgrade()
    with db.unit_of_work() as uow:
        seed_demo(uow, workdir / "creds.json", promotions=False)
        merchant = uow.session.scalars(select(Merchant)).first()
        assert merchant is not None
        till = uow.session.scalars(select(Till)).first()
        assert till is not None
        event = InboundEvent(source="bench", external_id="bench", body=b"", content_hash="0" * 64)
        uow.session.add(event)
        uow.session.flush()
        file = SettlementFile(
            content_hash="0" * 64,
            inbound_event_id=event.id,
            format="camt053",
            filename="bench.xml",
            size_bytes=0,
            entry_count=0,
        )
        uow.session.add(file)
        uow.session.flush()
        ids = {"merchant": merchant.id, "store": till.store_id, "till": till.id, "file": file.id}
        uow.commit()
    pays, lines, _ = generate(n)
    now = datetime.now(UTC)
    payments = pays.select(
        "id",
        merchant_id=pl.lit(ids["merchant"]),
        store_id=pl.lit(ids["store"]),
        till_id=pl.lit(ids["till"]),
        method=pl.col("method"),
        status=pl.col("status"),
        amount_minor=pl.col("amount_minor"),
        currency=pl.col("currency"),
        reference=pl.col("reference"),
        paid_at=pl.col("paid_on").cast(pl.Datetime("us", "UTC")) + pl.duration(hours=12),
        refunded_minor=pl.col("refunded_minor"),
        created_by=pl.lit("bench"),
        created_at=pl.lit(now),
        updated_at=pl.lit(now),
        version=pl.lit(1),
    )
    entries = lines.with_row_index("position").select(
        file_id=pl.lit(ids["file"]),
        position=pl.col("position").cast(pl.Int64),
        source=pl.lit("camt053"),
        location=pl.lit("bench"),
        amount_minor=pl.col("amount_minor").abs(),
        currency=pl.col("currency"),
        indicator=pl.when(pl.col("amount_minor") >= 0)
        .then(pl.lit("CRDT"))
        .otherwise(pl.lit("DBIT")),
        reversal=pl.lit(False),
        status=pl.lit("BOOK"),
        booked_on=pl.col("booking_date").cast(pl.String),
        account_iban=pl.lit(IBAN),
        entry_tx_count=pl.lit(1),
        end_to_end_id=pl.col("end_to_end_id"),
        charges_minor=pl.col("fee_minor"),
        remittance=pl.col("remittance"),
    )
    del pays, lines
    with db.engine.begin() as conn:
        raw = conn.connection.driver_connection
        for table, frame in (("payments", payments), ("settlement_entries", entries)):
            buffer = io.BytesIO()
            frame.write_csv(buffer, include_header=False, datetime_format="%Y-%m-%d %H:%M:%S%z")
            columns = ", ".join(frame.columns)
            with raw.cursor() as cur:  # type: ignore[union-attr]
                with cur.copy(f"COPY {table} ({columns}) FROM STDIN (FORMAT csv)") as copy:
                    copy.write(buffer.getvalue())
        conn.execute(text("ANALYZE"))
    db.dispose()
    return {"merchant_id": ids["merchant"], "load_s": time.perf_counter() - t0}


def settings() -> Any:
    from gateway.config import load_config
    from gateway.services.settlement.reconciliation import ReconSettings

    base = ReconSettings.from_settings(load_config().reconciliation)
    return replace(base, fees=FEES, columnar_from=0, parts=PARTS, parts_from=0)


def counts_of(url: str, merchant_id: int) -> dict[str, int]:
    from gateway.adapters.db import Database
    from gateway.adapters.models import ReconRun

    db = Database(url)
    with db.unit_of_work(readonly=True) as uow:
        run = uow.session.scalars(
            select(ReconRun).where(ReconRun.merchant_id == merchant_id).order_by(ReconRun.id.desc())
        ).first()
        counts = dict(run.counts) if run else {}
    db.dispose()
    return counts


def single(url: str, merchant_id: int) -> dict[str, Any]:
    from gateway.adapters.db import Database
    from gateway.services.settlement.reconciliation import reconcile_day

    db = Database(url)
    t0 = time.perf_counter()
    with db.unit_of_work() as uow:
        reconcile_day(uow, merchant_id, DAY, settings(), actor="bench", as_of=DAY + timedelta(9))
        uow.commit()
    return {"time": time.perf_counter() - t0, "peak_mib": peak_mib()}


def worker(url: str, fanout_id: int) -> dict[str, Any]:
    """Run the job table until the run is published (a ``kassa worker`` with a stop)."""
    from gateway.adapters.db import Database
    from gateway.adapters.models import Job
    from gateway.adapters.recon_part_models import ReconFanout
    from gateway.services import jobs
    from gateway.services.settlement import recon_parts

    db = Database(url)
    handlers = recon_parts.handlers(settings())

    def published() -> bool:
        with db.unit_of_work(readonly=True) as uow:
            return uow.session.get_one(ReconFanout, fanout_id).state == "done"

    jobs.run_worker(db, handlers, poll_interval=0.05, lease_seconds=3600, stop=published)
    with db.unit_of_work(readonly=True) as uow:
        failed = uow.session.scalars(select(Job.last_error).where(Job.last_error.is_not(None)))
        errors = sorted(set(failed))
    return {"peak_mib": peak_mib(), "errors": errors}


def partitioned(url: str, merchant_id: int, workers: int) -> dict[str, Any]:
    from gateway.adapters.db import Database
    from gateway.services.settlement.recon_parts import fan_out

    db = Database(url)
    with db.unit_of_work() as uow:
        run = fan_out(uow, merchant_id, DAY, settings(), actor="bench", as_of=DAY + timedelta(9))
        fanout_id = run.id
        uow.commit()
    t0 = time.perf_counter()
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bench.recon_parts",
                "--child",
                "worker",
                "--url",
                url,
                "--fanout",
                str(fanout_id),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(workers)
    ]
    outs = [json.loads(p.communicate()[0].strip().splitlines()[-1]) for p in procs]
    return {
        "time": time.perf_counter() - t0,
        "peak_mib": max(o["peak_mib"] for o in outs),
        "errors": sorted({e for o in outs for e in o["errors"]}),
    }


def child(*args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", "bench.recon_parts", "--child", *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=("single", "parts", "worker"), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--merchant", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--fanout", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child == "single":
        print(json.dumps(single(args.url, args.merchant)))
        return 0
    if args.child == "worker":
        print(json.dumps(worker(args.url, args.fanout)))
        return 0
    if args.child == "parts":
        print(json.dumps(partitioned(args.url, args.merchant, args.workers)))
        return 0

    from gateway.adapters.db import Database

    schema = f"kassa_bench_{os.getpid()}"
    admin = Database(SERVER)
    with admin.engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = schema_url(schema)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            loaded = load(url, args.n, Path(tmp))
        mid = str(loaded["merchant_id"])
        print(
            f"day of {args.n:,} payments × bank lines on PostgreSQL, {args.n // 500:,} faults "
            f"of each kind; loaded in {loaded['load_s']:.0f} s; medians of {args.repeat}"
        )
        rows: list[tuple[str, dict[str, Any]]] = []
        want: dict[str, int] = {}
        exact = True
        sides = [
            ("single process (columnar, DB in/out)", ("single",)),
            (f"partitions ({PARTS}), 1 worker", ("parts", "--workers", "1")),
            (f"partitions ({PARTS}), 2 workers", ("parts", "--workers", "2")),
        ]
        for name, side in sides:
            runs = [child(*side, "--url", url, "--merchant", mid) for _ in range(args.repeat)]
            got = counts_of(url, int(mid))
            want = want or got
            exact = exact and got == want
            for r in runs:
                for error in r.get("errors", []):
                    print(f"  {name}: a job failed (retried): {error[:300]}")
            rows.append(
                (
                    name,
                    {
                        "times": [r["time"] for r in runs],
                        "peak_mib": max(r["peak_mib"] for r in runs),
                    },
                )
            )
        for what, name in (("fast", "columnar in memory (frames)"), ("join", "polars join alone")):
            side = columnar_child(what, args.n, args.repeat)
            rows.append((name, {"times": side["times"], "peak_mib": side["peak_mib"]}))
        for name, r in rows:
            print(
                f"{name:40} median {statistics.median(r['times']):7.2f} s "
                f"({', '.join(f'{t:.1f}' for t in r['times'])}); peak {r['peak_mib']:,.0f} MiB"
            )
        print(f"verdict counts of every run {'equal' if exact else 'DIFFER'}: {want}")
        return 0 if exact else 1
    finally:
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


if __name__ == "__main__":
    sys.exit(main())
