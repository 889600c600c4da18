"""Stage 2 of matching: lines that name a payment or refund by one of its references.

A reference is the EMV 62-05 label, a terminal trace or receipt number (payments) or the
refund id (refunds, which travel as the bank's end-to-end id); it is looked up in the
end-to-end id, then the servicer reference, then each word of the remittance text. A key
shared by two payments is never matched on.
"""

from __future__ import annotations

from collections import defaultdict
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
    from gateway.domain.reconciliation.matching import _Run

_AMBIGUOUS = object()
_BY_LINE = attrgetter("line_id")
_M = Outcome
_NO_FEE = (0, 0)


class ByReference:
    """Stage 2: lines that name a payment or refund by one of its references."""

    def __init__(self, run: _Run, pays: list[KassaPayment], refs: list[KassaRefund]) -> None:
        self.run = run
        keys: dict[str, object] = {}
        for p in pays:
            for key in (p.reference, p.terminal_trace, p.receipt_no):
                if key:
                    keys[key] = _AMBIGUOUS if keys.get(key, p) is not p else p
        for r in refs:
            keys[r.id] = _AMBIGUOUS if r.id in keys else r
        self.keys = keys
        self.refund_by_id = {r.id: r for r in refs}
        self.refunds_of: dict[str, list[KassaRefund]] = defaultdict(list)
        for r in refs:
            self.refunds_of[r.payment_id].append(r)

    def target(self, line: BankLine) -> object:
        keys = self.keys
        hit = keys.get(line.end_to_end_id or "") or keys.get(line.account_servicer_ref or "")
        if hit is None and line.remittance:
            hit = next(filter(None, map(keys.get, line.remittance.split())), None)
        return hit

    def settle(self, bank: list[BankLine], pays: list[KassaPayment]) -> list[BankLine]:
        """Judge everything a reference ties together; return the lines no reference named."""
        first: dict[str, BankLine] = {}
        more: dict[str, list[BankLine]] = {}
        for_refund: dict[str, list[BankLine]] = defaultdict(list)
        chargebacks: list[tuple[BankLine, KassaPayment]] = []
        left: list[BankLine] = []
        for line in bank:
            s = self.target(line)
            if s is None or s is _AMBIGUOUS:
                left.append(line)
            elif isinstance(s, KassaRefund):
                for_refund[s.id].append(line)
            elif isinstance(s, KassaPayment):
                kind = line.kind or ("payment" if line.amount_minor >= 0 else "chargeback")
                if kind == "payment":
                    if s.id in first:
                        more.setdefault(s.id, []).append(line)
                    else:
                        first[s.id] = line
                elif kind == "refund" and (r := self.refund_for(s, line, for_refund)):
                    for_refund[r.id].append(line)
                elif kind == "chargeback":
                    chargebacks.append((line, s))
                else:
                    left.append(line)
        self.judge_refunds(for_refund)
        self.judge_payments(pays, first, more)
        for line, p in chargebacks:
            self.chargeback(line, p)
        return left

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
        self, pays: list[KassaPayment], first: dict[str, BankLine], more: dict[str, list[BankLine]]
    ) -> None:
        """Judge each payment (in id order) against its credit lines.

        The common case (one line, same currency, no refunds) is inlined: it runs once per
        payment of the day, a million times on a busy one.
        """
        run = self.run
        judge, rates, done, line_done = run.judge, run.rates, run.done, run.line_done
        matched, fee_diff, amount_diff = _M.MATCHED, _M.MATCHED_FEE_DIFFERENCE, _M.AMOUNT_MISMATCH
        for p in pays:
            pid = p.id
            line = first.get(pid)
            if line is None or pid in done:
                continue
            if pid in more:
                ls = sorted([line, *more[pid]], key=lambda ln: (ln.booking_date, ln.line_id))
                judge(p, ls)
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
            lid = line.line_id
            done[pid] = Result(
                "payment",
                pid,
                outcome,
                p.paid_on,
                p.currency,
                amount,
                line.amount_minor,
                fee_exp,
                charged,
                (lid,),
            )
            line_done[lid] = Result(
                "line",
                lid,
                outcome,
                line.booking_date,
                line.currency,
                amount,
                line.amount_minor,
                fee_exp,
                charged,
                (pid,),
            )

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
