"""Benchmark of a chain's settlement day in columns: N payments × N bank lines with 1 % faults.

The day is made as polars frames directly (no Python object per payment), with ``N // 500``
faults of each kind of ``bench.recon`` (missing, duplicate, wrong fee, unknown, amount). Two
measurements, each in a process of its own so that each peak resident set is its own (inputs
included, as a worker reconciling the day would hold them):

- **fast path**: ``reconcile_frames`` (gateway/domain/reconciliation/columnar.py): the isolated
  reference pairs judged in polars, the residue by the pure engine; its outcome counts are
  checked against the injected faults exactly.
- **polars join**: the baseline of issue 19, the join of ``bench.recon`` (reference = end-to-end
  id, with the amount and fee checks) on ready frames of the same columns: the join alone.

Run from the repository root: ``.venv/bin/python -m bench.recon_columnar`` (10 000 000; ``--n``
to choose, ``--quick`` for 1 000 000). Target: fast path ≤ 3× the join alone, ≤ 4 GiB peak.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import polars as pl

from bench.recon import AS_OF, FAULTS, FEES, START, expected_counts
from gateway.domain.reconciliation.columnar import (
    LINE_SCHEMA,
    PAYMENT_SCHEMA,
    REFUND_SCHEMA,
    reconcile_frames,
)

TARGET_RATIO, TARGET_MIB = 3.0, 4096


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(n: int, seed: int = 7) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Payments and their shuffled bank lines; ``n // 500`` faults of each kind."""
    rng = np.random.default_rng(seed)
    k = n // 500
    fault = np.zeros(n, dtype=np.int8)  # 0 none, 1 + index in FAULTS
    where = rng.choice(n, size=5 * k, replace=False)
    for f in range(5):
        fault[where[f * k : (f + 1) * k]] = f + 1
    i = pl.int_range(n, eager=True).alias("i")
    pays = pl.DataFrame(
        {
            "i": i,
            "amount_minor": rng.integers(100, 100_000, n, dtype=np.int64),
            "fault": fault,
        }
    ).with_columns(
        id=pl.lit("p") + pl.col("i").cast(pl.String).str.zfill(31),
        reference=pl.lit("K") + pl.col("i").cast(pl.String).str.zfill(11),
        method=pl.when(pl.col("i") % 3 == 0).then(pl.lit("card")).otherwise(pl.lit("qr")),
        currency=pl.lit("EUR"),
        status=pl.lit("paid"),
        refunded_minor=pl.lit(0, pl.Int64),
        terminal_trace=pl.lit(None, pl.String),
        receipt_no=pl.lit(None, pl.String),
    )
    pays = pays.with_columns(paid_on=pl.lit(START) + pl.duration(days=pl.col("i") % 7))
    code = {name: j + 1 for j, name in enumerate(FAULTS)}
    card = pl.col("method") == "card"
    fee = (pl.col("amount_minor") * pl.when(card).then(140).otherwise(90) + 5_000) // 10_000
    fee = fee + pl.when(card).then(5).otherwise(0)
    base = pays.filter(pl.col("fault") != code["missing"]).select(
        "i",
        "fault",
        line_id=pl.lit("L") + pl.col("i").cast(pl.String).str.zfill(10),
        amount_minor=pl.col("amount_minor")
        - pl.when(pl.col("fault") == code["amount"]).then(4).otherwise(0),
        currency=pl.lit("EUR"),
        booking_date=pl.lit(START) + pl.duration(days=(pl.col("i") + 1) % 7),
        end_to_end_id=pl.col("reference"),
        fee_minor=fee + pl.when(pl.col("fault") == code["wrong_fee"]).then(1).otherwise(0),
    )
    dupes = base.filter(pl.col("fault") == code["duplicate"]).with_columns(
        line_id=pl.lit("D") + pl.col("i").cast(pl.String).str.zfill(10)
    )
    unknown = base.filter(pl.col("fault") == code["unknown"]).with_columns(
        line_id=pl.lit("U") + pl.col("i").cast(pl.String).str.zfill(10),
        amount_minor=100_000_000 + pl.col("i"),
        end_to_end_id=pl.lit("X") + pl.col("i").cast(pl.String),
        fee_minor=pl.lit(0, pl.Int64),
    )
    lines = pl.concat([base, dupes, unknown]).sample(fraction=1.0, shuffle=True, seed=seed)
    lines = lines.with_columns(
        entry_ref=pl.lit(""),
        entry_amount_minor=pl.lit(None, pl.Int64),
        entry_tx_count=pl.lit(1, pl.Int64),
        value_date=pl.lit(None, pl.Date),
        account_servicer_ref=pl.lit(None, pl.String),
        remittance=pl.lit(""),
        kind=pl.lit(None, pl.String),
    ).select(list(LINE_SCHEMA))
    return pays.select(list(PAYMENT_SCHEMA)), lines.cast(LINE_SCHEMA), k  # type: ignore[arg-type]


def baseline_frames(pays: pl.DataFrame, lines: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The columns ``bench.recon``'s polars join works on."""
    return (
        pays.select("id", "reference", "method", amount="amount_minor"),
        lines.select("line_id", reference="end_to_end_id", gross="amount_minor", fee="fee_minor"),
    )


def polars_join(pays: pl.DataFrame, bank: pl.DataFrame) -> pl.DataFrame:
    """``bench.recon``'s baseline: the full join with the amount and fee checks, counted."""
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


def measure(what: str, n: int, repeat: int) -> dict[str, Any]:
    """One side of the benchmark, in this process: times of each run and the peak RSS."""
    t0 = time.perf_counter()
    pays, lines, k = generate(n)
    out: dict[str, Any] = {"generate_s": time.perf_counter() - t0, "lines": lines.height}
    times = []
    if what == "join":
        p, b = baseline_frames(pays, lines)
        del pays, lines
        for _ in range(repeat):
            t0 = time.perf_counter()
            polars_join(p, b)
            times.append(time.perf_counter() - t0)
    else:
        refunds = pl.DataFrame(schema=REFUND_SCHEMA)
        for r in range(repeat):
            t0 = time.perf_counter()
            rec = reconcile_frames(pays, refunds, lines, fees=FEES, as_of=AS_OF)
            times.append(time.perf_counter() - t0)
            if r == 0:
                got = {f"{s}:{o.value}": c for (s, o), c in rec.counts().items()}
                want = {f"{s}:{o.value}": c for (s, o), c in expected_counts(n, k).items()}
                out["exact"] = got == want
                out["pairs"] = rec.pairs.height
                out["residue"] = len(rec.rest.results)
            del rec
    out["times"] = times
    out["peak_mib"] = peak_mib()
    return out


def child(what: str, n: int, repeat: int) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "bench.recon_columnar", "--child", what]
    cmd += ["--n", str(n), "--repeat", str(repeat)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000_000)
    parser.add_argument("--quick", action="store_true", help="1 000 000 payments")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--child", choices=("join", "fast"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    n = 1_000_000 if args.quick else args.n
    if args.child:
        print(json.dumps(measure(args.child, n, args.repeat)))
        return 0
    join = child("join", n, args.repeat)
    fast = child("fast", n, args.repeat)
    t_join, t_fast = statistics.median(join["times"]), statistics.median(fast["times"])
    print(
        f"day of {n:,} payments × {fast['lines']:,} bank lines, {n // 500:,} faults of each kind "
        f"({', '.join(FAULTS)}); generated in {fast['generate_s']:.1f} s"
    )
    print(
        f"fast path    median {t_fast:6.2f} s of {args.repeat} "
        f"({', '.join(f'{t:.2f}' for t in fast['times'])}); peak {fast['peak_mib']:,.0f} MiB; "
        f"{fast['pairs']:,} isolated pairs, {fast['residue']:,} residue verdicts; "
        f"fault counts {'exact' if fast['exact'] else 'WRONG'}"
    )
    print(
        f"polars join  median {t_join:6.2f} s of {args.repeat} "
        f"({', '.join(f'{t:.2f}' for t in join['times'])}); peak {join['peak_mib']:,.0f} MiB "
        f"(join alone, on ready frames)"
    )
    ratio = t_fast / t_join
    met = ratio <= TARGET_RATIO and fast["peak_mib"] <= TARGET_MIB
    print(
        f"ratio        {ratio:.1f}x the polars join; targets (<= {TARGET_RATIO:.0f}x, "
        f"<= {TARGET_MIB:,} MiB peak): {'met' if met else 'NOT met'}"
    )
    return 0 if fast["exact"] else 1


if __name__ == "__main__":
    sys.exit(main())
