"""The isolated pairs of a day found partition by partition, so that several processes share it.

:func:`~.columnar.reconcile_frames` finds the isolated pairs with one group-by over every token
(each key a payment or refund owns, each place a line mentions one). A group-by by key splits
by key: partition ``k`` of ``n`` takes the tokens whose key hashes to ``k``
(:func:`partition_of`) and sees every token of those keys, so its counts per key are exact.
From them it tells, for the payments owning one of its keys:

- *candidates*: a payment whose reference it owns alone and exactly one line mentions, by its
  end-to-end id (the pair, with what judging it needs from both rows);
- *ruled out*: a payment owning a key someone else owns too, or another key of its own that a
  line mentions.

A payment is an isolated pair exactly when some partition names it a candidate and none rules
it out (a payment has one reference, so one candidate key at most; the one-mention-in-all
condition is "no other key of it mentioned"), then the plain-credit conditions hold
(:func:`~.columnar.plain_credit`). The pairs are judged by :func:`~.columnar.judge_frame` in
slots by a hash of the payment id (:func:`slot_of`), and what no pair took goes to the pure
engine (:func:`~.columnar.reconcile_rest`). :func:`reconcile_in_parts` runs the whole
pipeline in one process; ``tests/unit/test_reconciliation_parts.py`` checks that it gives the
pure engine's verdicts on random days with every fault kind, and the job table's steps
(``gateway/services/settlement/recon_parts.py``) call these same functions.

The hash is polars' own (``Expr.hash``, seed 0): stable within one polars version, so every
process of a run must use the same version (the run records it, and a part refuses to run
under another).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import polars as pl

from gateway.domain.reconciliation.columnar import (
    CANDIDATE_KEY,
    ColumnarReconciliation,
    judge_frame,
    key_tokens,
    per_key_counts,
    plain_credit,
    reconcile_rest,
)
from gateway.domain.reconciliation.model import SETTLEABLE, FeeSchedule, ManualDecision

# What a candidate pair carries: enough of both rows to check and judge it without them.
CANDIDATE_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "method": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "paid_on": pl.Date,
    "refunded_minor": pl.Int64,
    "line_id": pl.String,
    "booking_date": pl.Date,
    "entry_tx_count": pl.Int64,
    "entry_amount_minor": pl.Int64,
    "fee_minor": pl.Int64,
    "settled": pl.Int64,
    "line_currency": pl.String,
    "kind": pl.String,
}
HASH_SEED = 0


def partition_of(key: pl.Expr, parts: int) -> pl.Expr:
    """The partition (0 … parts-1) of each key."""
    return (key.hash(HASH_SEED) % parts).cast(pl.Int64)


def slot_of(payment_id: pl.Expr, slots: int) -> pl.Expr:
    """The judging slot (0 … slots-1) of each payment id."""
    return partition_of(payment_id, slots)


@dataclass(frozen=True)
class PartKeys:
    """What partition ``k`` tells: candidate pairs (``CANDIDATE_SCHEMA``) and ruled-out ids."""

    candidates: pl.DataFrame
    ruled_out: pl.Series


def part_keys(
    payments: pl.DataFrame, refunds: pl.DataFrame, lines: pl.DataFrame, part: int, parts: int
) -> PartKeys:
    """Candidates and ruled-out payments among the keys of partition ``part`` of ``parts``."""
    if not 0 <= part < parts:
        raise ValueError(f"partition {part} is not one of 0…{parts - 1}")
    pays = payments.filter(pl.col("status").is_in(sorted(SETTLEABLE)))
    tokens = key_tokens(
        pays.lazy().with_row_index("p"), refunds, lines.lazy().with_row_index("l")
    ).filter(partition_of(pl.col("key"), parts) == part)
    per_key = per_key_counts(tokens)
    shared = per_key.filter(pl.col("owners") > 1).select("key")
    sharing = tokens.filter(pl.col("p").is_not_null()).join(shared, on="key", how="semi")
    owned = per_key.filter(pl.col("p").is_not_null() & (pl.col("owners") == 1))
    mentioned = owned.filter(~CANDIDATE_KEY & (pl.col("mentions") > 0))
    out = pl.collect_all(
        [
            owned.filter(CANDIDATE_KEY).select("p", "l"),
            pl.concat([sharing.select("p"), mentioned.select("p")]).unique(),
        ]
    )
    found, ruled = out
    candidates = pl.concat(
        [
            pays.select("id", "method", "amount_minor", "currency", "paid_on", "refunded_minor")[
                found["p"]
            ],
            lines.select(
                "line_id",
                "booking_date",
                "entry_tx_count",
                "entry_amount_minor",
                "fee_minor",
                settled=pl.col("amount_minor"),
                line_currency=pl.col("currency"),
                kind=pl.col("kind"),
            )[found["l"]],
        ],
        how="horizontal",
    )
    return PartKeys(candidates.cast(CANDIDATE_SCHEMA), pays["id"][ruled["p"]])  # type: ignore[arg-type]


def pairs_of(
    candidates: pl.DataFrame,
    ruled_out: pl.Series,
    refunds: pl.DataFrame,
    decisions: Sequence[ManualDecision],
) -> pl.DataFrame:
    """The isolated pairs among ``candidates`` (of every partition, or of one slot): those no
    partition ruled out that meet the plain-credit conditions."""
    kept = candidates.filter(~pl.col("id").is_in(ruled_out.implode()))
    pay = kept.select("id", "refunded_minor", "currency")
    line = kept.select(
        "line_id",
        "kind",
        "entry_tx_count",
        amount_minor=pl.col("settled"),
        currency=pl.col("line_currency"),
    )
    return kept.filter(plain_credit(pay, line, refunds, decisions))


def judge(pairs: pl.DataFrame, fees: FeeSchedule) -> pl.DataFrame:
    """The pairs' verdicts (as :func:`~.columnar.judge_frame` gives them)."""
    return judge_frame(pairs, fees)


def reconcile_in_parts(
    payments: pl.DataFrame,
    refunds: pl.DataFrame,
    lines: pl.DataFrame,
    *,
    parts: int,
    fees: FeeSchedule,
    as_of: date,
    window_days: int = 3,
    unsettled_after_days: int = 2,
    decisions: Sequence[ManualDecision] = (),
) -> ColumnarReconciliation:
    """The job table's pipeline in one process: ``parts`` partitions, as many judging slots,
    then the pure engine on the rest. The same verdicts as :func:`~.matching.reconcile`."""
    found = [part_keys(payments, refunds, lines, k, parts) for k in range(parts)]
    candidates = pl.concat([f.candidates for f in found])
    ruled_out = pl.concat([f.ruled_out for f in found])
    judged = []
    for slot in range(parts):
        mine = slot_of(pl.col("id"), parts) == slot
        ruled = ruled_out.to_frame("id").filter(mine)["id"]
        pairs = pairs_of(candidates.filter(mine), ruled, refunds, decisions)
        judged.append(judge(pairs, fees))
    return reconcile_rest(
        payments,
        refunds,
        lines,
        pl.concat(judged),
        fees=fees,
        as_of=as_of,
        window_days=window_days,
        unsettled_after_days=unsettled_after_days,
        decisions=decisions,
    )
