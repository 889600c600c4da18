"""A checkout with promotions, end to end through the database, beside the pure engine.

The same 30-line basket and 1,000 promotions as ``bench.promotions``, stored as the portal
stores them, on SQLite and PostgreSQL. Timed, each in its own transaction:

* **quote**: ``sales.price_sale`` (live promotions and usage read, customer identified,
  priced, the sale with its explanations written);
* **pay and cancel**: ``sales.pay_sale`` (priced again with the customer's row locked, budgets
  reserved, QR payment created), then the cashier cancels it (everything released).

The baseline, in the same run: ``price`` alone on the prepared catalog, in memory.

Run from the repository root: ``.venv/bin/python -m bench.checkout`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.http_api import _database
from bench.promotions import _data
from gateway.adapters.db import Database
from gateway.adapters.promotion_models import PromotionRow
from gateway.domain.money import Money
from gateway.domain.promotions import Catalog, price
from gateway.domain.promotions.spec import spec_of
from gateway.services.demo import seed_demo
from gateway.services.payments import cancellation, qr_payments
from gateway.services.promotions import sales
from gateway.services.promotions.customers import IdentityInput
from gateway.services.staff.auth import TillContext, authenticate_till

SETTINGS = sales.PromotionSettings(identity_key=b"bench-identity-key")


def _seed(db: Database, workdir: Path) -> TillContext:
    with db.unit_of_work() as uow:
        creds = seed_demo(uow, workdir / "creds.json", promotions=False)
    _, promos, _ = _data()
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, "Bearer " + creds["tills"][0]["api_key"])
        for p in promos:
            spec = spec_of(p)
            stores = spec.get("targeting", {}).get("stores")
            if stores:  # the benchmark's store "s3" is this till's store
                spec["targeting"]["stores"] = [
                    str(till.store_id) if s == "s3" else s for s in stores
                ]
            uow.session.add(
                PromotionRow(
                    merchant_id=till.merchant_id, key=p.id, name=p.id, kind=p.kind, spec=spec,
                    state="active", created_by="bench", budget_minor=p.limits.budget_minor,
                )
            )  # fmt: skip
        uow.commit()
    return till


def _request() -> sales.SaleRequest:
    basket, _, _ = _data()
    return sales.SaleRequest(
        lines=tuple(
            sales.LineInput(
                ln.sku,
                ln.name,
                ln.category,
                ln.quantity,
                Money(ln.unit_price_minor, "EUR"),
            )
            for ln in basket.lines
        ),
        currency="EUR",
        fee=Money(
            100, "EUR"
        ),  # the mixed promotions discount the goods entirely; the fee is still paid
        customer=IdentityInput(wallet_id="wallet-bench"),
        coupon_codes=("C4", "C10"),
        payment_method="qr",
    )


def _times(fn: Callable[[], object], runs: int) -> list[float]:
    fn()  # warm: the catalog is parsed once per process
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return sorted(out)


def _line(name: str, times: list[float], base: float) -> None:
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{name:<34} median {median:8.2f} ms   p99 {p99:8.2f} ms   {median / base:6.1f}x engine")


def _backend(url: str, workdir: Path, runs: int, base: float, label: str) -> None:
    db = Database(url)
    db.upgrade()
    till = _seed(db, workdir)
    request = _request()

    def quote() -> str:
        with db.unit_of_work() as uow:
            sale = sales.price_sale(uow, till, request, SETTINGS)
            uow.commit()
            return sale.id

    def pay_and_cancel() -> None:
        sale_id = quote()
        with db.unit_of_work() as uow:
            _, payment = sales.pay_sale(
                uow, till, sale_id, method="qr", settings=SETTINGS,
                payment_settings=qr_payments.PaymentSettings(),
            )  # fmt: skip
            uow.commit()
        assert payment is not None
        with db.unit_of_work() as uow:
            cancellation.cancel_payment(uow, payment.id, till.merchant_id, "bench")
            uow.commit()

    _line(f"{label}: quote", _times(quote, runs), base)
    _line(f"{label}: quote + pay + cancel", _times(pay_and_cancel, max(runs // 2, 5)), base)
    db.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    runs = 20 if parser.parse_args(argv).quick else 200
    basket, promos, ctx = _data()
    catalog = Catalog(promos)
    engine = _times(lambda: price(basket, catalog, ctx), runs * 5)
    base = statistics.median(engine)
    print(f"30 lines, {len(promos)} promotions in the database")
    print(f"{'baseline: price in memory':<34} median {base:8.2f} ms")
    with tempfile.TemporaryDirectory() as tmp:
        for backend in ("sqlite", "postgresql"):
            workdir = Path(tmp) / backend
            workdir.mkdir()
            with _database(backend, workdir) as url:
                if url is not None:
                    _backend(url, workdir, runs, base, backend)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
