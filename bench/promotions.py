"""Pricing a 30-line basket against 1,000 active promotions of mixed kinds.

The promotions look like a chain's: a few dozen chain-wide, the rest for one of 100 stores,
about a third for wallet QR only, most on a sku or a category. The time reported is ``price``
with a prepared ``Catalog`` (rejection reasons stay lazy, as at the till). The baseline, in the
same run: a loop that merely touches each promotion's targeting fields once. Target: median
≤ 2 ms.

Run from the repository root: ``.venv/bin/python -m bench.promotions`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

from gateway.domain.promotions import (
    Basket,
    BasketLine,
    Catalog,
    Coupon,
    Customer,
    FixedPrice,
    Limits,
    LoyaltyPoints,
    MultiBuy,
    PercentOff,
    Promotion,
    SaleContext,
    Targeting,
    ThresholdDiscount,
    Tier,
    price,
)

TARGET_MS = 2.0
SKUS = [f"sku{i}" for i in range(300)]
CATEGORIES = [f"cat{i}" for i in range(30)]


def _targeting(rnd: random.Random, i: int) -> Targeting:
    stores = frozenset() if i % 25 == 0 else frozenset({f"s{rnd.randrange(100)}"})
    methods = frozenset({"qr"}) if rnd.random() < 0.33 else frozenset()
    roll = rnd.random()
    skus = frozenset(rnd.sample(SKUS, 3)) if roll < 0.5 else frozenset()
    cats = frozenset({rnd.choice(CATEGORIES)}) if 0.5 <= roll < 0.8 else frozenset()
    hours = (8, 20) if rnd.random() < 0.2 else None
    return Targeting(methods, stores, hours=hours, currency="EUR", skus=skus, categories=cats)


def _promotion(rnd: random.Random, i: int) -> Promotion:
    common = {
        "id": f"promo{i:04d}",
        "priority": rnd.randrange(5),
        "group": rnd.choice([None, None, "g1", "g2"]),
        "targeting": _targeting(rnd, i),
        "limits": Limits(budget_minor=100_000) if i % 7 == 0 else Limits(),
    }
    match i % 6:
        case 0:
            return PercentOff(percent_bp=rnd.randrange(500, 3000), cap_minor=500, **common)
        case 1:
            return ThresholdDiscount(tiers=(Tier(2000, 200), Tier(5000, 700)), **common)
        case 2:
            return MultiBuy(buy=2, get=1, **common)
        case 3:
            return FixedPrice(quantity=3, price_minor=1000, **common)
        case 4:
            return Coupon(code=f"C{i}", amount_off_minor=300, **common)
        case _:
            return LoyaltyPoints(points=1, per_minor=100, **common)


def _data() -> tuple[Basket, list[Promotion], SaleContext]:
    rnd = random.Random(7)
    lines = tuple(
        BasketLine(s, s, rnd.choice(CATEGORIES), rnd.randint(1, 4), rnd.randint(50, 2000))
        for s in rnd.sample(SKUS, 30)
    )
    promos = [_promotion(rnd, i) for i in range(1000)]
    ctx = SaleContext(
        moment=datetime(2024, 6, 3, 12, tzinfo=UTC),
        payment_method="qr",
        store_id="s3",
        till_id="t1",
        customer=Customer("c", purchases=4),
        coupon_codes=frozenset({"C4", "C10"}),
    )
    return Basket(lines, "EUR"), promos, ctx


def _touch(promos: list[Promotion]) -> int:
    """The baseline: read each promotion's targeting fields once."""
    n = 0
    for p in promos:
        t = p.targeting
        n += len(t.payment_methods) + len(t.stores) + len(t.skus) + len(t.categories)
    return n


def _times(fn: Callable[[], object], runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return sorted(out)


def _report(name: str, times: list[float]) -> float:
    median = statistics.median(times)
    p99 = times[min(len(times) - 1, int(len(times) * 0.99))]
    print(f"{name:<34} median {median:8.3f} ms   p99 {p99:8.3f} ms")
    return median


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run")
    runs = 200 if parser.parse_args(argv).quick else 2000
    basket, promos, ctx = _data()
    catalog = Catalog(promos)
    sale = price(basket, catalog, ctx)
    print(
        f"{len(basket.lines)} lines, {len(promos)} promotions: {len(sale.applied)} applied, "
        f"{len(sale.rejected)} rejected, discount {sale.discount_minor} minor, {sale.points} points"
    )
    base = _report("baseline: touch targeting", _times(lambda: _touch(promos), runs))
    median = _report("price (prepared catalog)", _times(lambda: price(basket, catalog, ctx), runs))
    _report("price + all reasons worded", _times(lambda: _worded(basket, catalog, ctx), runs // 4))
    _report("price (catalog built per call)", _times(lambda: price(basket, promos, ctx), runs // 4))
    verdict = "ok" if median <= TARGET_MS else "OVER TARGET"
    print(
        f"median {median:.3f} ms, target {TARGET_MS} ms ({median / base:.1f}x baseline): {verdict}"
    )
    return 0


def _worded(basket: Basket, catalog: Catalog, ctx: SaleContext) -> list[str]:
    return [r.reason for r in price(basket, catalog, ctx).rejected]


if __name__ == "__main__":
    raise SystemExit(main())
