"""The same verdicts for a chain's day, in columns: the common pairs in polars, the rest in Python.

On a busy day almost every payment is settled by exactly one bank line that names it by its
reference, alone and plainly. ``reconcile_frames`` finds those *isolated pairs* with polars
joins, judges them with vectorised expressions, and hands everything else (the *residue*: the
faults, refunds, batches, decisions, shared keys …) to :func:`~.matching.reconcile`, the one
definition of a verdict. The split is exact, not a heuristic: an isolated pair is one whose
verdict the pure engine reaches in stage 2 by ``ByReference.judge_payments``' one-line path, and
whose removal changes nothing the engine does with the residue. A payment ``p`` and line ``l``
are an isolated pair when

- ``p`` is settleable, has refunded nothing and no refund names it, and no decision names it;
- every key of ``p`` (reference, terminal trace, receipt number) belongs to ``p`` alone: no
  other payment's key and no refund id equals it (so the residue's key map is the full one
  minus keys nobody else has);
- exactly one line mentions a key of ``p`` anywhere the engine looks (end-to-end id, servicer
  reference, a word of the remittance text) and that line is ``l``, with end-to-end id equal
  to ``p.reference`` (so stage 2 ties ``l`` to ``p`` first, and ties no other line to ``p``);
- ``l`` is a plain credit (``kind`` payment, or none and not negative), one transaction
  (``entry_tx_count`` ≤ 1, so it is not counted in any batch entry), in ``p``'s currency, and
  no decision names it.

Everything else is the residue, reconciled by the pure engine on domain objects; the property
test in ``tests/unit/test_reconciliation_columnar.py`` checks on random days with every fault
kind that the union is exactly the pure engine's answer, order included.

Why polars (not DuckDB): the baseline the issue sets is a polars join, polars reads SQL result
batches straight into frames, and it runs inside the process with no database file or server of
its own; the matching needs hash joins and group-bys, which is what it is built for.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from operator import attrgetter
from typing import Any

import numpy as np
import polars as pl

from gateway.domain.reconciliation.matching import reconcile
from gateway.domain.reconciliation.model import (
    SETTLEABLE,
    BankLine,
    DaySummary,
    FeeSchedule,
    KassaPayment,
    KassaRefund,
    ManualDecision,
    Outcome,
    Reconciliation,
    Result,
)

PAYMENT_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "reference": pl.String,
    "method": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "paid_on": pl.Date,
    "status": pl.String,
    "refunded_minor": pl.Int64,
    "terminal_trace": pl.String,
    "receipt_no": pl.String,
}
REFUND_SCHEMA: dict[str, Any] = {
    "id": pl.String,
    "payment_id": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "succeeded_on": pl.Date,
}
LINE_SCHEMA: dict[str, Any] = {
    "line_id": pl.String,
    "amount_minor": pl.Int64,
    "currency": pl.String,
    "booking_date": pl.Date,
    "end_to_end_id": pl.String,
    "fee_minor": pl.Int64,
    "entry_ref": pl.String,
    "entry_amount_minor": pl.Int64,
    "entry_tx_count": pl.Int64,
    "value_date": pl.Date,
    "account_servicer_ref": pl.String,
    "remittance": pl.String,
    "kind": pl.String,
}
# Python's str.split() breaks at what str.isspace() calls space: Unicode's White_Space (the
# regex \s) plus the four information separators U+001C..U+001F.
_WORD = r"[^\s\x1c-\x1f]+"
_OUTCOMES = {o.value: o for o in Outcome}


def payments_frame(payments: Iterable[KassaPayment]) -> pl.DataFrame:
    """Domain payments as a frame (for tests and small inputs)."""
    rows = [tuple(getattr(p, f) for f in PAYMENT_SCHEMA) for p in payments]
    return pl.DataFrame(rows, schema=PAYMENT_SCHEMA, orient="row")


def refunds_frame(refunds: Iterable[KassaRefund]) -> pl.DataFrame:
    rows = [tuple(getattr(r, f) for f in REFUND_SCHEMA) for r in refunds]
    return pl.DataFrame(rows, schema=REFUND_SCHEMA, orient="row")


def lines_frame(lines: Iterable[BankLine]) -> pl.DataFrame:
    rows = [tuple(getattr(ln, f) for f in LINE_SCHEMA) for ln in lines]
    return pl.DataFrame(rows, schema=LINE_SCHEMA, orient="row")


@dataclass(frozen=True)
class ColumnarReconciliation:
    """The verdicts of one run: ``pairs`` (isolated pairs, one row each, sorted by payment id)
    and ``rest`` (the pure engine's verdicts on the residue), with the merged day summaries."""

    pairs: pl.DataFrame
    rest: Reconciliation
    days: tuple[DaySummary, ...]
    unused_decisions: tuple[ManualDecision, ...]

    def results(self, day: date | None = None) -> Iterator[Result]:
        """Every verdict in the pure engine's order (payments, refunds, lines; each by id).

        With ``day``, only the verdicts on that day (as ``Result.day``).
        """
        rest = self.rest.results
        if day is not None:
            rest = tuple(r for r in rest if r.day == day)
        pays = [r for r in rest if r.subject == "payment"]
        refs = [r for r in rest if r.subject == "refund"]
        lines = [r for r in rest if r.subject == "line"]
        yield from heapq.merge(self._pair_results("payment", day), pays, key=_ID)
        yield from refs
        yield from heapq.merge(self._pair_results("line", day), lines, key=_ID)

    def counts(self) -> dict[tuple[str, Outcome], int]:
        """How many verdicts per (subject, outcome)."""
        out: dict[tuple[str, Outcome], int] = {}
        for r in self.rest.results:
            out[(r.subject, r.outcome)] = out.get((r.subject, r.outcome), 0) + 1
        for outcome, n in self.pairs.group_by("outcome").len().iter_rows():
            for subject in ("payment", "line"):
                key = (subject, _OUTCOMES[outcome])
                out[key] = out.get(key, 0) + n
        return out

    def _pair_results(self, subject: str, day: date | None) -> Iterator[Result]:
        frame = self.pairs
        if subject == "line":
            frame = frame.sort("line_id")
        if day is not None:
            frame = frame.filter(
                pl.col("paid_on" if subject == "payment" else "booking_date") == day
            )
        new, result = tuple.__new__, Result
        for (
            pid,
            lid,
            outcome,
            paid_on,
            booked,
            cur,
            amount,
            settled,
            fee_exp,
            charged,
        ) in frame.iter_rows():
            o = _OUTCOMES[outcome]
            if subject == "payment":
                row = (
                    "payment",
                    pid,
                    o,
                    paid_on,
                    cur,
                    amount,
                    settled,
                    fee_exp,
                    charged,
                    (lid,),
                    "",
                )
            else:
                row = ("line", lid, o, booked, cur, amount, settled, fee_exp, charged, (pid,), "")
            yield new(result, row)


_ID = attrgetter("id")


def reconcile_frames(
    payments: pl.DataFrame,
    refunds: pl.DataFrame,
    lines: pl.DataFrame,
    *,
    fees: FeeSchedule,
    as_of: date,
    window_days: int = 3,
    unsettled_after_days: int = 2,
    decisions: Sequence[ManualDecision] = (),
) -> ColumnarReconciliation:
    """:func:`~.matching.reconcile` over frames (schemas ``PAYMENT_SCHEMA`` …), same verdicts."""
    pays = payments.filter(pl.col("status").is_in(sorted(SETTLEABLE)))
    _unique(pays["id"], "payment")
    _unique(refunds["id"], "refund")
    _unique(lines["line_id"], "line")
    p_idx, l_idx = _isolated_pairs(pays, refunds, lines, decisions)
    pairs = _judge_pairs(pays, lines, p_idx, l_idx, fees)
    rest = reconcile(
        _objects(_without(pays, p_idx), KassaPayment, PAYMENT_SCHEMA),
        _objects(refunds, KassaRefund, REFUND_SCHEMA),
        _lines(_without(lines, l_idx)),
        fees=fees,
        as_of=as_of,
        window_days=window_days,
        unsettled_after_days=unsettled_after_days,
        decisions=decisions,
    )
    return ColumnarReconciliation(
        pairs, rest, _merge_days(rest.days, _pair_days(pairs)), rest.unused_decisions
    )


def reconcile_rest(
    payments: pl.DataFrame,
    refunds: pl.DataFrame,
    lines: pl.DataFrame,
    pairs: pl.DataFrame,
    *,
    fees: FeeSchedule,
    as_of: date,
    window_days: int = 3,
    unsettled_after_days: int = 2,
    decisions: Sequence[ManualDecision] = (),
) -> ColumnarReconciliation:
    """The pure engine on what ``pairs`` (judged isolated pairs, as :func:`judge_frame` gives
    them, found elsewhere: by partitions) leave of the day, merged with them."""
    pays = payments.filter(pl.col("status").is_in(sorted(SETTLEABLE)))
    rest = reconcile(
        _objects(pays.join(pairs.select("id"), on="id", how="anti"), KassaPayment, PAYMENT_SCHEMA),
        _objects(refunds, KassaRefund, REFUND_SCHEMA),
        _lines(lines.join(pairs.select("line_id"), on="line_id", how="anti")),
        fees=fees,
        as_of=as_of,
        window_days=window_days,
        unsettled_after_days=unsettled_after_days,
        decisions=decisions,
    )
    pairs = pairs if pairs["id"].is_sorted() else pairs.sort("id")
    return ColumnarReconciliation(
        pairs, rest, _merge_days(rest.days, _pair_days(pairs)), rest.unused_decisions
    )


def _unique(ids: pl.Series, what: str) -> None:
    """The pure engine's refusal of an id seen twice, naming the same (first, sorted) id."""
    if ids.is_sorted():
        if len(ids) < 2 or not (ids.slice(1) == ids.slice(0, len(ids) - 1)).any():
            return
    elif ids.n_unique() == len(ids):
        return
    twice = ids.filter(ids.is_duplicated()).sort()[0]
    raise ValueError(f"{what} id {twice!r} appears twice: ids must be unique")


# Roles of a token: who owns it (a payment's reference, another key of a payment, a refund id)
# or where a line mentions it (its end-to-end id, anywhere else the engine looks).
_REFERENCE, _OTHER_KEY, _REFUND_ID, _END_TO_END, _MENTION = range(5)


def key_tokens(p: pl.LazyFrame, refunds: pl.DataFrame, ln: pl.LazyFrame) -> pl.LazyFrame:
    """Every token of the day as (key, p, l, role): each key a payment or refund owns (``p``
    the payment's row number), each place a line mentions one (``l`` the line's row number).

    ``p`` and ``ln`` carry the row numbers as columns ``p`` and ``l`` (UInt32).
    """
    ref, trace, receipt = pl.col("reference"), pl.col("terminal_trace"), pl.col("receipt_no")
    none_u32 = pl.lit(None, pl.UInt32)

    def owned(frame: pl.LazyFrame, key: pl.Expr, role: int, idx: pl.Expr) -> pl.LazyFrame:
        return frame.select(key=key, p=idx, l=none_u32, role=pl.lit(role, pl.Int8))

    def said(frame: pl.LazyFrame, key: pl.Expr, role: int) -> pl.LazyFrame:
        return frame.select(key=key, p=none_u32, l=pl.col("l"), role=pl.lit(role, pl.Int8))

    set_ = pl.col("key").is_not_null() & (pl.col("key") != "")
    tokens = pl.concat(
        [
            owned(p, ref, _REFERENCE, pl.col("p")),
            # Each other key once per payment (the engine's key map takes a payment once).
            owned(p.filter(trace.ne_missing(ref)), trace, _OTHER_KEY, pl.col("p")),
            owned(
                p.filter(receipt.ne_missing(ref) & receipt.ne_missing(trace)),
                receipt,
                _OTHER_KEY,
                pl.col("p"),
            ),
            owned(refunds.lazy(), pl.col("id"), _REFUND_ID, none_u32),
            said(ln, pl.col("end_to_end_id"), _END_TO_END),
            said(
                ln.filter(pl.col("account_servicer_ref").is_not_null()),
                pl.col("account_servicer_ref"),
                _MENTION,
            ),
            said(
                ln.filter(pl.col("remittance").is_not_null() & (pl.col("remittance") != "")),
                pl.col("remittance").str.extract_all(_WORD),
                _MENTION,
            ).explode("key"),
        ]
    ).filter(set_)
    return tokens


def per_key_counts(tokens: pl.LazyFrame) -> pl.LazyFrame:
    """Per key: how many own it, how many places mention it, its (last) owner and mentioning
    line, whether it is a payment's reference, whether an end-to-end id names it."""
    role = pl.col("role")
    return tokens.group_by("key").agg(
        owners=(role <= _REFUND_ID).sum(),
        mentions=(role >= _END_TO_END).sum(),
        p=pl.col("p").max(),
        l=pl.col("l").max(),
        is_reference=(role == _REFERENCE).any(),
        by_end_to_end=(role == _END_TO_END).any(),
    )


# A payment's reference owned by it alone, mentioned once, by an end-to-end id.
CANDIDATE_KEY = pl.col("is_reference") & (pl.col("mentions") == 1) & pl.col("by_end_to_end")


def _isolated_pairs(
    pays: pl.DataFrame,
    refunds: pl.DataFrame,
    lines: pl.DataFrame,
    decisions: Sequence[ManualDecision],
) -> tuple[pl.Series, pl.Series]:
    """Row numbers (in ``pays``, in ``lines``) of the isolated pairs (see the module docstring).

    One group-by over every token (keys owned, keys mentioned) finds them: a payment's
    reference owned by it alone and mentioned once, as a line's end-to-end id, while no other
    key of the payment is shared or mentioned. Then the plain-credit conditions on both rows.
    """
    tokens = key_tokens(pays.lazy().with_row_index("p"), refunds, lines.lazy().with_row_index("l"))
    per_key = per_key_counts(tokens)
    # A key with several owners is nobody's: every payment owning one stays in the residue.
    shared = per_key.filter(pl.col("owners") > 1).select("key")
    sharing = tokens.filter(pl.col("p").is_not_null()).join(shared, on="key", how="semi")
    # One mention among all the keys of a payment (p is the owner of a key owned once).
    owned_keys = per_key.filter(pl.col("p").is_not_null() & (pl.col("owners") == 1))
    per_pay = owned_keys.group_by("p").agg(mentions=pl.col("mentions").sum())
    candidates = (
        owned_keys.filter(CANDIDATE_KEY)
        .join(per_pay.filter(pl.col("mentions") == 1), on="p", how="semi")
        .join(sharing, on="p", how="anti")
        .select("p", "l")
        .collect()
    )
    pay = pays.select("id", "refunded_minor", "currency")[candidates["p"]]
    line = lines.select("line_id", "kind", "amount_minor", "entry_tx_count", "currency")[
        candidates["l"]
    ]
    keep = plain_credit(pay, line, refunds, decisions)
    kept = candidates.filter(keep).sort("p")
    return kept["p"], kept["l"]


def plain_credit(
    pay: pl.DataFrame,
    line: pl.DataFrame,
    refunds: pl.DataFrame,
    decisions: Sequence[ManualDecision],
) -> pl.Series:
    """Which candidate pairs (``pay`` and ``line`` row by row) meet the plain-credit conditions:
    nothing refunded or deciding on the payment; a one-transaction credit in its currency."""
    named = sorted({d.subject_id for d in decisions if d.subject_id})
    named_lines = sorted({i for d in decisions for i in d.line_ids})
    refunded = refunds["payment_id"].unique().implode()
    kind = line["kind"].fill_null("")
    return (
        (pay["refunded_minor"].fill_null(0) == 0)
        & ~pay["id"].is_in(pl.Series(named, dtype=pl.String).implode())
        & ~pay["id"].is_in(refunded)
        & ((kind == "payment") | ((kind == "") & (line["amount_minor"] >= 0)))
        & (line["entry_tx_count"].fill_null(1) <= 1)
        & (line["currency"] == pay["currency"]).fill_null(False)
        & ~line["line_id"].is_in(pl.Series(named_lines, dtype=pl.String).implode())
    )


def _judge_pairs(
    pays: pl.DataFrame, lines: pl.DataFrame, p_idx: pl.Series, l_idx: pl.Series, fees: FeeSchedule
) -> pl.DataFrame:
    """Stage 2's one-line verdict on each pair, as ``ByReference.judge_payments`` gives it."""
    frame = pl.concat(
        [
            pays.select("id", "method", "amount_minor", "currency", "paid_on")[p_idx],
            lines.select(
                "line_id",
                "booking_date",
                "entry_tx_count",
                "entry_amount_minor",
                "fee_minor",
                settled=pl.col("amount_minor"),
            )[l_idx],
        ],
        how="horizontal",
    )
    return judge_frame(frame, fees)


def judge_frame(frame: pl.DataFrame, fees: FeeSchedule) -> pl.DataFrame:
    """The pairs' verdicts, sorted by payment id, from one row per pair: the payment's ``id``,
    ``method``, ``amount_minor``, ``currency``, ``paid_on``, and the line's ``line_id``,
    ``booking_date``, ``entry_tx_count``, ``entry_amount_minor``, ``fee_minor``, ``settled``."""
    bp, fixed = _fee_terms(fees)
    charged = (
        pl.when(pl.col("fee_minor").is_not_null())
        .then(pl.col("fee_minor"))
        .when((pl.col("entry_tx_count") == 1) & pl.col("entry_amount_minor").is_not_null())
        .then(pl.col("settled") - pl.col("entry_amount_minor"))
        .otherwise(None)
    )
    fee_exp = (pl.col("amount_minor") * bp + 5_000).floordiv(10_000) + fixed
    out = (
        frame.lazy()
        .with_columns(fee_expected=fee_exp, charged=charged)
        .select(
            "id",
            "line_id",
            outcome=pl.when(pl.col("settled") != pl.col("amount_minor"))
            .then(pl.lit(Outcome.AMOUNT_MISMATCH.value))
            .when(pl.col("charged").is_not_null() & (pl.col("charged") != pl.col("fee_expected")))
            .then(pl.lit(Outcome.MATCHED_FEE_DIFFERENCE.value))
            .otherwise(pl.lit(Outcome.MATCHED.value)),
            paid_on=pl.col("paid_on"),
            booking_date=pl.col("booking_date"),
            currency=pl.col("currency"),
            expected_minor=pl.col("amount_minor"),
            settled_minor=pl.col("settled"),
            fee_expected_minor=pl.col("fee_expected"),
            fee_charged_minor=pl.col("charged"),
        )
        .collect()
    )
    return out if out["id"].is_sorted() else out.sort("id")


def _without(frame: pl.DataFrame, rows: pl.Series) -> pl.DataFrame:
    """``frame`` less the rows at these positions."""
    taken = np.zeros(frame.height, dtype=bool)
    taken[rows.to_numpy()] = True
    return frame.filter(pl.Series(~taken))


def _fee_terms(fees: FeeSchedule) -> tuple[pl.Expr, pl.Expr]:
    """The schedule's basis points and fixed part per method; an unknown method costs nothing."""
    bp: pl.Expr = pl.lit(0, pl.Int64)
    fixed: pl.Expr = pl.lit(0, pl.Int64)
    for method, rate in fees.rates:
        is_it = pl.col("method") == method
        bp = pl.when(is_it).then(pl.lit(rate.percent_bp, pl.Int64)).otherwise(bp)
        fixed = pl.when(is_it).then(pl.lit(rate.fixed_minor, pl.Int64)).otherwise(fixed)
    return bp, fixed


def _objects(frame: pl.DataFrame, kind: Any, schema: dict[str, Any]) -> list[Any]:
    return [kind(*row) for row in frame.select(list(schema)).iter_rows()]


def _lines(frame: pl.DataFrame) -> list[BankLine]:
    names = list(LINE_SCHEMA)
    out = []
    for row in frame.select(names).iter_rows():
        kw = dict(zip(names, row, strict=True))
        kw["entry_ref"] = kw["entry_ref"] or ""
        kw["remittance"] = kw["remittance"] or ""
        kw["entry_tx_count"] = 1 if kw["entry_tx_count"] is None else kw["entry_tx_count"]
        kw["kind"] = kw["kind"] or None
        out.append(BankLine(**kw))
    return out


def _pair_days(pairs: pl.DataFrame) -> dict[tuple[date, str], list[int]]:
    """The pairs' share of the calendar: a pair's payment counts, its line does not."""
    sums = pairs.group_by("paid_on", "currency").agg(
        pl.col("expected_minor").sum(),
        pl.col("settled_minor").sum(),
        pl.col("fee_expected_minor").sum(),
        pl.col("fee_charged_minor").fill_null(0).sum(),
        exceptions=(pl.col("outcome") != Outcome.MATCHED.value).sum(),
    )
    return {(d, c): [*rest, 0] for d, c, *rest in sums.iter_rows()}


def _merge_days(
    days: tuple[DaySummary, ...], extra: dict[tuple[date, str], list[int]]
) -> tuple[DaySummary, ...]:
    acc = {
        (s.day, s.currency): [
            s.expected_minor,
            s.settled_minor,
            s.fees_expected_minor,
            s.fees_charged_minor,
            s.exceptions,
            s.pending,
        ]
        for s in days
    }
    for key, values in extra.items():
        old = acc.setdefault(key, [0] * 6)
        acc[key] = [a + b for a, b in zip(old, values, strict=True)]
    return tuple(DaySummary(d, c, *v) for (d, c), v in sorted(acc.items()))
