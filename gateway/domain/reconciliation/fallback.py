"""Stages 3 and 4 of matching, for what no reference tied: amount + date window, then batches.

Neither stage guesses. An amount match needs a unique candidate on both sides, or candidates
that are provably interchangeable; a batch needs exactly one set of open payments and refunds
(one day, optionally one method) whose count and net equal the entry's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import date, timedelta
from operator import attrgetter
from typing import TYPE_CHECKING, Literal

from gateway.domain.money import allocate_minor
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

Subject = KassaPayment | KassaRefund
_BY_LINE = attrgetter("line_id")


def by_amount(
    run: MatchRun, subjects: Sequence[Subject], lines: Sequence[BankLine]
) -> dict[str, str]:
    """Pair open subjects and lines of equal currency and gross within the window.

    Returns notes for what was left because it was ambiguous (id → words).
    """
    notes: dict[str, str] = {}
    by_key: dict[tuple[str, int], list[tuple[Subject, date, tuple[object, ...]]]] = defaultdict(
        list
    )
    for s in subjects:
        gross, _, day, method = run.expected(s)
        refunded = s.refunded_minor if isinstance(s, KassaPayment) else 0
        by_key[(s.currency, gross)].append((s, day, (day, method, refunded)))
    lines_by_key: dict[tuple[str, int], list[BankLine]] = defaultdict(list)
    for ln in lines:
        if (ln.currency, ln.amount_minor) in by_key:
            lines_by_key[(ln.currency, ln.amount_minor)].append(ln)
    for key in sorted(lines_by_key):
        ls = sorted(lines_by_key[key], key=_BY_LINE)
        for subs, group in _components(by_key[key], ls, run.window):
            _settle_component(run, subs, group, notes)
    return notes


def _components(
    subs: list[tuple[Subject, date, tuple[object, ...]]], lines: list[BankLine], window: int
) -> list[tuple[list[tuple[Subject, date, tuple[object, ...]]], list[BankLine]]]:
    """Connected groups of subjects and lines whose dates lie within the window of each other."""
    edges = [
        [j for j, ln in enumerate(lines) if abs((ln.booking_date - day).days) <= window]
        for _, day, _ in subs
    ]
    seen_s: set[int] = set()
    out = []
    for start in range(len(subs)):
        if start in seen_s or not edges[start]:
            continue
        todo, comp_s, comp_l = [start], {start}, set[int]()
        while todo:
            i = todo.pop()
            for j in edges[i]:
                if j not in comp_l:
                    comp_l.add(j)
                    for k in range(len(subs)):
                        if j in edges[k] and k not in comp_s:
                            comp_s.add(k)
                            todo.append(k)
        seen_s |= comp_s
        out.append(([subs[i] for i in sorted(comp_s)], [lines[j] for j in sorted(comp_l)]))
    return out


def _settle_component(
    run: MatchRun,
    subs: list[tuple[Subject, date, tuple[object, ...]]],
    lines: list[BankLine],
    notes: dict[str, str],
) -> None:
    """Pair one group if it is unambiguous; otherwise say why for each member."""
    same_subs = len({eq for _, _, eq in subs}) == 1
    same_lines = len({_line_kind(ln) for ln in lines}) == 1
    spread = {ln.booking_date for ln in lines} | {day for _, day, _ in subs}
    complete = max(spread) - min(spread) <= timedelta(days=run.window)
    if len(subs) == len(lines) and (len(subs) == 1 or (same_subs and same_lines and complete)):
        note = "" if len(subs) == 1 else f"paired in id order with {len(subs) - 1} equal others"
        for (s, _, _), ln in zip(subs, lines, strict=True):
            run.judge(s, [ln], _join("matched on amount and date", note))
        return
    amount = money(lines[0].amount_minor, lines[0].currency)
    sub_ids = ", ".join(s.id for s, _, _ in subs)
    line_ids = ", ".join(ln.line_id for ln in lines)
    for s, _, _ in subs:
        notes[s.id] = f"ambiguous: bank lines {line_ids} all fit {amount} ±{run.window} days"
    for ln in lines:
        notes[ln.line_id] = f"ambiguous: {sub_ids} all fit {amount} ±{run.window} days"


def _line_kind(ln: BankLine) -> tuple[object, ...]:
    return (ln.booking_date, ln.value_date, ln.fee_charged_minor, ln.kind)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


def by_batch(
    run: MatchRun,
    subjects: Sequence[Subject],
    batches: Sequence[BankLine],
    all_lines: Sequence[BankLine],
    notes: dict[str, str],
) -> None:
    """Match each whole-entry batch line to the one open day-group that fits it."""
    if not batches:
        return
    per_entry = Counter(ln.entry_ref for ln in all_lines if ln.entry_tx_count > 1)
    groups: dict[tuple[str, date, str | None], list[Subject]] = defaultdict(list)
    for s in subjects:
        _, _, day, method = run.expected(s)
        groups[(s.currency, day, method)].append(s)
        groups[(s.currency, day, None)].append(s)
    index = {s.id: s for s in subjects}
    for ln in sorted(batches, key=_BY_LINE):
        if ln.entry_ref and per_entry[ln.entry_ref] > 1:
            continue  # a detail line without a reference: not a whole entry
        fits = _fitting_groups(run, ln, groups)
        if len(fits) == 1:
            _settle_batch(run, ln, [index[i] for i in next(iter(fits))], *fits.values())
        else:
            net = money(_net(ln), ln.currency)
            many = f"{len(fits)} day-groups" if fits else "no day-group of open payments"
            notes[ln.line_id] = (
                f"batch of {ln.entry_tx_count} transactions, net {net}: {many} within "
                f"{run.window} days before {ln.booking_date} fit"
            )


def _net(ln: BankLine) -> int:
    if ln.entry_amount_minor is not None:
        return ln.entry_amount_minor
    return ln.amount_minor - (ln.fee_minor or 0)


def _fitting_groups(
    run: MatchRun, ln: BankLine, groups: dict[tuple[str, date, str | None], list[Subject]]
) -> dict[tuple[str, ...], bool]:
    """Distinct open sets that fit the batch: ids → True if net equal, False if only gross."""
    fits: dict[tuple[str, ...], bool] = {}
    net, gross = _net(ln), ln.amount_minor if ln.fee_minor is not None else None
    for back in range(run.window + 1):
        day = ln.booking_date - timedelta(days=back)
        keys = sorted((k for k in groups if k[0] == ln.currency and k[1] == day), key=str)
        for key in keys:
            members = [s for s in groups[key] if s.id not in run.done]
            if len(members) != ln.entry_tx_count or len(members) != len(groups[key]):
                continue
            figures = [run.expected(s) for s in members]
            g_gross = sum(f[0] for f in figures)
            g_net = g_gross - sum(f[1] for f in figures)
            ids = tuple(s.id for s in members)
            if g_net == net or (gross is not None and g_gross == gross):
                fits[ids] = fits.get(ids, False) or g_net == net
    return fits


def _settle_batch(run: MatchRun, ln: BankLine, subs: list[Subject], exact: bool) -> None:
    """One batch line settles these subjects; fees are apportioned when they differ."""
    ids = tuple(s.id for s in subs)
    figures = [run.expected(s) for s in subs]
    fee_exp = sum(f[1] for f in figures)
    charged = fee_exp if exact else (ln.fee_minor or 0)
    weights = [f[1] for f in figures] if fee_exp else [1] * len(subs)
    shares = allocate_minor(charged, weights)
    outcome = Outcome.MATCHED if exact else Outcome.MATCHED_FEE_DIFFERENCE
    note = f"settled in batch {ln.entry_ref or ln.line_id} of {len(subs)} transactions"
    if not exact:
        note += ", its fees apportioned"
    for s, (gross, fee, day, _), share in zip(subs, figures, shares, strict=True):
        kind: Literal["payment", "refund"] = "payment" if isinstance(s, KassaPayment) else "refund"
        run.emit(
            Result(
                kind, s.id, outcome, day, s.currency, gross, gross, fee, share, (ln.line_id,), note
            )
        )
    expected = sum(f[0] for f in figures) - (fee_exp if ln.fee_minor is None else 0)
    run.line_result(ln, outcome, ids, expected, fee_exp, note)
