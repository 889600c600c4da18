"""Reconcile a merchant's day: Kassa's payments and refunds against the bank's settlement lines.

The matching itself is pure domain code (:mod:`gateway.domain.reconciliation`); this module
loads its inputs, applies the managers' standing decisions, and stores one current verdict per
payment, refund and bank line of the day. Re-running a day gives the same verdicts for the
same data: results are replaced, decisions are kept.

Which lines: those booked within the matching window of the day, on the merchant's settlement
accounts (``Merchant.settlement_accounts``: IBANs and acquirer merchant ids). A bank reports the
same money in several files (camt.053 statement, camt.054 notification, acquirer CSV); for each
booking day only the most complete source present is used (camt.053, then camt.054, then CSV),
so nothing is counted twice. A day the bank announced only by its settlement callback (the
files have not come yet) is matched as one batch against the callback's totals.

A day covered by a statement whose content is flawed (its balance does not add up, details
contradict their entry, …: see ``settlement_statements.warning_count``) is matched all the same,
by the entries as booked, and the run names those statements (``ReconRun.flawed_statements``)
so that a person looks at the day.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from itertools import islice
from typing import TYPE_CHECKING, Any, Literal, cast

from sqlalchemy import delete, func, insert, or_, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import (
    BankSettlement,
    InboundEvent,
    Merchant,
    Payment,
    ReconDecision,
    ReconResult,
    ReconRun,
    Refund,
    SettlementEntry,
    SettlementFile,
    SettlementStatement,
    utcnow,
)
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.reconciliation import (
    SETTLEABLE,
    BankLine,
    FeeRate,
    FeeSchedule,
    KassaPayment,
    KassaRefund,
    ManualDecision,
    Outcome,
    Result,
    reconcile,
)
from gateway.errors import InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.staff import audit
from gateway.services.webhooks import outbox
from gateway.settings import ReconciliationSettings

if TYPE_CHECKING:
    import polars as pl

RECON_JOB = "reconcile_day"
FETCH_FILE_JOB = "fetch_settlement_file"
Action = Literal["link", "accept_difference", "write_off"]
SOURCE_PRIORITY = ("camt053", "camt054", "csv")
ACTIONS = ("link", "accept_difference", "write_off")
PENDING = frozenset({Outcome.AWAITING_SETTLEMENT.value})
GOOD = frozenset({Outcome.MATCHED.value, Outcome.WRITTEN_OFF.value})


@dataclass(frozen=True, slots=True)
class ReconSettings:
    fees: FeeSchedule
    window_days: int = 3
    unsettled_after_days: int = 2
    # From this many payments in the window on, the day is read and matched in columns
    # (same verdicts, see gateway/domain/reconciliation/columnar.py); 0: always.
    columnar_from: int = 20_000
    # The scheduled runs of a day with this many payments in the window on fan out into
    # ``parts`` partitions over the job table (recon_parts.py); parts 1: never.
    parts: int = 1
    parts_from: int = 1_000_000

    @classmethod
    def from_settings(cls, settings: ReconciliationSettings) -> ReconSettings:
        rates = {
            method: FeeRate(rate.percent_bp, rate.fixed_minor)
            for method, rate in settings.fees.items()
        }
        return cls(
            fees=FeeSchedule.of(**rates),
            window_days=settings.window_days,
            unsettled_after_days=settings.unsettled_after_days,
            parts=settings.parts,
            parts_from=settings.parts_from,
        )


def is_exception(outcome: str) -> bool:
    return outcome not in GOOD and outcome not in PENDING


def reconcile_day(
    uow: UnitOfWork,
    merchant_id: int,
    day: date,
    settings: ReconSettings,
    *,
    actor: str,
    as_of: date | None = None,
) -> ReconRun:
    """Match the day and store its verdicts (not committed)."""
    merchant = uow.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound(f"no merchant {merchant_id}")
    low, high = (
        day - timedelta(days=settings.window_days),
        day + timedelta(days=settings.window_days),
    )
    as_of = as_of or utcnow().date()
    if _payment_count(uow, merchant_id, low, high) >= settings.columnar_from:
        todays, source = _reconcile_in_columns(uow, merchant, day, settings, as_of)
    else:
        lines, source = _lines(uow, merchant, low, high + timedelta(days=settings.window_days))
        outcome = reconcile(
            _payments(uow, merchant_id, low, high),
            _refunds(uow, merchant_id, low, high),
            lines,
            fees=settings.fees,
            as_of=as_of,
            window_days=settings.window_days,
            unsettled_after_days=settings.unsettled_after_days,
            decisions=_decisions(uow, merchant_id),
        )
        todays = [r for r in outcome.results if r.day == day]
    run = ReconRun(
        merchant_id=merchant_id,
        day=day.isoformat(),
        source=source,
        actor=actor,
        counts=_counts(todays),
        flawed_statements=flawed_statements(uow, merchant, day),
        started_at=utcnow(),
    )
    uow.session.add(run)
    uow.session.flush()
    # A subject's day never changes (paid on, booked on), so the day's rows are all there is.
    uow.session.execute(
        delete(ReconResult)
        .where(
            ReconResult.merchant_id == merchant_id,
            ReconResult.day == day.isoformat(),
        )
        .execution_options(synchronize_session=False)
    )
    insert_results(uow, run, todays)
    announce(uow, run)
    return run


def insert_results(uow: UnitOfWork, run: ReconRun, results: Iterable[Result]) -> None:
    """Store verdicts of the run's day (the day's old rows already deleted)."""
    rows = (
        {
            "merchant_id": run.merchant_id,
            "run_id": run.id,
            "day": run.day,
            "subject": r.subject,
            "subject_id": r.id,
            "outcome": r.outcome.value,
            "currency": r.currency,
            "expected_minor": r.expected_minor,
            "settled_minor": r.settled_minor,
            "fee_expected_minor": r.fee_expected_minor,
            "fee_charged_minor": r.fee_charged_minor,
            "linked": list(r.linked),
            "reason": r.reason,
        }
        for r in results
    )
    # Bulk inserts (executemany) in slices: a chain's day has millions of verdicts.
    while chunk := list(islice(rows, 10_000)):
        uow.session.execute(insert(ReconResult), chunk)


def announce(uow: UnitOfWork, run: ReconRun) -> None:
    """Tell the merchant's webhooks that the day is reconciled."""
    outbox.publish(
        uow,
        merchant_id=run.merchant_id,
        event_type="settlement.reconciled",
        data={
            "day": run.day,
            "run_id": run.id,
            "source": run.source,
            "counts": run.counts,
            "exceptions": sum(n for o, n in run.counts.items() if is_exception(o)),
            "flawed_statements": len(run.flawed_statements or []),
        },
    )


def reconcile_or_fan_out(
    uow: UnitOfWork,
    merchant_id: int,
    day: date,
    settings: ReconSettings,
    *,
    actor: str,
    as_of: date | None = None,
) -> ReconRun | None:
    """A scheduled run: :func:`reconcile_day` now, or for a day of at least
    ``settings.parts_from`` payments, partitions over the job table (None: under way)."""
    from gateway.services.settlement import recon_parts

    if settings.parts > 1:
        low = day - timedelta(days=settings.window_days)
        high = day + timedelta(days=settings.window_days)
        if _payment_count(uow, merchant_id, low, high) >= settings.parts_from:
            recon_parts.fan_out(uow, merchant_id, day, settings, actor=actor, as_of=as_of)
            return None
    return reconcile_day(uow, merchant_id, day, settings, actor=actor, as_of=as_of)


def _payment_count(uow: UnitOfWork, merchant_id: int, low: date, high: date) -> int:
    paid = func.coalesce(Payment.paid_at, Payment.created_at)
    return int(
        uow.session.scalar(
            select(func.count()).where(
                Payment.merchant_id == merchant_id,
                Payment.status.in_(sorted(SETTLEABLE)),
                paid >= day_start(low),
                paid < day_start(high + timedelta(days=1)),
            )
        )
        or 0
    )


@dataclass(frozen=True)
class DayFrames:
    """A day's inputs in columns (``columnar.PAYMENT_SCHEMA`` …) and the sources of its lines."""

    payments: pl.DataFrame
    refunds: pl.DataFrame
    lines: pl.DataFrame
    decisions: list[ManualDecision]
    source: str | None


def day_frames(
    uow: UnitOfWork, merchant: Merchant, day: date, settings: ReconSettings
) -> DayFrames:
    """The day's payments, refunds and lines (its window) read in columns."""
    from gateway.domain.reconciliation.columnar import refunds_frame
    from gateway.services.settlement import recon_frames

    low = day - timedelta(days=settings.window_days)
    high = day + timedelta(days=settings.window_days)
    line_high = high + timedelta(days=settings.window_days)
    days_with_files = _days_with_files(uow, merchant, low, line_high)
    callbacks = (
        _callback_lines(uow, merchant, low, line_high, days_with_files)
        if merchant.settlement_accounts
        else []
    )
    lines, sources = recon_frames.lines_frame_of(uow, merchant, low, line_high, callbacks)
    if callbacks:
        sources.append("callback")
    return DayFrames(
        recon_frames.payments_frame(uow, merchant.id, low, high),
        refunds_frame(_refunds(uow, merchant.id, low, high)),
        lines,
        _decisions(uow, merchant.id),
        "+".join(sources) or None,
    )


def refunds_and_decisions(
    uow: UnitOfWork, merchant_id: int, day: date, settings: ReconSettings
) -> tuple[pl.DataFrame, list[ManualDecision]]:
    """The day's refunds (a frame) and the merchant's standing decisions: the small inputs."""
    from gateway.domain.reconciliation.columnar import refunds_frame

    low = day - timedelta(days=settings.window_days)
    high = day + timedelta(days=settings.window_days)
    return refunds_frame(_refunds(uow, merchant_id, low, high)), _decisions(uow, merchant_id)


def _reconcile_in_columns(
    uow: UnitOfWork,
    merchant: Merchant,
    day: date,
    settings: ReconSettings,
    as_of: date,
) -> tuple[list[Result], str | None]:
    """The day's verdicts by ``reconcile_frames``: inputs read in columns, same verdicts."""
    from gateway.domain.reconciliation.columnar import reconcile_frames

    frames = day_frames(uow, merchant, day, settings)
    outcome = reconcile_frames(
        frames.payments,
        frames.refunds,
        frames.lines,
        fees=settings.fees,
        as_of=as_of,
        window_days=settings.window_days,
        unsettled_after_days=settings.unsettled_after_days,
        decisions=frames.decisions,
    )
    return list(outcome.results(day)), frames.source


def flawed_statements(uow: UnitOfWork, merchant: Merchant, day: date) -> list[int]:
    """Ids of the flagged statements on the merchant's accounts whose entries span ``day``."""
    accounts = [str(a) for a in (merchant.settlement_accounts or [])]
    if not accounts:
        return []
    return list(
        uow.session.scalars(
            select(SettlementStatement.id)
            .where(
                SettlementStatement.account.in_(accounts),
                SettlementStatement.warning_count > 0,
                SettlementStatement.first_day <= day.isoformat(),
                SettlementStatement.last_day >= day.isoformat(),
            )
            .order_by(SettlementStatement.id)
        )
    )


def _counts(results: Iterable[Any]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for r in results:
        counts[r.outcome.value] += 1
    return dict(sorted(counts.items()))


def _payments(uow: UnitOfWork, merchant_id: int, low: date, high: date) -> list[KassaPayment]:
    rows = uow.session.scalars(
        select(Payment).where(
            Payment.merchant_id == merchant_id,
            Payment.status.in_(sorted(SETTLEABLE)),
            func.coalesce(Payment.paid_at, Payment.created_at) >= day_start(low),
            func.coalesce(Payment.paid_at, Payment.created_at)
            < day_start(high + timedelta(days=1)),
        )
    )
    out = []
    for p in rows:
        card = p.card or {}
        out.append(
            KassaPayment(
                id=p.id,
                reference=p.reference,
                method=p.method,
                amount_minor=p.amount_minor,
                currency=p.currency,
                paid_on=(p.paid_at or p.created_at).date(),
                status=p.status,
                refunded_minor=p.refunded_minor or 0,
                terminal_trace=_text(card.get("trace_number")),
                receipt_no=_text(card.get("receipt_number")),
            )
        )
    return out


def _refunds(uow: UnitOfWork, merchant_id: int, low: date, high: date) -> list[KassaRefund]:
    rows = uow.session.scalars(
        select(Refund)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.merchant_id == merchant_id,
            Refund.status == "succeeded",
            Payment.status != "cancelled",  # a card reversal in the open batch: no bank money
            Refund.updated_at >= day_start(low),
            Refund.updated_at < day_start(high + timedelta(days=1)),
        )
    )
    return [
        KassaRefund(
            id=r.id,
            payment_id=r.payment_id,
            amount_minor=r.amount_minor,
            currency=r.currency,
            succeeded_on=r.updated_at.date(),
        )
        for r in rows
    ]


def _lines(
    uow: UnitOfWork, merchant: Merchant, low: date, high: date
) -> tuple[list[BankLine], str | None]:
    accounts = [str(a) for a in (merchant.settlement_accounts or [])]
    if not accounts:
        return [], None
    rows = list(
        uow.session.scalars(
            select(SettlementEntry)
            .join(SettlementFile, SettlementFile.id == SettlementEntry.file_id)
            .where(
                SettlementFile.state == "imported",  # not a file still being imported
                SettlementEntry.booked_on >= low.isoformat(),
                SettlementEntry.booked_on <= high.isoformat(),
                SettlementEntry.status == "BOOK",
                or_(
                    SettlementEntry.account_iban.in_(accounts),
                    SettlementEntry.merchant_id.in_(accounts),
                ),
            )
            .order_by(SettlementEntry.id)
        )
    )
    best: dict[str, str] = {}
    for row in rows:
        day = row.booked_on or ""
        if day not in best or SOURCE_PRIORITY.index(row.source) < SOURCE_PRIORITY.index(best[day]):
            best[day] = row.source
    chosen = [_line(row) for row in rows if best.get(row.booked_on or "") == row.source]
    callbacks = _callback_lines(uow, merchant, low, high, set(best))
    sources = sorted(set(best.values()), key=SOURCE_PRIORITY.index)
    if callbacks:
        sources.append("callback")
    return chosen + callbacks, "+".join(sources) or None


def _callback_lines(
    uow: UnitOfWork, merchant: Merchant, low: date, high: date, days_with_files: set[str]
) -> list[BankLine]:
    return [
        _callback_line(uow, settlement)
        for settlement in uow.session.scalars(
            select(BankSettlement)
            .where(
                BankSettlement.merchant_id == merchant.id,
                BankSettlement.day >= low.isoformat(),
                BankSettlement.day <= high.isoformat(),
            )
            .order_by(BankSettlement.id)
        )
        if settlement.day not in days_with_files  # a file for the day says more than its callback
    ]


def _days_with_files(uow: UnitOfWork, merchant: Merchant, low: date, high: date) -> set[str]:
    """The booking days for which a file (any source) has lines on the merchant's accounts."""
    accounts = [str(a) for a in (merchant.settlement_accounts or [])]
    if not accounts:
        return set()
    return set(
        uow.session.scalars(
            select(SettlementEntry.booked_on)
            .distinct()
            .join(SettlementFile, SettlementFile.id == SettlementEntry.file_id)
            .where(
                SettlementFile.state == "imported",
                SettlementEntry.booked_on >= low.isoformat(),
                SettlementEntry.booked_on <= high.isoformat(),
                SettlementEntry.status == "BOOK",
                or_(
                    SettlementEntry.account_iban.in_(accounts),
                    SettlementEntry.merchant_id.in_(accounts),
                ),
            )
        )
    )


def _callback_line(uow: UnitOfWork, settlement: BankSettlement) -> BankLine:
    """A day the bank announced by callback but whose files have not come: one batch line.

    The callback gives totals only, so the line can settle the day's payments and refunds as
    one batch (net of fees and refunds), never one by one.
    """
    refunds_count = 0
    if settlement.inbound_event_id is not None:
        event = uow.session.get(InboundEvent, settlement.inbound_event_id)
        try:
            refunds_count = (
                int(json.loads(event.body)["data"].get("refund_count", 0)) if event else 0
            )
        except (ValueError, KeyError, TypeError):
            refunds_count = 0
    return BankLine(
        line_id=f"callback:{settlement.settlement_id}",
        amount_minor=settlement.gross_minor - settlement.refunds_minor,
        currency=settlement.currency,
        booking_date=date.fromisoformat(settlement.day),
        fee_minor=settlement.fees_minor,
        entry_ref=settlement.settlement_id,
        entry_amount_minor=settlement.net_minor,
        entry_tx_count=settlement.payment_count + refunds_count,
        remittance=f"settlement {settlement.settlement_id} (callback)",
    )


def _line(row: SettlementEntry) -> BankLine:
    credit = (row.indicator == "CRDT") != bool(row.reversal)
    gross = row.gross_minor if row.gross_minor is not None else row.amount_minor
    entry = row.entry_amount_minor
    entry_credit = ((row.entry_indicator or row.indicator) == "CRDT") != bool(row.reversal)
    return BankLine(
        line_id=str(row.id),
        amount_minor=gross if credit else -gross,
        currency=row.currency,
        booking_date=date.fromisoformat(row.booked_on or "1970-01-01"),
        # A refund's own id travels as the instruction id (camt Refs/InstrId); its end-to-end id
        # is the refunded payment's reference.
        end_to_end_id=(
            row.instruction_id if not credit and row.instruction_id else row.end_to_end_id
        ),
        fee_minor=row.charges_minor,
        entry_ref=row.entry_ref or "",
        entry_amount_minor=None if entry is None else (entry if entry_credit else -entry),
        entry_tx_count=row.entry_tx_count or 1,
        value_date=date.fromisoformat(row.value_on) if row.value_on else None,
        account_servicer_ref=row.account_servicer_ref,
        remittance=row.remittance or "",
        kind=row.kind if row.kind in ("payment", "refund", "chargeback", "fee") else None,  # type: ignore[arg-type]
    )


def _decisions(uow: UnitOfWork, merchant_id: int) -> list[ManualDecision]:
    rows = uow.session.scalars(
        select(ReconDecision)
        .where(ReconDecision.merchant_id == merchant_id, ReconDecision.revoked_at.is_(None))
        .order_by(ReconDecision.id)
    )
    return [
        ManualDecision(
            action=cast(Action, d.action),
            subject_id=d.subject_id,  # type: ignore[arg-type]
            line_ids=tuple(str(i) for i in d.line_ids),
            by=d.decided_by,
            at=d.decided_at,
            note=d.note,
        )
        for d in rows
    ]


def decide(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    action: str,
    subject_id: str | None,
    line_ids: Iterable[str],
    note: str,
    actor: str,
) -> ReconDecision:
    """Record a manager's decision; it holds in every later run until reopened."""
    if action not in ACTIONS:
        raise InvalidInput(f"a decision is one of {', '.join(ACTIONS)}, not {action!r}")
    if not note.strip():
        raise InvalidInput("say why in a note: every decision is audited")
    lines = [str(i) for i in line_ids]
    if not subject_id and not lines:
        raise InvalidInput("a decision names a payment or refund, bank lines, or both")
    if action == "link" and not (subject_id and lines):
        raise InvalidInput("a link joins a payment or refund to at least one bank line")
    decision = ReconDecision(
        merchant_id=merchant_id,
        action=action,
        subject_id=subject_id,
        line_ids=lines,
        note=scrub_card_numbers(note.strip()),
        decided_by=actor,
        decided_at=utcnow(),
    )
    uow.session.add(decision)
    uow.session.flush()
    audit.record(
        uow,
        f"settlement.{action}",
        actor=actor,
        merchant_id=merchant_id,
        target=("recon_decision", decision.id),
        after={"subject_id": subject_id, "line_ids": lines, "note": decision.note},
    )
    return decision


def reopen(uow: UnitOfWork, merchant_id: int, decision_id: int, actor: str) -> ReconDecision:
    decision = uow.session.scalar(
        select(ReconDecision).where(
            ReconDecision.id == decision_id, ReconDecision.merchant_id == merchant_id
        )
    )
    if decision is None:
        raise NotFound(f"no decision {decision_id} for this merchant")
    if decision.revoked_at is None:
        decision.revoked_at, decision.revoked_by = utcnow(), actor
        audit.record(
            uow,
            "settlement.reopened",
            actor=actor,
            merchant_id=merchant_id,
            target=("recon_decision", decision.id),
            before={"action": decision.action, "subject_id": decision.subject_id},
        )
    return decision


def reconcile_again(
    uow: UnitOfWork, merchant_id: int, settings: ReconSettings, actor: str, ids: list[str]
) -> list[str]:
    """Reconcile again every day on which one of these payments, refunds or lines is judged."""
    days = sorted(
        {
            r.day
            for r in uow.session.scalars(
                select(ReconResult).where(
                    ReconResult.merchant_id == merchant_id,
                    ReconResult.subject_id.in_([i for i in ids if i]),
                )
            )
        }
    )
    # A run replaces the day's result rows (ids may be reused), so forget the loaded ones.
    uow.session.flush()
    uow.session.expunge_all()
    for day in days:
        reconcile_day(uow, merchant_id, date.fromisoformat(day), settings, actor=actor)
    return days


def schedule_daily(uow: UnitOfWork, merchant_id: int, day: date) -> None:
    """Queue the run of ``day`` for 06:00 UTC the next morning, once (after the bank's files)."""
    jobs.enqueue_once(
        uow,
        RECON_JOB,
        {"merchant_id": merchant_id, "day": day.isoformat()},
        run_at=day_start(day + timedelta(days=1)) + timedelta(hours=6),
        dedupe_key=f"recon:{merchant_id}:{day.isoformat()}",
    )


def schedule_all(uow: UnitOfWork, today: date) -> None:
    """Make sure every merchant has its daily run queued (the worker calls this at start)."""
    for merchant_id in uow.session.scalars(select(Merchant.id)):
        schedule_daily(uow, merchant_id, today - timedelta(days=1))


def day_start(day: date) -> Any:
    from datetime import UTC, datetime, time

    return datetime.combine(day, time.min, tzinfo=UTC)


def _text(value: object) -> str | None:
    return None if value is None else str(value)
