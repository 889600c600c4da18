"""SQLAlchemy mappings for a day reconciled in partitions by several workers: the run row that
its steps lock and count on, and the scratch rows its steps hand on (replaced per partition or
slot, deleted when the run is published)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Date, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from gateway.adapters.models import Base, utcnow


class ReconFanout(Base):
    """One partitioned run of a merchant's day.

    ``state``: parts → judging → residue → done, or superseded by a newer run of the day.
    ``parts_done`` and ``slots_done`` are the partitions and judging slots whose jobs have
    committed; the step that completes a list enqueues the next step, under this row's lock.
    """

    __tablename__ = "recon_fanouts"
    __table_args__ = (Index("ix_recon_fanouts_merchant_day", "merchant_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    day: Mapped[str] = mapped_column(String(10))
    as_of: Mapped[str] = mapped_column(String(10))
    parts: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16), default="parts")
    parts_done: Mapped[list[Any]] = mapped_column(JSON, default=list)
    slots_done: Mapped[list[Any]] = mapped_column(JSON, default=list)
    # Partitions hash keys with polars: every step of the run must use this version.
    polars_version: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    run_id: Mapped[int | None] = mapped_column(ForeignKey("recon_runs.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class ReconFanoutKey(Base):
    """What partition ``part`` found about one payment: a candidate pair (``line_id`` and the
    rows' columns set) or a payment it rules out (``line_id`` empty), filed under the payment's
    judging ``slot``."""

    __tablename__ = "recon_fanout_keys"
    __table_args__ = (
        Index("ix_recon_fanout_keys_part", "fanout_id", "part"),
        Index("ix_recon_fanout_keys_slot", "fanout_id", "slot"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fanout_id: Mapped[int] = mapped_column(ForeignKey("recon_fanouts.id"))
    part: Mapped[int] = mapped_column(Integer)
    slot: Mapped[int] = mapped_column(Integer)
    payment_id: Mapped[str] = mapped_column(String(64))
    line_id: Mapped[str | None] = mapped_column(String(64))
    method: Mapped[str | None] = mapped_column(String(16))
    amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    paid_on: Mapped[date | None] = mapped_column(Date)
    refunded_minor: Mapped[int | None] = mapped_column(BigInteger)
    booking_date: Mapped[date | None] = mapped_column(Date)
    entry_tx_count: Mapped[int | None] = mapped_column(BigInteger)
    entry_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_minor: Mapped[int | None] = mapped_column(BigInteger)
    settled: Mapped[int | None] = mapped_column(BigInteger)
    line_currency: Mapped[str | None] = mapped_column(String(3))
    kind: Mapped[str | None] = mapped_column(String(16))


class ReconFanoutResult(Base):
    """A verdict judged by slot ``slot``, waiting for the run to be published (then copied to
    ``recon_results`` in the one transaction that replaces the day's verdicts)."""

    __tablename__ = "recon_fanout_results"
    __table_args__ = (Index("ix_recon_fanout_results_slot", "fanout_id", "slot"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fanout_id: Mapped[int] = mapped_column(ForeignKey("recon_fanouts.id"))
    slot: Mapped[int] = mapped_column(Integer)
    day: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(8))
    subject_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    expected_minor: Mapped[int | None] = mapped_column(BigInteger)
    settled_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_expected_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_charged_minor: Mapped[int | None] = mapped_column(BigInteger)
    linked: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)
