"""The matching engine: bank lines against Kassa's payments and refunds, in the issue's order.

1. Manual decisions (links, accepted differences, write-offs) are applied first and win.
2. Exact reference: the end-to-end id, the servicer reference or a word of the remittance text
   equals a payment's reference label, terminal trace or receipt number, or a refund's id.
   Several credit lines for one payment are a split settlement (one-to-many) when they add up to
   the amount, and ``settled_twice`` when two or more each carry the full amount.
3. Amount + currency within ±``window_days``: only a unique candidate on both sides is taken.
   Equal candidates are paired in id order only when provably interchangeable (same amount,
   currency, day, method on one side; same day, fee, kind on the other).
4. Batches without details: one line of ``entry_tx_count`` transactions is matched to the still
   open payments and refunds of one day (and method, if that is what fits) whose count and net
   after fees and refunds equal the entry's; two fitting days are ambiguity, not a guess.
5. What is left is ``settled_unknown`` (lines), ``paid_not_settled`` / ``refund_not_settled``
   once older than ``unsettled_after_days``, else ``awaiting_settlement``.

Refunds netted into a payment's settlement (the bank paid amount − refunds) close those refunds.
Every id is judged in id order and every group is sorted, so input order never changes a result.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from datetime import date
from itertools import chain, islice, pairwise
from operator import attrgetter, eq
from typing import Literal, TypeVar

from gateway.domain.reconciliation.by_reference import ByReference
from gateway.domain.reconciliation.fallback import by_amount, by_batch
from gateway.domain.reconciliation.model import (
    SETTLEABLE,
    SETTLED_OUTCOMES,
    BankLine,
    DaySummary,
    FeeSchedule,
    KassaPayment,
    KassaRefund,
    ManualDecision,
    Outcome,
    Reconciliation,
    Result,
    money,
)

Subject = KassaPayment | KassaRefund
_BY_ID = attrgetter("id")
_BY_LINE = attrgetter("line_id")
_M = Outcome
_T = TypeVar("_T")
_Kind = Literal["payment", "refund"]


def reconcile(
    payments: Iterable[KassaPayment],
    refunds: Iterable[KassaRefund],
    lines: Iterable[BankLine],
    *,
    fees: FeeSchedule,
    as_of: date,
    window_days: int = 3,
    unsettled_after_days: int = 2,
    decisions: Sequence[ManualDecision] = (),
) -> Reconciliation:
    """Judge every settleable payment, every refund and every bank line exactly once.

    Payments whose status took no money (``created``, ``failed`` …) are not expected to settle
    and get no result; a line naming one is ``settled_unknown``.
    """
    # A busy day makes millions of result tuples and no reference cycles: without this, the
    # cyclic collector rescans the growing heap again and again (super-linear time).
    collecting = gc.isenabled()
    gc.disable()
    try:
        run = MatchRun(fees, as_of, window_days, unsettled_after_days)
        settleable = (p for p in payments if p.status in SETTLEABLE)
        pays = _unique(sorted(settleable, key=_BY_ID), "payment")
        refs = _unique(sorted(refunds, key=_BY_ID), "refund")
        bank = _unique(sorted(lines, key=_BY_LINE), "line")
        unused = run.apply_decisions(decisions, pays, refs, bank)
        run.match(pays, refs, bank)
        return Reconciliation(run.collect(pays, refs, bank), run.summaries(), unused)
    finally:
        if collecting:
            gc.enable()


def _unique(items: list[_T], what: str) -> list[_T]:
    """``items`` (sorted by id) unchanged, or a ValueError naming the first id seen twice."""
    ids = list(map(_BY_LINE if what == "line" else _BY_ID, items))
    if any(map(eq, ids, islice(ids, 1, None))):
        twice = next(a for a, b in pairwise(ids) if a == b)
        raise ValueError(f"{what} id {twice!r} appears twice: ids must be unique")
    return items


class MatchRun:
    """The state of one reconciliation: who is judged, and the running day sums."""

    def __init__(self, fees: FeeSchedule, as_of: date, window: int, after: int) -> None:
        self.rates = {m: (r.percent_bp, r.fixed_minor) for m, r in fees.rates}
        self.as_of, self.window, self.after = as_of, window, after
        self.done: dict[str, Result] = {}  # payment and refund results
        self.line_done: dict[str, Result] = {}
        self.counted_lines: list[Result] = []  # unlinked lines and chargebacks
        self.uncounted: set[str] = set()  # refunds netted into their payment's line
        self.method_of: dict[str, str] = {}  # refund id → method of its payment
        # Stage 2's common verdicts, by position beside the payments and lines (else None).
        self.pay_results: list[Result | None] = []
        self.line_results: list[Result | None] = []

    # ---- bookkeeping -------------------------------------------------------------------------

    def fee(self, method: str, amount: int) -> int:
        bp, fixed = self.rates.get(method, (0, 0))
        return (amount * bp + 5_000) // 10_000 + fixed

    def emit(self, r: Result, *, counted: bool = True) -> None:
        """Record a result; ``counted`` ones feed the day calendar (lines only when unlinked)."""
        if r.subject == "line":
            self.line_done[r.id] = r
            if counted:
                self.counted_lines.append(r)
        else:
            self.done[r.id] = r
            if not counted:
                self.uncounted.add(r.id)

    def line_result(
        self,
        line: BankLine,
        outcome: Outcome,
        linked: tuple[str, ...],
        expected: int | None,
        fee_exp: int | None,
        note: str = "",
    ) -> None:
        self.emit(
            Result(
                "line",
                line.line_id,
                outcome,
                line.booking_date,
                line.currency,
                expected,
                line.amount_minor,
                fee_exp,
                line.fee_charged_minor,
                linked,
                note,
            ),
            counted=False,
        )

    def expected(self, s: Subject) -> tuple[int, int, date, str]:
        """Signed gross, expected fee, day and method of a payment or refund."""
        if isinstance(s, KassaPayment):
            return s.amount_minor, self.fee(s.method, s.amount_minor), s.paid_on, s.method
        return -s.amount_minor, 0, s.succeeded_on, self.method_of.get(s.id, "")

    # ---- judging -----------------------------------------------------------------------------

    def judge(
        self,
        s: Subject,
        lines: list[BankLine],
        note: str = "",
        *,
        accept: bool = False,
        netted: int = 0,
    ) -> None:
        """The verdict on ``s`` settled by ``lines`` (sorted), and on each of those lines."""
        gross, fee_exp, day, _ = self.expected(s)
        gross -= netted
        kind: _Kind = "payment" if isinstance(s, KassaPayment) else "refund"
        if len(lines) == 1:
            line = lines[0]
            charged = line.fee_charged_minor
            outcome = _compare(
                s.currency, gross, fee_exp, line.currency, line.amount_minor, charged
            )
            if outcome is _M.CURRENCY_MISMATCH:
                note = _join(f"bank booked {money(line.amount_minor, line.currency)}", note)
            if accept and outcome is not _M.CURRENCY_MISMATCH:
                outcome = _M.MATCHED
            self.emit(
                Result(
                    kind,
                    s.id,
                    outcome,
                    day,
                    s.currency,
                    gross,
                    line.amount_minor,
                    fee_exp,
                    charged,
                    (line.line_id,),
                    note,
                )
            )
            self.line_result(line, outcome, (s.id,), gross, fee_exp, note)
            return
        self.judge_many(s, kind, lines, note, accept, gross, fee_exp, day)

    def judge_many(
        self,
        s: Subject,
        kind: _Kind,
        lines: list[BankLine],
        note: str,
        accept: bool,
        gross: int,
        fee_exp: int,
        day: date,
    ) -> None:
        """Several lines for one subject: a split settlement, a double one, or a mismatch."""
        total = sum(ln.amount_minor for ln in lines)
        charges = [ln.fee_charged_minor for ln in lines]
        charged = None if None in charges else sum(c or 0 for c in charges)
        ids = tuple(ln.line_id for ln in lines)
        same_cur = all(ln.currency == s.currency for ln in lines)
        full = [ln for ln in lines if ln.currency == s.currency and ln.amount_minor == gross]
        if same_cur and (total == gross or accept):
            outcome = _compare(s.currency, gross, fee_exp, s.currency, total, charged)
            outcome = _M.MATCHED if accept else outcome
            note = _join(f"settled in {len(lines)} parts", note)
            line_outcomes = dict.fromkeys(ids, outcome)
        elif len(full) >= 2:
            outcome = _M.SETTLED_TWICE
            first = full[0]
            first_out = _compare(
                s.currency,
                gross,
                fee_exp,
                first.currency,
                first.amount_minor,
                first.fee_charged_minor,
            )
            line_outcomes = dict.fromkeys(ids, _M.SETTLED_TWICE)
            line_outcomes[first.line_id] = first_out
        else:
            outcome = _M.AMOUNT_MISMATCH if same_cur else _M.CURRENCY_MISMATCH
            note = _join(f"{len(lines)} bank lines", note)
            line_outcomes = dict.fromkeys(ids, outcome)
        self.emit(
            Result(kind, s.id, outcome, day, s.currency, gross, total, fee_exp, charged, ids, note)
        )
        for ln in lines:
            self.line_result(ln, line_outcomes[ln.line_id], (s.id,), gross, fee_exp, note)

    def unsettled(self, s: Subject, note: str = "") -> None:
        gross, fee_exp, day, _ = self.expected(s)
        late = (self.as_of - day).days > self.after
        kind: _Kind = "payment" if isinstance(s, KassaPayment) else "refund"
        missing = _M.PAID_NOT_SETTLED if kind == "payment" else _M.REFUND_NOT_SETTLED
        outcome = missing if late else _M.AWAITING_SETTLEMENT
        when = f"settlement is due {self.after} days after {day}"
        self.emit(
            Result(
                kind, s.id, outcome, day, s.currency, gross, 0, fee_exp, 0, (), _join(when, note)
            )
        )

    def unknown(self, line: BankLine, note: str = "") -> None:
        self.emit(
            Result(
                "line",
                line.line_id,
                _M.SETTLED_UNKNOWN,
                line.booking_date,
                line.currency,
                None,
                line.amount_minor,
                None,
                line.fee_charged_minor,
                (),
                note,
            )
        )

    # ---- stage 1: manual decisions -----------------------------------------------------------

    def apply_decisions(
        self,
        decisions: Sequence[ManualDecision],
        pays: list[KassaPayment],
        refs: list[KassaRefund],
        bank: list[BankLine],
    ) -> tuple[ManualDecision, ...]:
        """Apply each decision whose ids all exist and are still open; return the others."""
        if not decisions:
            return ()
        subjects: dict[str, Subject] = {p.id: p for p in pays}
        subjects.update((r.id, r) for r in refs)
        by_line = {ln.line_id: ln for ln in bank}
        self.note_methods(refs, pays)
        unused = []
        order = sorted(
            decisions,
            key=lambda d: (d.at is None, d.at or 0, d.subject_id or "", d.line_ids, d.action),
        )
        for d in order:
            s = subjects.get(d.subject_id or "")
            ls = [by_line.get(i) for i in sorted(set(d.line_ids))]
            open_s = s is not None and s.id not in self.done
            lines_ok = all(ln is not None and ln.line_id not in self.line_done for ln in ls)
            if not lines_ok or (d.subject_id is not None and not open_s) or (s is None and not ls):
                unused.append(d)
                continue
            self.decide(d, s, [ln for ln in ls if ln is not None])
        return tuple(unused)

    def decide(self, d: ManualDecision, s: Subject | None, ls: list[BankLine]) -> None:
        note = d.describe()
        if d.action == "write_off":
            if s is not None:
                gross, fee_exp, day, _ = self.expected(s)
                kind: _Kind = "payment" if isinstance(s, KassaPayment) else "refund"
                self.emit(
                    Result(
                        kind,
                        s.id,
                        _M.WRITTEN_OFF,
                        day,
                        s.currency,
                        gross,
                        sum(ln.amount_minor for ln in ls),
                        fee_exp,
                        None,
                        tuple(ln.line_id for ln in ls),
                        note,
                    )
                )
            for ln in ls:
                linked = (s.id,) if s is not None else ()
                self.emit(
                    Result(
                        "line",
                        ln.line_id,
                        _M.WRITTEN_OFF,
                        ln.booking_date,
                        ln.currency,
                        None,
                        ln.amount_minor,
                        None,
                        ln.fee_charged_minor,
                        linked,
                        note,
                    ),
                    counted=s is None,
                )
        elif s is not None and ls:
            self.judge(s, ls, note, accept=d.action == "accept_difference")

    # ---- stages 2 to 5 -----------------------------------------------------------------------

    def note_methods(self, refs: list[KassaRefund], pays: list[KassaPayment]) -> None:
        if refs and not self.method_of:
            method = {p.id: p.method for p in pays}
            self.method_of = {r.id: method.get(r.payment_id, "") for r in refs}

    def match(
        self, pays: list[KassaPayment], refs: list[KassaRefund], bank: list[BankLine]
    ) -> None:
        self.note_methods(refs, pays)
        done, line_done = self.done, self.line_done
        open_bank = bank
        if done or line_done:
            refs = [r for r in refs if r.id not in done]
            open_bank = [ln for ln in bank if ln.line_id not in line_done]
        stage = ByReference(self, pays, refs)
        left_lines, open_pays = stage.settle(bank, pays)
        self.pay_results, self.line_results = stage.pay_results, stage.line_results
        open_refs = [r for r in refs if r.id not in done]
        singles = [ln for ln in left_lines if ln.entry_tx_count <= 1]
        batches = [ln for ln in left_lines if ln.entry_tx_count > 1]
        open_s: list[Subject] = [*open_pays, *open_refs]
        notes = by_amount(self, open_s, singles)
        open_s = [s for s in open_s if s.id not in done]
        by_batch(
            self, open_s, [ln for ln in batches if ln.line_id not in line_done], open_bank, notes
        )
        for s in open_s:
            if s.id not in done:
                self.unsettled(s, notes.get(s.id, ""))
        for ln in left_lines:
            if ln.line_id not in line_done:
                self.unknown(ln, notes.get(ln.line_id, ""))

    def collect(
        self, pays: list[KassaPayment], refs: list[KassaRefund], bank: list[BankLine]
    ) -> tuple[Result, ...]:
        result, line_result = self.done.__getitem__, self.line_done.__getitem__
        fast_pays, fast_lines = self.pay_results, self.line_results
        return (
            *(
                [r or result(p.id) for r, p in zip(fast_pays, pays, strict=True)]
                if fast_pays
                else map(result, map(_BY_ID, pays))
            ),
            *map(result, map(_BY_ID, refs)),
            *(
                [r or line_result(ln.line_id) for r, ln in zip(fast_lines, bank, strict=True)]
                if fast_lines
                else map(line_result, map(_BY_LINE, bank))
            ),
        )

    def summaries(self) -> tuple[DaySummary, ...]:
        """The settlement calendar: sums and exception counts per day and currency."""
        days: dict[tuple[date, str], list[int]] = {}
        uncounted, pending = self.uncounted, _M.AWAITING_SETTLEMENT
        settled = tuple(SETTLED_OUTCOMES)  # a tuple compares by identity first: no enum hashing
        for subject, rid, outcome, day, cur, expected, paid, fee_exp, fee_paid, _, _ in chain(
            self.done.values(), filter(None, self.pay_results), self.counted_lines
        ):
            if uncounted and rid in uncounted and subject != "line":
                continue
            acc = days.get((day, cur))
            if acc is None:
                acc = days[(day, cur)] = [0, 0, 0, 0, 0, 0]
            if expected:
                acc[0] += expected
            if paid:
                acc[1] += paid
            if fee_exp:
                acc[2] += fee_exp
            if fee_paid:
                acc[3] += fee_paid
            if outcome in settled:
                continue
            if outcome is pending:
                acc[5] += 1
            else:
                acc[4] += 1
        return tuple(DaySummary(day, cur, *acc) for (day, cur), acc in sorted(days.items()))


def _compare(
    cur: str, gross: int, fee_exp: int, line_cur: str, amount: int, charged: int | None
) -> Outcome:
    if line_cur != cur:
        return _M.CURRENCY_MISMATCH
    if amount != gross:
        return _M.AMOUNT_MISMATCH
    if charged is not None and charged != fee_exp:
        return _M.MATCHED_FEE_DIFFERENCE
    return _M.MATCHED


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)
