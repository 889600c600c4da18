"""Stage 2 of matching: lines that name a payment or refund by one of its references.

A reference is the EMV 62-05 label, a terminal trace or receipt number (payments) or the
refund id (refunds, which travel as the bank's end-to-end id); it is looked up in the
end-to-end id, then the servicer reference, then each word of the remittance text. A key
shared by two payments is never matched on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from operator import attrgetter
from typing import TYPE_CHECKING

from gateway.domain.reconciliation.model import (
    BankLine,
    KassaPayment,
    KassaRefund,
    Outcome,
    Result,
    money,
)

if TYPE_CHECKING:
    from gateway.domain.reconciliation.matching import MatchRun

_AMBIGUOUS = object()
_BY_LINE = attrgetter("line_id")
_BY_DAY_LINE = attrgetter("booking_date", "line_id")
_M = Outcome
_NO_FEE = (0, 0)
_new_tuple: Callable[[type[Result], tuple[object, ...]], Result] = tuple.__new__  # type: ignore[assignment]


class ByReference:
    """Stage 2: lines that name a payment or refund by one of its references.

    Payments are known by their index in ``pays`` (all settleable payments, in id order), so
    that the common verdicts can be kept in lists beside ``pays`` and the bank lines
    (``pay_results``, ``line_results``) rather than in dicts keyed by id.
    """

    def __init__(self, run: MatchRun, pays: list[KassaPayment], refs: list[KassaRefund]) -> None:
        self.run = run
        decided = run.done
        keys: dict[str, object] = {}  # reference → index in pays, a refund, or _AMBIGUOUS
        put = keys.setdefault
        for i, p in enumerate(pays):
            if decided and p.id in decided:
                continue
            if p.reference and put(p.reference, i) != i:
                keys[p.reference] = _AMBIGUOUS
            if p.terminal_trace or p.receipt_no:
                for key in (p.terminal_trace, p.receipt_no):
                    if key and put(key, i) != i:
                        keys[key] = _AMBIGUOUS
        for r in refs:
            keys[r.id] = _AMBIGUOUS if r.id in keys else r
        self.keys = keys
        self.refund_by_id = {r.id: r for r in refs}
        self.refunds_of: dict[str, list[KassaRefund]] = defaultdict(list)
        for r in refs:
            self.refunds_of[r.payment_id].append(r)
        self.pay_results: list[Result | None] = []
        self.line_results: list[Result | None] = []

    def target(self, line: BankLine) -> object:
        """What the line names: a payment's index, a refund, ``_AMBIGUOUS`` or None."""
        get = self.keys.get
        hit = get(line.end_to_end_id or "")
        if hit is None:
            hit = get(line.account_servicer_ref or "")
        if hit is None and line.remittance:
            hit = next((h for h in map(get, line.remittance.split()) if h is not None), None)
        return hit

    def settle(
        self, bank: list[BankLine], pays: list[KassaPayment]
    ) -> tuple[list[BankLine], list[KassaPayment]]:
        """Judge everything a reference ties together.

        ``bank`` is every line in id order (those a decision closed are passed over). Returns
        the lines no reference named and the payments no line named, both in id order.
        """
        slot = [-1] * len(pays)  # payment index → index in bank of its first credit line
        more: dict[int, list[BankLine]] = {}
        for_refund: dict[str, list[BankLine]] = defaultdict(list)
        chargebacks: list[tuple[BankLine, KassaPayment]] = []
        left: list[BankLine] = []
        decided, keys_get, target = self.run.line_done, self.keys.get, self.target
        for j, line in enumerate(bank):
            if decided and line.line_id in decided:
                continue
            s = keys_get(line.end_to_end_id or "")
            if s is None:
                s = target(line)
            if type(s) is int:
                kind = line.kind or ("payment" if line.amount_minor >= 0 else "chargeback")
                if kind == "payment":
                    if slot[s] < 0:
                        slot[s] = j
                    else:
                        more.setdefault(s, []).append(line)
                elif kind == "refund" and (r := self.refund_for(pays[s], line, for_refund)):
                    for_refund[r.id].append(line)
                elif kind == "chargeback":
                    chargebacks.append((line, pays[s]))
                else:
                    left.append(line)
            elif s is None or s is _AMBIGUOUS:
                left.append(line)
            elif isinstance(s, KassaRefund):
                for_refund[s.id].append(line)
        self.judge_refunds(for_refund)
        open_pays = self.judge_payments(pays, bank, slot, more)
        for line, p in chargebacks:
            self.chargeback(line, p)
        return left, open_pays

    def refund_for(
        self, p: KassaPayment, line: BankLine, taken: dict[str, list[BankLine]]
    ) -> KassaRefund | None:
        """The one open refund of ``p`` for this debit's amount, if exactly one fits."""
        fits = [
            r
            for r in self.refunds_of.get(p.id, ())
            if r.amount_minor == -line.amount_minor and r.id not in taken
        ]
        return fits[0] if len(fits) == 1 else None

    def judge_refunds(self, for_refund: dict[str, list[BankLine]]) -> None:
        for rid in sorted(for_refund):
            self.run.judge(self.refund_by_id[rid], sorted(for_refund[rid], key=_BY_LINE))

    def judge_payments(
        self,
        pays: list[KassaPayment],
        bank: list[BankLine],
        slot: list[int],
        more: dict[int, list[BankLine]],
    ) -> list[KassaPayment]:
        """Judge each payment (in id order) against its credit lines; return those still open.

        The common case (one line, same currency, no refunds) is inlined: it runs once per
        payment of the day, a million times on a busy one. Its results go to ``pay_results``
        and ``line_results`` (by position), built with ``tuple.__new__``, which skips the named
        tuple's Python-level constructor; every other verdict goes through ``MatchRun.emit``.
        """
        run = self.run
        judge, rates, done = run.judge, run.rates, run.done
        matched, fee_diff, amount_diff = _M.MATCHED, _M.MATCHED_FEE_DIFFERENCE, _M.AMOUNT_MISMATCH
        pay_results: list[Result | None] = [None] * len(pays)
        line_results: list[Result | None] = [None] * len(bank)
        open_pays: list[KassaPayment] = []
        new, result, by_day = _new_tuple, Result, _BY_DAY_LINE
        for i, (p, j) in enumerate(zip(pays, slot, strict=True)):
            if j < 0:
                if not (done and p.id in done):
                    open_pays.append(p)
                continue
            line = bank[j]
            if i in more:
                judge(p, sorted([line, *more[i]], key=by_day))
                continue
            amount = p.amount_minor
            if p.refunded_minor or line.currency != p.currency:
                netted, note = self.net_refunds(p, line) if p.refunded_minor else (0, "")
                judge(p, [line], note, netted=netted)
                continue
            bp, fixed = rates.get(p.method, _NO_FEE)
            fee_exp = (amount * bp + 5_000) // 10_000 + fixed
            charged = line.fee_minor
            if charged is None:
                charged = line.fee_charged_minor
            if line.amount_minor != amount:
                outcome = amount_diff
            elif charged is not None and charged != fee_exp:
                outcome = fee_diff
            else:
                outcome = matched
            pid, lid, settled, cur = p.id, line.line_id, line.amount_minor, p.currency
            pay_results[i] = new(
                result,
                (
                    "payment",
                    pid,
                    outcome,
                    p.paid_on,
                    cur,
                    amount,
                    settled,
                    fee_exp,
                    charged,
                    (lid,),
                    "",
                ),
            )
            line_results[j] = new(
                result,
                (
                    "line",
                    lid,
                    outcome,
                    line.booking_date,
                    cur,
                    amount,
                    settled,
                    fee_exp,
                    charged,
                    (pid,),
                    "",
                ),
            )
        self.pay_results, self.line_results = pay_results, line_results
        return open_pays

    def net_refunds(self, p: KassaPayment, line: BankLine) -> tuple[int, str]:
        """Close the open refunds of ``p`` when the bank paid the amount net of exactly them."""
        open_refunds = [r for r in self.refunds_of.get(p.id, ()) if r.id not in self.run.done]
        total = sum(r.amount_minor for r in open_refunds)
        if not open_refunds or p.amount_minor - total != line.amount_minor:
            return 0, ""
        for r in open_refunds:
            gross, _, day, _ = self.run.expected(r)
            self.run.emit(
                Result(
                    "refund",
                    r.id,
                    _M.MATCHED,
                    day,
                    r.currency,
                    gross,
                    gross,
                    0,
                    0,
                    (line.line_id,),
                    f"netted in the settlement of payment {p.id}",
                ),
                counted=False,
            )
        ids = ", ".join(r.id for r in open_refunds)
        return total, f"net of refunds {ids} ({money(total, p.currency)})"

    def chargeback(self, line: BankLine, p: KassaPayment) -> None:
        """A chargeback debit on a known payment: netted into the day (expected and settled)."""
        ok = line.currency == p.currency and -line.amount_minor <= p.amount_minor
        outcome = (
            _M.MATCHED
            if ok
            else (_M.AMOUNT_MISMATCH if line.currency == p.currency else _M.CURRENCY_MISMATCH)
        )
        note = f"chargeback of {money(-line.amount_minor, line.currency)} on payment {p.id}"
        self.run.emit(
            Result(
                "line",
                line.line_id,
                outcome,
                p.paid_on,
                line.currency,
                line.amount_minor,
                line.amount_minor,
                0,
                line.fee_charged_minor,
                (p.id,),
                note,
            )
        )
