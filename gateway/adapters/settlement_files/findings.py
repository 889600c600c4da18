"""What a reader found wrong in a bank's file: flagged for a person, never a reason to refuse it.

A bank's statement is imported as its entries say (``Ntry/Amt``, ``Ntry/CdtDbtInd``: what moved
on the account); every flaw in its content becomes a :class:`SettlementWarning` with a code, the
element path and line, and both values. Only what breaks the framing or the syntax (not XML,
truncated, a DTD) or what would book money wrongly (an entry without an amount or a direction, a
non-zero digit beyond the currency's minor unit) is still refused whole.

The codes, each with what it means and what Kassa did about it, are the table ``WARNING_CODES``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

WARNING_CODES = {
    "status-missing": "the entry has no Sts: booked as BOOK if it has a booking date, else PDNG",
    "booking-date-missing": "a booked entry has no BookgDt: its value date, else the statement's",
    "date-invalid": "a date is not ISO 8601: the next date available is used",
    "detail-direction-differs": "a TxDtls/CdtDbtInd is not its entry's: the entry is booked",
    "details-sum-differs": "the details add up to another amount, currency or direction",
    "details-not-split": "several details carry no amount: one batch line, details as references",
    "batch-count-differs": "Btch/NbOfTxs is not the number of TxDtls",
    "balance-missing": "a statement lacks an opening (OPBD/PRCD) or a closing (CLBD) balance",
    "balance-differs": "opening + booked credits - booked debits is not the closing balance",
    "balance-currency-differs": "balances or booked entries in several currencies: one is checked",
    "summary-differs": "a TxsSummry count or sum is not what the entries add up to",
}
MAX_KEPT = 1000  # warnings kept in full per file; beyond that they are only counted


@dataclass(frozen=True, slots=True)
class SettlementWarning:
    """One flaw in a file's content: where (element path and line), and both values."""

    code: str
    path: str
    line: int | None
    expected: str | None
    found: str | None
    message: str
    statement: int | None = None  # the statement's position in the file, 1-based

    def to_json(self) -> dict[str, object]:
        return {
            "code": self.code,
            "path": self.path,
            "line": self.line,
            "expected": self.expected,
            "found": self.found,
            "message": self.message,
            "statement": self.statement,
        }


@dataclass(slots=True)
class StatementReport:
    """One ``Stmt`` (camt.053) or ``Ntfctn`` (camt.054), summed by its entries.

    ``booked`` holds, per currency, the minor units of BOOK entries by direction: what moved on
    the account, the figures of the balance check and of the import's sums.
    """

    position: int
    statement_id: str | None = None
    account: str | None = None
    entries: int = 0
    lines: int = 0
    pending: int = 0  # entries not booked (PDNG, INFO)
    booked: dict[str, Counter[str]] = field(default_factory=dict)
    opening: tuple[Decimal, str] | None = None  # signed, currency
    closing: tuple[Decimal, str] | None = None
    first_day: date | None = None
    last_day: date | None = None
    warnings: int = 0

    def book(self, currency: str, indicator: str, minor: int, day: date | None) -> None:
        self.booked.setdefault(currency, Counter())[indicator] += minor
        if day is not None:
            self.first_day = min(self.first_day or day, day)
            self.last_day = max(self.last_day or day, day)


@dataclass(slots=True)
class FileReport:
    """Statements and warnings of one file, filled in while it is read."""

    statements: list[StatementReport] = field(default_factory=list)
    warnings: list[SettlementWarning] = field(default_factory=list)
    counts: Counter[str] = field(default_factory=Counter)

    def warn(self, warning: SettlementWarning) -> None:
        self.counts[warning.code] += 1
        if warning.statement is not None:
            self.statements[warning.statement - 1].warnings += 1
        if len(self.warnings) < MAX_KEPT:
            self.warnings.append(warning)

    @property
    def flawed(self) -> bool:
        return bool(self.counts)


__all__ = ["MAX_KEPT", "WARNING_CODES", "FileReport", "SettlementWarning", "StatementReport"]
