"""The checks a statement makes of itself: its balances and its transactions summary.

Both run on every ``Stmt`` / ``Ntfctn`` once its last entry is read, against the entries as
booked (``Ntry/Amt`` and ``Ntry/CdtDbtInd``), never against their details:

- balance: opening (``OPBD``, else ``PRCD``) + booked credits − booked debits = closing
  (``CLBD``), in the balances' currency; a camt.053 without either balance is flagged too.
- summary (``TxsSummry``): ``TtlNtries``, ``TtlCdtNtries`` and ``TtlDbtNtries`` (number and
  sum) and the net (``TtlNetNtry/Amt`` from .03, ``TtlNetNtryAmt`` in .02) against all entries.

Amounts are compared as decimals, so ``200.0000`` equals ``200.00``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from gateway.adapters.settlement_files.findings import StatementReport
from gateway.domain.money import currency as iso_currency
from gateway.errors import InvalidMoney

Warn = Callable[[str, str, int | None, str | None, str | None, str], None]
OPENING = ("OPBD", "PRCD")
CLOSING = ("CLBD",)


@dataclass(frozen=True, slots=True)
class Balance:
    """One ``Bal``: its type code, signed amount and currency, and where it is."""

    code: str
    amount: Decimal
    currency: str
    path: str
    line: int | None


@dataclass(slots=True)
class Summary:
    """What ``TxsSummry`` claims: ``{"TtlCdtNtries/Sum": "12.30", …}``, with element lines."""

    path: str
    values: dict[str, tuple[str, int | None]] = field(default_factory=dict)


@dataclass(slots=True)
class EntryTotals:
    """All entries of a statement (any status), per currency: counts and sums by direction."""

    counts: Counter[tuple[str, str]] = field(default_factory=Counter)
    sums: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, currency: str, indicator: str, minor: int) -> None:
        self.counts[currency, indicator] += 1
        self.sums[currency, indicator] += minor


def decimal_of(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-iso_currency(currency).exponent)


def check_balances(
    report: StatementReport, balances: list[Balance], base: str, statement: bool, warn: Warn
) -> None:
    """Opening + booked credits − booked debits against the closing balance."""
    opening = next((b for code in OPENING for b in balances if b.code == code), None)
    closing = next((b for b in balances if b.code in CLOSING), None)
    report.opening = (opening.amount, opening.currency) if opening else None
    report.closing = (closing.amount, closing.currency) if closing else None
    if opening is None or closing is None:
        if statement or opening or closing:
            missing = " or ".join(
                name
                for name, balance in (
                    ("opening (OPBD, PRCD)", opening),
                    ("closing (CLBD)", closing),
                )
                if balance is None
            )
            warn(
                "balance-missing", f"{base}/Bal", None, "OPBD and CLBD", None,
                f"no {missing} balance: the statement's balance cannot be checked",
            )  # fmt: skip
        return
    currency = closing.currency
    if opening.currency != currency:
        warn(
            "balance-currency-differs", closing.path, closing.line, opening.currency, currency,
            f"the opening balance is in {opening.currency}, the closing in {currency}:"
            " the statement's balance cannot be checked",
        )  # fmt: skip
        return
    others = sorted(set(report.booked) - {currency})
    if others:
        warn(
            "balance-currency-differs", closing.path, closing.line, currency, ", ".join(others),
            f"entries booked in {', '.join(others)} on a statement balanced in {currency}:"
            f" they are left out of the balance check",
        )  # fmt: skip
    booked = report.booked.get(currency, Counter())
    try:
        moved = decimal_of(booked["CRDT"] - booked["DBIT"], currency)
    except InvalidMoney:
        return
    expected = opening.amount + moved
    if expected != closing.amount:
        warn(
            "balance-differs",
            closing.path,
            closing.line,
            f"{expected} {currency}",
            f"{closing.amount} {currency}",
            f"opening {opening.amount} + credits − debits {moved} = {expected} {currency},"
            f" but the closing balance says {closing.amount} (difference"
            f" {closing.amount - expected})",
        )


def check_summary(summary: Summary | None, totals: EntryTotals, warn: Warn) -> None:
    """Each count and sum ``TxsSummry`` gives against the entries (sums: one currency only)."""
    if summary is None:
        return
    currencies = {c for c, _ in totals.counts}
    single = next(iter(currencies)) if len(currencies) == 1 else None
    credits = (sum(n for (_, i), n in totals.counts.items() if i == "CRDT"), "CRDT")
    debits = (sum(n for (_, i), n in totals.counts.items() if i == "DBIT"), "DBIT")
    expected: dict[str, str | None] = {
        "TtlNtries/NbOfNtries": str(credits[0] + debits[0]),
        "TtlCdtNtries/NbOfNtries": str(credits[0]),
        "TtlDbtNtries/NbOfNtries": str(debits[0]),
    }
    if single is not None:
        cr, db = totals.sums[single, "CRDT"], totals.sums[single, "DBIT"]
        expected |= {
            "TtlNtries/Sum": str(decimal_of(cr + db, single)),
            "TtlCdtNtries/Sum": str(decimal_of(cr, single)),
            "TtlDbtNtries/Sum": str(decimal_of(db, single)),
            "TtlNtries/TtlNet": _signed(decimal_of(cr - db, single)),
        }
    for key, (found, line) in summary.values.items():
        want = expected.get(key)
        if want is None or _same(want, found):
            continue
        what = "number of entries" if key.endswith("NbOfNtries") else "sum"
        warn(
            "summary-differs",
            f"{summary.path}/{key}",
            line,
            want,
            found,
            f"the summary's {what} is {found}, the entries give {want}"
            + (f" {single}" if single and what == "sum" else ""),
        )


def _signed(value: Decimal) -> str:
    return f"{abs(value)} {'DBIT' if value < 0 else 'CRDT'}"


def _same(expected: str, found: str) -> bool:
    """Equal as decimals (``200.0000`` is ``200.00``), and a net's direction alike."""
    want, _, want_ind = expected.partition(" ")
    got, _, got_ind = found.partition(" ")
    try:
        same = Decimal(want) == Decimal(got)
    except ArithmeticError:
        return False
    return same and (want_ind == got_ind or Decimal(want) == 0)
