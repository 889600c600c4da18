"""What the demo's month of past sales adds to `kassa run`'s start, and what the dashboard's
reads cost on it, on SQLite.

Timed (median of runs):

* **history**: ``seed_history`` alone (about 500 sales with their payments, promotions and
  A/B exposures), in a transaction rolled back after each run;
* **dashboard reads**: every read the dashboard makes for the last 30 days over the seeded
  month (turnover by day and hour, customers, retention, promotions, tickets).

The baseline, in the same run: ``seed_demo`` without history (merchant, stores, tills, staff
with their password hashes, promotions) on a fresh database.

Run from the repository root: ``.venv/bin/python -m bench.demo_seed`` (``--quick``: fewer runs).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, utcnow
from gateway.services.dashboard import dashboard_reads as reads
from gateway.services.demo import seed_demo
from gateway.services.demo_history import seed_history
from gateway.services.staff import mfa
from gateway.services.staff.scope import Scope


def _median(times: list[float]) -> str:
    return f"{statistics.median(times) * 1000:8.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    runs = 2 if parser.parse_args().quick else 5
    mfa.configure("bench-mfa-key")
    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder)
        baseline = []
        for n in range(runs):
            db = Database(f"sqlite:///{work / f'base{n}.db'}")
            db.upgrade()
            start = time.perf_counter()
            with db.unit_of_work() as uow:
                seed_demo(uow, work / f"base{n}.json")
            baseline.append(time.perf_counter() - start)
            db.dispose()
        db = Database(f"sqlite:///{work / 'month.db'}")
        db.upgrade()
        with db.unit_of_work() as uow:
            seed_demo(uow, work / "month.json")
            merchant = uow.session.query(Merchant).one()
            merchant_id = merchant.id
        history = []
        for _ in range(runs):
            with db.unit_of_work() as uow:
                start = time.perf_counter()
                sales = seed_history(uow, merchant_id, utcnow())
                uow.session.flush()
                history.append(time.perf_counter() - start)
                uow.session.rollback()
        with db.unit_of_work() as uow:
            seed_history(uow, merchant_id, utcnow())
            uow.commit()
        today = utcnow().astimezone(ZoneInfo("Europe/Berlin")).date()
        period = reads.Period(today - timedelta(days=29), today, "Europe/Berlin")
        scope = Scope(merchant_id)
        dashboard = []
        for _ in range(runs * 4):
            with db.unit_of_work(readonly=True) as uow:
                start = time.perf_counter()
                reads.turnover(uow, scope, period, "day")
                reads.turnover(uow, scope, period, "hour")
                reads.customers(uow, scope, period)
                reads.retention(uow, scope, period, utcnow())
                reads.promotion_costs(uow, scope, period)
                reads.tickets(uow, scope, period)
                dashboard.append(time.perf_counter() - start)
        db.dispose()
    print(f"SQLite, median of {runs} runs ({sales} sales in the month)")
    print(f"  baseline: seed_demo without history {_median(baseline)}")
    print(f"  history:  seed_history              {_median(history)}")
    print(f"  dashboard reads, last 30 days       {_median(dashboard)}")


if __name__ == "__main__":
    main()
