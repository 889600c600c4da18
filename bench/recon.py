"""Benchmark of reconciliation matching: N payments against N bank lines with 1 % faults.

The faults (missing settlement, duplicate line, wrong fee, unknown line, amount mismatch) are
injected in equal numbers and the outcome counts are checked against them exactly. A polars
join of the same keys (payment reference = end-to-end id), with the amount and fee checks, runs
in the same process as the baseline, timed two ways: "from objects" (building the frames from
the same Python objects the engine gets, plus the join) and "join alone" (on ready frames). The
target's ratio is the engine against "from objects", the fair comparison: both start from the
same objects. "Join alone" is printed for information.

Run from the repository root: ``.venv/bin/python -m bench.recon`` (``--quick`` for 100 000).
Peak memory is ``ru_maxrss`` (tracemalloc is too slow at this size): the growth of the process
peak during matching, and the process peak overall.
"""

from __future__ import annotations

import argparse
import gc
import random
import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import date, timedelta
from typing import Any

from gateway.domain.reconciliation import (
    BankLine,
    FeeRate,
    FeeSchedule,
    KassaPayment,
    Outcome,
    Reconciliation,
    reconcile,
)

TARGET_S, TARGET_MB, TARGET_RATIO = 10.0, 1536, 3.0
FEES = FeeSchedule.of(qr=FeeRate(90, 0), card=FeeRate(140, 5))
START = date(2026, 3, 2)
AS_OF = START + timedelta(days=30)
FAULTS = ("missing", "duplicate", "wrong_fee", "unknown", "amount")


def rss_mb() -> float:
    """The process's peak resident set so far, in MiB (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n: int, seed: int = 7) -> tuple[list[KassaPayment], list[BankLine], int]:
    """N payments and their bank lines, with ``n // 500`` faults of each of five kinds."""
    rng = random.Random(seed)
    k = n // 500
    fault_at = dict.fromkeys(range(n), "")
    for i, where in enumerate(rng.sample(range(n), 5 * k)):
        fault_at[where] = FAULTS[i // k]
    days = [START + timedelta(days=d) for d in range(7)]
    payments, lines = [], []
    for i in range(n):
        method = "qr" if i % 3 else "card"
        amount = rng.randrange(100, 100_000)
        p = KassaPayment(f"{i:032x}", f"K{i:011d}", method, amount, "EUR", days[i % 7])
        payments.append(p)
        fault = fault_at[i]
        if fault == "missing":
            continue
        fee = FEES.rate(method).fee(amount) + (1 if fault == "wrong_fee" else 0)
        gross = amount - 4 if fault == "amount" else amount
        booked = days[(i + 1) % 7]
        lines.append(
            BankLine(
                line_id=f"L{i:010d}",
                amount_minor=gross,
                fee_minor=fee,
                currency="EUR",
                booking_date=booked,
                end_to_end_id=p.reference,
            )
        )
        if fault == "duplicate":
            lines.append(
                BankLine(
                    line_id=f"D{i:010d}",
                    amount_minor=gross,
                    fee_minor=fee,
                    currency="EUR",
                    booking_date=booked,
                    end_to_end_id=p.reference,
                )
            )
        elif fault == "unknown":
            lines.append(
                BankLine(
                    line_id=f"U{i:010d}",
                    amount_minor=100_000_000 + i,
                    fee_minor=0,
                    currency="EUR",
                    booking_date=booked,
                    end_to_end_id=f"X{i}",
                )
            )
    rng.shuffle(lines)
    return payments, lines, k


def expected_counts(n: int, k: int) -> dict[tuple[str, Outcome], int]:
    """The outcome counts the injected faults must produce, no more and no fewer."""
    return {
        ("payment", Outcome.MATCHED): n - 4 * k,
        ("payment", Outcome.PAID_NOT_SETTLED): k,
        ("payment", Outcome.SETTLED_TWICE): k,
        ("payment", Outcome.MATCHED_FEE_DIFFERENCE): k,
        ("payment", Outcome.AMOUNT_MISMATCH): k,
        ("line", Outcome.MATCHED): n - 3 * k,
        ("line", Outcome.SETTLED_TWICE): k,
        ("line", Outcome.MATCHED_FEE_DIFFERENCE): k,
        ("line", Outcome.AMOUNT_MISMATCH): k,
        ("line", Outcome.SETTLED_UNKNOWN): k,
    }


def run_engine(payments: list[KassaPayment], lines: list[BankLine]) -> Reconciliation:
    return reconcile(payments, (), lines, fees=FEES, as_of=AS_OF)


def polars_join(payments: list[KassaPayment], lines: list[BankLine]) -> Callable[[], Any]:
    """Frames of the same keys, and a function running the join with the amount/fee checks."""
    import polars as pl

    def frames() -> tuple[Any, Any]:
        pays = pl.DataFrame(
            {
                "id": [p.id for p in payments],
                "reference": [p.reference for p in payments],
                "method": [p.method for p in payments],
                "amount": [p.amount_minor for p in payments],
            }
        )
        bank = pl.DataFrame(
            {
                "line_id": [ln.line_id for ln in lines],
                "reference": [ln.end_to_end_id for ln in lines],
                "gross": [ln.amount_minor for ln in lines],
                "fee": [ln.fee_minor for ln in lines],
            }
        )
        return pays, bank

    def join(pays: Any, bank: Any) -> Any:
        bp = pl.when(pl.col("method") == "qr").then(90).otherwise(140)
        fixed = pl.when(pl.col("method") == "qr").then(0).otherwise(5)
        out = pays.join(bank, on="reference", how="full", coalesce=True).with_columns(
            n=pl.len().over("reference"),
            fee_expected=(pl.col("amount") * bp + 5_000) // 10_000 + fixed,
        )
        return out.select(
            (pl.col("gross") != pl.col("amount")).sum().alias("amount"),
            (pl.col("fee") != pl.col("fee_expected")).sum().alias("fee"),
            pl.col("line_id").is_null().sum().alias("missing"),
            pl.col("id").is_null().sum().alias("unknown"),
            (pl.col("n") > 1).sum().alias("twice"),
        )

    return lambda: (frames, join)


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="100 000 payments")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    n = 100_000 if args.quick else args.n
    t_gen, (payments, lines, k) = timed(lambda: generate(n))
    print(
        f"generated {n:,} payments and {len(lines):,} lines in {t_gen:.1f} s; "
        f"{k:,} faults of each kind: {', '.join(FAULTS)}"
    )
    base = rss_mb()
    times, mem = [], 0.0
    for i in range(args.repeat):
        gc.collect()
        t, result = timed(lambda: run_engine(payments, lines))
        times.append(t)
        if i == 0:
            mem = rss_mb() - base
            ok = check(result, n, k)
        del result
    frames, join = polars_join(payments, lines)()
    t_frames = [timed(frames)[0] for _ in range(args.repeat)]
    pays_df, bank_df = frames()
    t_joins, counts = zip(
        *(timed(lambda: join(pays_df, bank_df)) for _ in range(args.repeat)), strict=True
    )
    print(f"polars check counts: {counts[0].to_dicts()[0]}")
    engine, t_join = statistics.median(times), statistics.median(t_joins)
    t_both = statistics.median(a + b for a, b in zip(t_frames, t_joins, strict=True))
    print(
        f"matching     median {engine:6.2f} s of {args.repeat} (runs: "
        f"{', '.join(f'{t:.2f}' for t in times)}); peak +{mem:,.0f} MiB during matching, "
        f"{rss_mb():,.0f} MiB process peak (inputs included)"
    )
    print(
        f"polars       median {t_both:6.2f} s from objects "
        f"(frames {statistics.median(t_frames):.2f} s + join {t_join:.2f} s)"
    )
    print(
        f"ratio        {engine / t_both:.1f}x polars from objects (the target's ratio); "
        f"{engine / t_join:.1f}x the join alone (for information)"
    )
    met = engine <= TARGET_S and rss_mb() <= TARGET_MB and engine / t_both <= TARGET_RATIO
    print(
        f"targets (<= {TARGET_S:.0f} s, <= {TARGET_MB} MiB process peak, "
        f"<= {TARGET_RATIO:.0f}x polars from objects): "
        f"{'met' if met else 'NOT met'}; fault counts {'exact' if ok else 'WRONG'}"
    )
    return 0 if ok else 1


def check(result: Reconciliation, n: int, k: int) -> bool:
    """Print each outcome count beside the injected one; True if all agree exactly."""
    got: dict[tuple[str, Outcome], int] = {}
    for r in result.results:
        got[(r.subject, r.outcome)] = got.get((r.subject, r.outcome), 0) + 1
    want = expected_counts(n, k)
    for key in sorted(want.keys() | got.keys()):
        mark = "ok" if got.get(key, 0) == want.get(key, 0) else "MISMATCH"
        print(
            f"  {key[0]:8} {key[1]:24} {got.get(key, 0):>9,} expected {want.get(key, 0):>9,} {mark}"
        )
    return got == want


if __name__ == "__main__":
    sys.exit(main())
