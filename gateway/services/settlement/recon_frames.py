"""A reconciliation day's inputs read from the database in columns (SQL rows → polars frames).

The same rows and the same conversions as ``reconciliation._payments`` / ``_lines`` (which build
one domain object per row), but as column expressions over batches of plain result rows, so a
chain's day of millions of payments never becomes millions of ORM objects. What is small (the
refunds, the callbacks of days without files) is read as objects and turned into frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

import polars as pl
from sqlalchemy import Executable, Text, cast, func, or_, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Payment, SettlementEntry, SettlementFile
from gateway.domain.reconciliation import SETTLEABLE, BankLine
from gateway.domain.reconciliation.columnar import LINE_SCHEMA, PAYMENT_SCHEMA, lines_frame

BATCH = 100_000  # result rows per batch turned into a frame


def payments_frame(uow: UnitOfWork, merchant_id: int, low: date, high: date) -> pl.DataFrame:
    """The settleable payments taken from ``low`` to ``high``, in id order."""
    from gateway.services.settlement.reconciliation import day_start

    paid = func.coalesce(Payment.paid_at, Payment.created_at)
    stmt = (
        select(
            Payment.id,
            Payment.reference,
            Payment.method,
            Payment.amount_minor,
            Payment.currency,
            paid.label("paid_at"),
            Payment.status,
            Payment.refunded_minor,
            cast(Payment.card, Text).label("card"),
        )
        .where(
            Payment.merchant_id == merchant_id,
            Payment.status.in_(sorted(SETTLEABLE)),
            paid >= day_start(low),
            paid < day_start(high + timedelta(days=1)),
        )
        .order_by(Payment.id)
    )
    raw = read_frame(
        uow,
        stmt,
        {
            "id": pl.String,
            "reference": pl.String,
            "method": pl.String,
            "amount_minor": pl.Int64,
            "currency": pl.String,
            "paid_at": pl.Datetime("us"),
            "status": pl.String,
            "refunded_minor": pl.Int64,
            "card": pl.String,
        },
    )
    card = pl.col("card")
    return raw.select(
        "id",
        "reference",
        "method",
        "amount_minor",
        "currency",
        paid_on=pl.col("paid_at").dt.date(),
        status=pl.col("status"),
        refunded_minor=pl.col("refunded_minor").fill_null(0),
        terminal_trace=card.str.json_path_match("$.trace_number"),
        receipt_no=card.str.json_path_match("$.receipt_number"),
    ).cast(PAYMENT_SCHEMA)  # type: ignore[arg-type]


def lines_frame_of(
    uow: UnitOfWork, merchant: Merchant, low: date, high: date, callbacks: Iterable[BankLine]
) -> tuple[pl.DataFrame, list[str]]:
    """The booked lines on the merchant's accounts, the best source per day (and the sources).

    ``callbacks`` are the callback lines of the days without files (read by the caller).
    """
    from gateway.services.settlement.reconciliation import SOURCE_PRIORITY

    accounts = [str(a) for a in (merchant.settlement_accounts or [])]
    e = SettlementEntry
    stmt = (
        select(
            e.id,
            e.source,
            e.booked_on,
            e.indicator,
            e.reversal,
            e.amount_minor,
            e.gross_minor,
            e.currency,
            e.instruction_id,
            e.end_to_end_id,
            e.charges_minor,
            e.entry_ref,
            e.entry_amount_minor,
            e.entry_indicator,
            e.entry_tx_count,
            e.value_on,
            e.account_servicer_ref,
            e.remittance,
            e.kind,
        )
        .join(SettlementFile, SettlementFile.id == e.file_id)
        .where(
            SettlementFile.state == "imported",
            e.booked_on >= low.isoformat(),
            e.booked_on <= high.isoformat(),
            e.status == "BOOK",
            or_(e.account_iban.in_(accounts), e.merchant_id.in_(accounts)),
        )
        .order_by(e.id)
    )
    raw = read_frame(uow, stmt, _ENTRY_SCHEMA) if accounts else pl.DataFrame(schema=_ENTRY_SCHEMA)
    rank = pl.col("source").replace_strict(
        {s: i for i, s in enumerate(SOURCE_PRIORITY)}, return_dtype=pl.Int8
    )
    raw = raw.with_columns(rank=rank).filter(
        pl.col("rank") == pl.col("rank").min().over("booked_on")
    )
    sources = [SOURCE_PRIORITY[i] for i in sorted(raw["rank"].unique().to_list())]
    reversal = pl.col("reversal").fill_null(False)
    credit = (pl.col("indicator") == "CRDT") != reversal
    entry_ind = pl.when(pl.col("entry_indicator").fill_null("") != "")
    entry_credit = (
        entry_ind.then(pl.col("entry_indicator")).otherwise(pl.col("indicator")) == "CRDT"
    ) != reversal
    gross = pl.coalesce("gross_minor", "amount_minor")
    refund_id = ~credit & (pl.col("instruction_id").fill_null("") != "")
    entry = pl.col("entry_amount_minor")
    tx_count = pl.col("entry_tx_count").fill_null(0)
    lines = raw.select(
        line_id=pl.col("id").cast(pl.String),
        amount_minor=pl.when(credit).then(gross).otherwise(-gross),
        currency=pl.col("currency"),
        booking_date=pl.col("booked_on").str.to_date("%Y-%m-%d"),
        # A refund's own id travels as the instruction id (camt Refs/InstrId).
        end_to_end_id=pl.when(refund_id)
        .then(pl.col("instruction_id"))
        .otherwise(pl.col("end_to_end_id")),
        fee_minor=pl.col("charges_minor"),
        entry_ref=pl.col("entry_ref").fill_null(""),
        entry_amount_minor=pl.when(entry_credit).then(entry).otherwise(-entry),
        entry_tx_count=pl.when(tx_count == 0).then(1).otherwise(tx_count),
        value_date=pl.when(pl.col("value_on").fill_null("") != "")
        .then(pl.col("value_on"))
        .str.to_date("%Y-%m-%d"),
        account_servicer_ref=pl.col("account_servicer_ref"),
        remittance=pl.col("remittance").fill_null(""),
        kind=pl.when(pl.col("kind").is_in(["payment", "refund", "chargeback", "fee"]))
        .then(pl.col("kind"))
        .otherwise(None),
    ).cast(LINE_SCHEMA)  # type: ignore[arg-type]
    return pl.concat([lines, lines_frame(callbacks)]), sources


_ENTRY_SCHEMA: dict[str, Any] = {
    "id": pl.Int64,
    "source": pl.String,
    "booked_on": pl.String,
    "indicator": pl.String,
    "reversal": pl.Boolean,
    "amount_minor": pl.Int64,
    "gross_minor": pl.Int64,
    "currency": pl.String,
    "instruction_id": pl.String,
    "end_to_end_id": pl.String,
    "charges_minor": pl.Int64,
    "entry_ref": pl.String,
    "entry_amount_minor": pl.Int64,
    "entry_indicator": pl.String,
    "entry_tx_count": pl.Int64,
    "value_on": pl.String,
    "account_servicer_ref": pl.String,
    "remittance": pl.String,
    "kind": pl.String,
}


def read_frame(uow: UnitOfWork, stmt: Executable, schema: dict[str, Any]) -> pl.DataFrame:
    """Run ``stmt`` and build its frame batch by batch (plain rows, never ORM objects)."""
    result = uow.session.connection().execute(stmt.execution_options(yield_per=BATCH))  # type: ignore[call-overload]
    frames = [pl.DataFrame(rows, schema=schema, orient="row") for rows in result.partitions(BATCH)]
    return pl.concat(frames) if frames else pl.DataFrame(schema=schema)
