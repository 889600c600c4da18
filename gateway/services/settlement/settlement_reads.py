"""What the settlement pages read: day totals, the exception queue, one verdict's evidence.

Read-only queries on the stored verdicts (``ReconResult``) of the latest run of each day, always
scoped to one merchant. Day totals are summed in the database, so a month of busy days is a
handful of rows, not a million.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import Select, case, func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import (
    Merchant,
    Payment,
    ReconDecision,
    ReconResult,
    ReconRun,
    Refund,
    SettlementEntry,
    SettlementFile,
    SettlementFileWarning,
    SettlementStatement,
)
from gateway.domain.money import Money
from gateway.domain.reconciliation import DaySummary, Outcome
from gateway.errors import InvalidMoney, NotFound
from gateway.services.settlement.reconciliation import GOOD, PENDING, is_exception

SUBJECTS = ("payment", "refund", "line")
EXCEPTION_OUTCOMES = [o.value for o in Outcome if is_exception(o.value)]
CSV_COLUMNS = (
    "day",
    "subject",
    "subject_id",
    "outcome",
    "exception",
    "currency",
    "expected",
    "settled",
    "fee_expected",
    "fee_charged",
    "linked",
    "reason",
)


def outcome_tone(outcome: str) -> str:
    """The badge colour of an outcome: settled, pending, a fee question, or an exception."""
    if outcome in GOOD:
        return "paid"
    if outcome in PENDING:
        return "open"
    return "refunded" if outcome == Outcome.MATCHED_FEE_DIFFERENCE.value else "failed"


def day_summaries(
    uow: UnitOfWork, merchant_id: int, first: date, last: date
) -> dict[date, list[DaySummary]]:
    """Per day and currency: Kassa's expected gross and fees against the bank's lines.

    Expected sums come from payments and refunds (refunds are negative), settled sums and fees
    charged from the bank lines, so money matched on both sides is counted once.
    """
    kassa = ReconResult.subject != "line"
    line = ReconResult.subject == "line"
    rows = uow.session.execute(
        select(
            ReconResult.day,
            ReconResult.currency,
            ReconResult.outcome,
            func.sum(_when(kassa, ReconResult.expected_minor)),
            func.sum(_when(line, ReconResult.settled_minor)),
            func.sum(_when(kassa, ReconResult.fee_expected_minor)),
            func.sum(_when(line, ReconResult.fee_charged_minor)),
            func.count(),
        )
        .where(
            ReconResult.merchant_id == merchant_id,
            ReconResult.day >= first.isoformat(),
            ReconResult.day <= last.isoformat(),
        )
        .group_by(ReconResult.day, ReconResult.currency, ReconResult.outcome)
    ).all()
    sums: dict[tuple[str, str], list[int]] = {}
    for day, currency, outcome, expected, settled, fee_exp, fee_paid, count in rows:
        acc = sums.setdefault((day, currency), [0] * 6)
        for i, value in enumerate((expected, settled, fee_exp, fee_paid)):
            acc[i] += int(value or 0)
        if outcome in PENDING:
            acc[5] += int(count)
        elif is_exception(outcome):
            acc[4] += int(count)
    out: dict[date, list[DaySummary]] = {}
    for (day, currency), acc in sorted(sums.items()):
        when = date.fromisoformat(day)
        out.setdefault(when, []).append(DaySummary(when, currency, *acc))
    return out


def _when(condition: Any, column: Any) -> Any:
    return case((condition, column), else_=0)


def last_runs(uow: UnitOfWork, merchant_id: int, first: date, last: date) -> dict[str, ReconRun]:
    """The latest run of each day in the range, by day."""
    runs = uow.session.scalars(
        select(ReconRun)
        .where(
            ReconRun.merchant_id == merchant_id,
            ReconRun.day >= first.isoformat(),
            ReconRun.day <= last.isoformat(),
        )
        .order_by(ReconRun.id)
    )
    return {run.day: run for run in runs}


def day_results(uow: UnitOfWork, merchant_id: int, day: date) -> list[ReconResult]:
    order = {s: n for n, s in enumerate(SUBJECTS)}
    rows = uow.session.scalars(
        select(ReconResult).where(
            ReconResult.merchant_id == merchant_id, ReconResult.day == day.isoformat()
        )
    )
    return sorted(rows, key=lambda r: (order.get(r.subject, 9), _natural(r.subject_id)))


def _natural(text: str) -> tuple[int, str]:
    """Bank line ids are numbers: 2 before 10."""
    return (int(text), "") if text.isdigit() else (1 << 62, text)


@dataclass
class QueueFilter:
    outcome: str = ""
    date_from: date | None = None
    date_to: date | None = None
    currency: str = ""
    limit: int | None = 50
    offset: int = 0


def exceptions(
    uow: UnitOfWork, merchant_id: int, flt: QueueFilter
) -> tuple[list[ReconResult], int]:
    """Open exceptions, newest day first, and how many there are in all."""
    query: Select[Any] = select(ReconResult).where(
        ReconResult.merchant_id == merchant_id,
        ReconResult.outcome.in_([flt.outcome] if flt.outcome else EXCEPTION_OUTCOMES),
    )
    if flt.date_from:
        query = query.where(ReconResult.day >= flt.date_from.isoformat())
    if flt.date_to:
        query = query.where(ReconResult.day <= flt.date_to.isoformat())
    if flt.currency:
        query = query.where(ReconResult.currency == flt.currency)
    total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    ordered = query.order_by(
        ReconResult.day.desc(), ReconResult.subject, ReconResult.subject_id
    ).offset(flt.offset)
    if flt.limit is not None:
        ordered = ordered.limit(flt.limit)
    return list(uow.session.scalars(ordered)), int(total)


@dataclass
class Evidence:
    """Both sides of one verdict, and the decisions taken on it."""

    result: ReconResult
    payment: Payment | None = None
    refund: Refund | None = None
    entry: tuple[SettlementEntry, SettlementFile] | None = None
    refunds: list[Refund] = field(default_factory=list)
    lines: list[tuple[SettlementEntry, SettlementFile]] = field(default_factory=list)
    payments: list[Payment] = field(default_factory=list)
    linked_refunds: list[Refund] = field(default_factory=list)
    decisions: list[ReconDecision] = field(default_factory=list)

    @property
    def active_decisions(self) -> list[ReconDecision]:
        return [d for d in self.decisions if d.revoked_at is None]


def result_of(uow: UnitOfWork, merchant_id: int, subject: str, subject_id: str) -> ReconResult:
    result = uow.session.scalar(
        select(ReconResult).where(
            ReconResult.merchant_id == merchant_id,
            ReconResult.subject == subject,
            ReconResult.subject_id == subject_id,
        )
    )
    if result is None:
        raise NotFound(f"no reconciliation result for {subject} {subject_id}")
    return result


def evidence(uow: UnitOfWork, merchant_id: int, subject: str, subject_id: str) -> Evidence:
    result = result_of(uow, merchant_id, subject, subject_id)
    ev = Evidence(result)
    linked = [str(i) for i in result.linked or []]
    if subject == "line":
        ev.entry = next(iter(entries(uow, [subject_id])), None)
        ev.payments = payments_of(uow, merchant_id, linked)
        ev.linked_refunds = refunds_of(uow, merchant_id, linked)
    else:
        ev.lines = entries(uow, linked)
        if subject == "payment":
            ev.payment = next(iter(payments_of(uow, merchant_id, [subject_id])), None)
            ev.refunds = list(
                uow.session.scalars(
                    select(Refund).where(Refund.payment_id == subject_id).order_by(Refund.id)
                )
            )
        else:
            ev.refund = next(iter(refunds_of(uow, merchant_id, [subject_id])), None)
    ev.decisions = decisions_on(uow, merchant_id, subject, subject_id)
    return ev


def entries(uow: UnitOfWork, ids: Iterable[str]) -> list[tuple[SettlementEntry, SettlementFile]]:
    numbers = [int(i) for i in ids if i.isdigit()]
    if not numbers:
        return []
    rows = uow.session.execute(
        select(SettlementEntry, SettlementFile)
        .join(SettlementFile, SettlementFile.id == SettlementEntry.file_id)
        .where(SettlementEntry.id.in_(numbers))
        .order_by(SettlementEntry.id)
    )
    return [(entry, file) for entry, file in rows.all()]


def payments_of(uow: UnitOfWork, merchant_id: int, ids: list[str]) -> list[Payment]:
    if not ids:
        return []
    return list(
        uow.session.scalars(
            select(Payment).where(Payment.merchant_id == merchant_id, Payment.id.in_(ids))
        )
    )


def refunds_of(uow: UnitOfWork, merchant_id: int, ids: list[str]) -> list[Refund]:
    if not ids:
        return []
    return list(
        uow.session.scalars(
            select(Refund)
            .join(Payment, Payment.id == Refund.payment_id)
            .where(Payment.merchant_id == merchant_id, Refund.id.in_(ids))
        )
    )


def decisions_on(
    uow: UnitOfWork, merchant_id: int, subject: str, subject_id: str
) -> list[ReconDecision]:
    """Every decision naming this payment, refund or line, revoked ones included (audit)."""
    rows = uow.session.scalars(
        select(ReconDecision)
        .where(ReconDecision.merchant_id == merchant_id)
        .order_by(ReconDecision.id.desc())
    )
    if subject == "line":
        return [d for d in rows if subject_id in [str(i) for i in d.line_ids or []]]
    return [d for d in rows if d.subject_id == subject_id]


def to_csv(results: Iterable[ReconResult]) -> str:
    """Verdicts as CSV: amounts as plain decimal strings next to their currency."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in results:
        writer.writerow(
            [
                r.day,
                r.subject,
                _cell(r.subject_id),
                r.outcome,
                "yes" if is_exception(r.outcome) else "no",
                r.currency,
                decimal(r.expected_minor, r.currency),
                decimal(r.settled_minor, r.currency),
                decimal(r.fee_expected_minor, r.currency),
                decimal(r.fee_charged_minor, r.currency),
                _cell(" ".join(str(i) for i in r.linked or [])),
                _cell(r.reason),
            ]
        )
    return out.getvalue()


def decimal(minor: int | None, currency: str) -> str:
    if minor is None:
        return ""
    try:
        return Money(minor, currency).to_decimal_string()
    except InvalidMoney:
        return str(minor)


def _cell(text: str) -> str:
    """Text a spreadsheet would run as a formula gets a leading apostrophe (CSV injection)."""
    return f"'{text}" if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


# -- imported files: their statements and the flaws found in them ------------------------------


@dataclass(frozen=True)
class StatementView:
    """A statement of an imported file with the warnings raised on it."""

    statement: SettlementStatement
    file: SettlementFile
    warnings: list[SettlementFileWarning]


def _accounts(uow: UnitOfWork, merchant_id: int) -> list[str]:
    merchant = uow.session.get(Merchant, merchant_id)
    return [str(a) for a in (merchant.settlement_accounts or [])] if merchant else []


def statements(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    ids: Iterable[int] | None = None,
    file_id: int | None = None,
) -> list[StatementView]:
    """The merchant's statements (on its settlement accounts), by id or of one file."""
    query = (
        select(SettlementStatement, SettlementFile)
        .join(SettlementFile, SettlementFile.id == SettlementStatement.file_id)
        .where(SettlementStatement.account.in_(_accounts(uow, merchant_id)))
        .order_by(SettlementStatement.file_id, SettlementStatement.position)
    )
    if ids is not None:
        query = query.where(SettlementStatement.id.in_([int(i) for i in ids]))
    if file_id is not None:
        query = query.where(SettlementStatement.file_id == file_id)
    rows = uow.session.execute(query).all()
    flaws: dict[int | None, list[SettlementFileWarning]] = {}
    for warning in uow.session.scalars(
        select(SettlementFileWarning)
        .where(SettlementFileWarning.statement_row_id.in_([st.id for st, _ in rows]))
        .order_by(SettlementFileWarning.id)
    ):
        flaws.setdefault(warning.statement_row_id, []).append(warning)
    return [StatementView(st, f, flaws.get(st.id, [])) for st, f in rows]


def files(uow: UnitOfWork, merchant_id: int, limit: int = 100) -> list[tuple[SettlementFile, int]]:
    """The latest files with a statement on the merchant's accounts, each with its flaws count."""
    flagged = func.sum(SettlementStatement.warning_count)
    rows = uow.session.execute(
        select(SettlementFile, flagged)
        .join(SettlementStatement, SettlementStatement.file_id == SettlementFile.id)
        .where(SettlementStatement.account.in_(_accounts(uow, merchant_id)))
        .group_by(SettlementFile.id)
        .order_by(SettlementFile.id.desc())
        .limit(limit)
    ).all()
    return [(f, int(n or 0)) for f, n in rows]


def file_statements(uow: UnitOfWork, merchant_id: int, file_id: int) -> list[StatementView]:
    views = statements(uow, merchant_id, file_id=file_id)
    if not views:
        raise NotFound(f"no settlement file {file_id} with a statement on your accounts")
    return views
