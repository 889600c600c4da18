"""Reconciliation values: what Kassa expected, what the bank booked, and the verdict on each.

Inputs are frozen dataclasses with ``__slots__`` (a settlement day can hold a million of each).
A verdict is a ``Result`` named tuple: immutable like the rest, but about five times cheaper to
build than a frozen dataclass, which matters at one result per payment and per bank line. Its
``reason`` is worded on demand from its fields, so a million matched lines do not carry a
million sentences.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Literal, NamedTuple

from gateway.domain.money import Money
from gateway.errors import InvalidMoney

# Payment states in which the customer's money was taken and the bank owes a settlement.
SETTLEABLE = frozenset({"paid", "authorised", "settled", "refunded", "partially_refunded"})


class Outcome(StrEnum):
    """The class a payment, refund or bank line ends in; exactly one each."""

    MATCHED = "matched"
    MATCHED_FEE_DIFFERENCE = "matched_fee_difference"
    AMOUNT_MISMATCH = "amount_mismatch"
    CURRENCY_MISMATCH = "currency_mismatch"
    SETTLED_TWICE = "settled_twice"
    PAID_NOT_SETTLED = "paid_not_settled"
    AWAITING_SETTLEMENT = "awaiting_settlement"  # not yet due: not an exception
    SETTLED_UNKNOWN = "settled_unknown"
    REFUND_NOT_SETTLED = "refund_not_settled"
    WRITTEN_OFF = "written_off"  # closed by a manager's decision: not an exception


# Outcomes a manager need not look at; AWAITING_SETTLEMENT is pending, the rest are exceptions.
SETTLED_OUTCOMES = frozenset({Outcome.MATCHED, Outcome.WRITTEN_OFF})


@dataclass(frozen=True, slots=True)
class KassaPayment:
    """A payment as Kassa recorded it; ``reference`` is the EMV 62-05 label or card receipt."""

    id: str
    reference: str
    method: str  # "qr" | "card"
    amount_minor: int
    currency: str
    paid_on: date
    status: str = "paid"
    refunded_minor: int = 0
    terminal_trace: str | None = None
    receipt_no: str | None = None


@dataclass(frozen=True, slots=True)
class KassaRefund:
    """A refund that succeeded at Kassa; its ``id`` travels as the bank's end-to-end id."""

    id: str
    payment_id: str
    amount_minor: int  # positive; the bank debits it
    currency: str
    succeeded_on: date


@dataclass(frozen=True, slots=True, kw_only=True)
class BankLine:
    """One transaction in a settlement file (a camt TxDtls or a CSV row).

    ``amount_minor`` is the gross of this transaction, credit positive and debit negative. A
    batch booked without details is one line with ``entry_tx_count`` > 1 whose net is
    ``entry_amount_minor`` (and whose gross is ``amount_minor`` when ``fee_minor`` is reported).
    """

    line_id: str
    amount_minor: int
    currency: str
    booking_date: date
    end_to_end_id: str | None = None
    fee_minor: int | None = None
    entry_ref: str = ""
    entry_amount_minor: int | None = None
    entry_tx_count: int = 1
    value_date: date | None = None
    account_servicer_ref: str | None = None
    remittance: str = ""
    kind: Literal["payment", "refund", "chargeback", "fee"] | None = None

    @property
    def fee_charged_minor(self) -> int | None:
        """The fee on this transaction: reported, or gross minus net of a one-transaction entry."""
        if self.fee_minor is not None:
            return self.fee_minor
        if self.entry_tx_count == 1 and self.entry_amount_minor is not None:
            return self.amount_minor - self.entry_amount_minor
        return None


@dataclass(frozen=True, slots=True)
class FeeRate:
    """The agreed fee of one payment method: basis points of the amount plus a fixed part."""

    percent_bp: int
    fixed_minor: int

    def fee(self, amount_minor: int) -> int:
        """``amount × bp / 10 000`` rounded half-up, plus the fixed part (as the bank computes)."""
        return (amount_minor * self.percent_bp + 5_000) // 10_000 + self.fixed_minor


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """The merchant's agreed fees per payment method; an unknown method costs nothing."""

    rates: tuple[tuple[str, FeeRate], ...]

    @classmethod
    def of(cls, **rates: FeeRate) -> FeeSchedule:
        """``FeeSchedule.of(qr=FeeRate(90, 0), card=FeeRate(140, 5))``."""
        return cls(tuple(sorted(rates.items())))

    def rate(self, method: str) -> FeeRate:
        return dict(self.rates).get(method, FeeRate(0, 0))


@dataclass(frozen=True, slots=True)
class ManualDecision:
    """A manager's ruling, applied before any automatic matching and kept across re-runs.

    ``link`` ties a payment or refund to bank lines; ``accept_difference`` does the same and
    accepts any amount or fee difference; ``write_off`` closes a payment, refund or lines.
    """

    action: Literal["link", "accept_difference", "write_off"]
    subject_id: str | None
    line_ids: tuple[str, ...] = ()
    by: str = ""
    at: datetime | None = None
    note: str = ""

    def describe(self) -> str:
        when = f" on {self.at:%Y-%m-%d}" if self.at else ""
        words = {"link": "linked", "accept_difference": "difference accepted"}
        text = f"{words.get(self.action, 'written off')} by {self.by or 'a manager'}{when}"
        return f"{text}: {self.note}" if self.note else text


def money(minor: int | None, currency_code: str) -> str:
    """``1234, "EUR"`` → "12.34 EUR"; an unknown currency is shown as raw minor units."""
    if minor is None:
        return "unknown"
    try:
        return str(Money(minor, currency_code))
    except InvalidMoney:
        return f"{minor} (minor units) {currency_code}"


class Result(NamedTuple):
    """The verdict on one payment, refund or bank line (``subject``), with the figures behind it.

    Amounts are signed minor units in ``currency``; ``linked`` holds the ids on the other side
    (bank lines for a payment, payments or refunds for a line). ``note`` adds what the figures
    cannot say (ambiguity, batch, a manager's decision).
    """

    subject: Literal["payment", "refund", "line"]
    id: str
    outcome: Outcome
    day: date
    currency: str
    expected_minor: int | None
    settled_minor: int | None
    fee_expected_minor: int | None
    fee_charged_minor: int | None
    linked: tuple[str, ...] = ()
    note: str = ""

    @property
    def reason(self) -> str:
        """The verdict in words, e.g. "bank settled 12.30 EUR for 12.34 EUR (difference …)"."""
        text = _REASONS[self.outcome](self)
        return f"{text}; {self.note}" if self.note else text


def _amounts(r: Result) -> str:
    diff = (r.settled_minor or 0) - (r.expected_minor or 0)
    return (
        f"bank settled {money(r.settled_minor, r.currency)} for "
        f"{money(r.expected_minor, r.currency)} (difference {money(diff, r.currency)})"
    )


def _with(r: Result) -> str:
    return ", ".join(r.linked)


def _fees(r: Result) -> str:
    diff = (r.fee_charged_minor or 0) - (r.fee_expected_minor or 0)
    return (
        f"matched with {_with(r)}, but the bank charged a fee of "
        f"{money(r.fee_charged_minor, r.currency)} where the schedule gives "
        f"{money(r.fee_expected_minor, r.currency)} (difference {money(diff, r.currency)})"
    )


def _unsettled(r: Result) -> str:
    what = "refund" if r.subject == "refund" else "payment"
    return f"{what} of {money(r.expected_minor, r.currency)} on {r.day} has no bank line"


_REASONS = {
    Outcome.MATCHED: lambda r: f"matched with {_with(r)}: {money(r.settled_minor, r.currency)}",
    Outcome.MATCHED_FEE_DIFFERENCE: _fees,
    Outcome.AMOUNT_MISMATCH: lambda r: f"{_amounts(r)}, linked with {_with(r)}",
    Outcome.CURRENCY_MISMATCH: lambda r: f"currencies differ, linked with {_with(r)}",
    Outcome.SETTLED_TWICE: lambda r: f"settled more than once ({_with(r)}): {_amounts(r)}",
    Outcome.PAID_NOT_SETTLED: _unsettled,
    Outcome.AWAITING_SETTLEMENT: lambda r: f"{_unsettled(r)} yet; not due",
    Outcome.SETTLED_UNKNOWN: lambda r: (
        f"bank line of {money(r.settled_minor, r.currency)} matches no Kassa payment or refund"
    ),
    Outcome.REFUND_NOT_SETTLED: _unsettled,
    Outcome.WRITTEN_OFF: lambda r: "written off",
}


@dataclass(frozen=True, slots=True)
class DaySummary:
    """One day and currency of the settlement calendar (the day the money was taken)."""

    day: date
    currency: str
    expected_minor: int
    settled_minor: int
    fees_expected_minor: int
    fees_charged_minor: int
    exceptions: int
    pending: int

    @property
    def difference_minor(self) -> int:
        """What the bank paid net of fees minus what the schedule says it should have."""
        expected_net = self.expected_minor - self.fees_expected_minor
        return self.settled_minor - self.fees_charged_minor - expected_net

    @property
    def status(self) -> Literal["reconciled", "pending", "exceptions"]:
        if self.exceptions:
            return "exceptions"
        return "pending" if self.pending else "reconciled"


@dataclass(frozen=True, slots=True)
class Reconciliation:
    """Every result (payments, refunds, lines; each sorted by id) and the day summaries."""

    results: tuple[Result, ...]
    days: tuple[DaySummary, ...]
    unused_decisions: tuple[ManualDecision, ...] = ()

    def counts(self, subject: str | None = None) -> dict[Outcome, int]:
        """How many results end in each outcome (only ``subject``'s, if given)."""
        out: dict[Outcome, int] = {}
        for r in self.results:
            if subject is None or r.subject == subject:
                out[r.outcome] = out.get(r.outcome, 0) + 1
        return out

    def of(self, subject_id: str) -> Result:
        """The result of one payment, refund or line by id."""
        for r in self.results:
            if r.id == subject_id:
                return r
        raise KeyError(subject_id)
