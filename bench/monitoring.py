"""What the anomaly rules cost a payment: create a QR payment and mark it paid, with every rule
on and with every rule off, on SQLite and PostgreSQL.

Each sale is one transaction through the real services (``create_qr_payment``, the bank's
``record_bank_payment``), in a store that already has ``HISTORY`` paid payments of the last
30 days (what the large-ticket rule reads), so the rules' queries see a realistic table.

The baseline, in the same run on the same database: the same sale with every threshold 0 (the
hooks run, find their rule off and return). Figures are medians per sale.

Run from the repository root: ``.venv/bin/python -m bench.monitoring`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from dataclasses import fields
from pathlib import Path

from bench.http_api import _database
from gateway.adapters import passwords
from gateway.adapters.db import Database
from gateway.adapters.models import utcnow
from gateway.domain.money import Money
from gateway.domain.monitoring import Thresholds
from gateway.services.demo import seed_demo
from gateway.services.monitoring import thresholds
from gateway.services.payments import qr_payments
from gateway.services.staff import mfa
from gateway.services.staff.auth import TillContext, authenticate_till
from gateway.settings import PaymentSettings

HISTORY = 2000
OFF = {f.name: 0 for f in fields(Thresholds) if f.type == "int" and "window" not in f.name}
OFF |= {"large_ticket_history_days": 30}


def _sale(db: Database, till: TillContext, minor: int) -> float:
    started = time.perf_counter()
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money(minor, "EUR"), settings=PaymentSettings()
        )
        qr_payments.record_bank_payment(
            uow,
            payment,
            money=Money(minor, "EUR"),
            bank_payment_id=f"bench-{payment.reference}",
            paid_at=utcnow(),
            actor="bench",
            detail={},
        )
        uow.commit()
    return time.perf_counter() - started


def _set(db: Database, merchant_id: int, values: dict[str, int]) -> None:
    with db.unit_of_work() as uow:
        chosen = thresholds.defaults().with_overrides(values).as_dict()
        thresholds.set_thresholds(uow, merchant_id, chosen, "bench")
        uow.commit()


def run(backend: str, sales: int) -> None:
    with tempfile.TemporaryDirectory() as folder, _database(backend, Path(folder)) as url:
        if url is None:
            return
        db = Database(url)
        db.upgrade()
        with db.unit_of_work() as uow:
            creds = seed_demo(uow, Path(folder) / "creds.json", promotions=False)
        with db.unit_of_work() as uow:
            till = authenticate_till(uow, "Bearer " + creds["tills"][0]["api_key"])
        _set(db, till.merchant_id, OFF)
        for n in range(HISTORY):
            _sale(db, till, 500 + n % 3000)
        figures: dict[str, list[float]] = {"rules on": [], "rules off (baseline)": []}
        for n in range(sales):  # interleaved, so load on the machine hits both alike
            _set(db, till.merchant_id, {})
            figures["rules on"].append(_sale(db, till, 1000 + n))
            _set(db, till.merchant_id, OFF)
            figures["rules off (baseline)"].append(_sale(db, till, 1000 + n))
        for name, times in figures.items():
            print(f"{backend:10} {name:22} median {statistics.median(times) * 1000:7.2f} ms/sale")
        db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    global HISTORY
    passwords.configure(time_cost=1, memory_cost_kib=256)  # the demo's staff, quickly
    mfa.configure("bench-mfa-key")
    if args.quick:
        HISTORY = 50
    for backend in ("sqlite", "postgresql"):
        run(backend, 20 if args.quick else 100)


if __name__ == "__main__":
    main()
