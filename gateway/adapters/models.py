"""SQLAlchemy 2 mappings: the tables behind merchants, tills, staff, payments, events and jobs.

Schema changes go through Alembic (``gateway/migrations``); these mappings and the migrations are
checked against each other by a test.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every database (SQLite keeps no zone of its own)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given where a UTC timestamp is required")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
    }


class Merchant(Base):
    __tablename__ = "merchants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # EMV QR merchant profile: name (tag 59, ASCII ≤25), city (60, ≤15), country (58), MCC (52),
    # merchant account templates (02–51) and the optional alternate-language template (64).
    qr_name: Mapped[str] = mapped_column(String(25))
    qr_city: Mapped[str] = mapped_column(String(15))
    country: Mapped[str] = mapped_column(String(2))
    mcc: Mapped[str] = mapped_column(String(4))
    postal_code: Mapped[str | None] = mapped_column(String(10))
    qr_accounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    language: Mapped[str | None] = mapped_column(String(2))
    local_name: Mapped[str | None] = mapped_column(String(25))
    local_city: Mapped[str | None] = mapped_column(String(15))
    default_currency: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str] = mapped_column(String(16), default="en")
    # Where the bank settles: account IBANs and acquirer merchant ids that settlement files name.
    settlement_accounts: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The owner's approval limits (minor units), overriding ``[approvals]``; None: the defaults.
    approval_limits: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # A manager's own anomaly thresholds over ``[monitoring]`` (only those that differ); None.
    monitoring_thresholds: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Moved by the database (migration 0023's triggers) at every change of this row or of the
    # merchant's webhook endpoints: what a web process keeps of the merchant is current while
    # this is (gateway.services.payments.merchant_cache). Nothing writes it itself.
    revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    stores: Mapped[list[Store]] = relationship(back_populates="merchant")


class Store(Base):
    __tablename__ = "stores"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    city: Mapped[str] = mapped_column(String(100))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # VAT rates in basis points (1900 = 19 %) by item category, "default" for the rest; prices
    # include VAT. None: the store's receipts carry no VAT lines.
    vat_rates: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # {"mon": [["08:00", "20:00"]], …} on the store's clock (gateway.domain.monitoring); None:
    # not set, so no activity counts as outside opening hours.
    opening_hours: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    merchant: Mapped[Merchant] = relationship(back_populates="stores")
    tills: Mapped[list[Till]] = relationship(back_populates="store")


class Till(Base):
    """A checkout terminal. It calls the API with its own key; only a hash of the key is kept."""

    __tablename__ = "tills"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"), index=True)
    # Printed in EMV tag 62-07 (terminal label) and on receipts.
    label: Mapped[str] = mapped_column(String(25))
    name: Mapped[str] = mapped_column(String(100))
    api_key_id: Mapped[str] = mapped_column(String(16), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # After a rotation the old key keeps working until ``previous_key_expires_at`` (grace period).
    previous_key_id: Mapped[str | None] = mapped_column(String(16), unique=True)
    previous_key_hash: Mapped[str | None] = mapped_column(String(64))
    previous_key_expires_at: Mapped[datetime | None] = mapped_column()

    store: Mapped[Store] = relationship(back_populates="tills")


class StaffUser(Base):
    __tablename__ = "staff_users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    username: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(100))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # see gateway/services/staff/permissions.py
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # A supervisor's (or manager's) PIN to approve at the till, hashed like a password.
    approval_pin_hash: Mapped[str | None] = mapped_column(String(255))
    # Stored in the session cookie; bumping it (logout, password change, deactivation) ends
    # every session of this person at once.
    session_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    password_change_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default="0"
    )
    # TOTP second factor: the secret Fernet-encrypted, set once enrolment is confirmed.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_enrolled_at: Mapped[datetime | None] = mapped_column()
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)  # no code is used twice
    recovery_codes: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The language of their pages (gateway/adapters/i18n.py LOCALES); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(16))


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        Index("ix_payments_merchant_created", "merchant_id", "created_at"),
        Index("ix_payments_merchant_status", "merchant_id", "status"),
        # A till's payments of the last minutes (the anomaly rules' velocity and windows).
        Index("ix_payments_till_created", "till_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    till_id: Mapped[int] = mapped_column(ForeignKey("tills.id"), index=True)
    method: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(24))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # Identifies the payment to the bank: EMV tag 62-05 (reference label), unique everywhere.
    reference: Mapped[str] = mapped_column(String(25), unique=True)
    # The till's own sale/bill number, if it sent one: EMV tag 62-01.
    bill_number: Mapped[str | None] = mapped_column(String(25))
    qr_payload: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column()
    paid_at: Mapped[datetime | None] = mapped_column()
    # The bank's own id for the money movement, from its payment notification.
    bank_payment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    # The sale this payment pays for, when it was priced with promotions (``sales.id``).
    sale_id: Mapped[str | None] = mapped_column(String(36), index=True)
    # Why a person must look at this payment (e.g. the bank reported another amount), or None.
    attention: Mapped[str | None] = mapped_column(Text)
    # Card payments: what the terminal reported (masked PAN only, never a full one), the text it
    # shows the customer right now, its receipt, and the attempt in flight (for crash recovery).
    card: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    display_text: Mapped[str | None] = mapped_column(String(120))
    receipt_text: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    version: Mapped[int] = mapped_column(Integer, nullable=False)

    events: Mapped[list[PaymentEvent]] = relationship(
        back_populates="payment", order_by="PaymentEvent.id"
    )
    till: Mapped[Till] = relationship()
    store: Mapped[Store] = relationship()

    # Optimistic locking: a concurrent change (cancel vs paid vs expiry) loses with StaleDataError.
    __mapper_args__ = {"version_id_col": version}  # noqa: RUF012 - read once by the mapper


class ReceiptLink(Base):
    """A link to a paid payment's e-receipt: the customer opens it without signing in.

    Only the SHA-256 of the link's random token is kept, so the database alone opens no
    receipt; a link ends at ``expires_at`` ([receipts] link_days).
    """

    __tablename__ = "receipt_links"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PaymentEvent(Base):
    """One entry of a payment's history: every state change and what caused it."""

    __tablename__ = "payment_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    from_status: Mapped[str | None] = mapped_column(String(24))
    to_status: Mapped[str | None] = mapped_column(String(24))
    actor: Mapped[str] = mapped_column(String(64))
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="events")


class Refund(Base):
    """Money going back to the customer: requested here, carried out by the bank."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    # requested → submitted → succeeded | failed
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(255))
    bank_refund_id: Mapped[str | None] = mapped_column(String(64))
    failure: Mapped[str | None] = mapped_column(Text)
    # Card refunds: when the device host last asked the terminal (for crash recovery).
    terminal_attempt_at: Mapped[datetime | None] = mapped_column()
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    payment: Mapped[Payment] = relationship()


class BankSettlement(Base):
    """A settlement notification from the bank: what it paid out for one day."""

    __tablename__ = "bank_settlements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    settlement_id: Mapped[str] = mapped_column(String(64), unique=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    bank_merchant_id: Mapped[str] = mapped_column(String(64))
    day: Mapped[str] = mapped_column(String(10))
    currency: Mapped[str] = mapped_column(String(3))
    gross_minor: Mapped[int] = mapped_column(BigInteger)
    fees_minor: Mapped[int] = mapped_column(BigInteger)
    refunds_minor: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)
    payment_count: Mapped[int] = mapped_column(Integer)
    files: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    inbound_event_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_events.id"))
    received_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first response to a request with an ``Idempotency-Key``, replayed on retries."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_scope_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    scope: Mapped[str] = mapped_column(String(64))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    response_status: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InboundEvent(Base):
    """A raw inbound message (bank callback, settlement file), stored before it is processed."""

    __tablename__ = "inbound_events"
    __table_args__ = (UniqueConstraint("source", "external_id", name="uq_inbound_source_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    source: Mapped[str] = mapped_column(String(32))
    external_id: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str | None] = mapped_column(String(64))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    body: Mapped[bytes] = mapped_column(LargeBinary)
    content_hash: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default="received")
    error: Mapped[str | None] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column()


class Job(Base):
    """Background work (QR expiry, bank retries, reconciliation): done, or still here."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_due", "queue", "status", "run_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    # Who may run it: "default" (any worker) or "device:<till id>" (that till's device host).
    queue: Mapped[str] = mapped_column(String(64), default="default", server_default="default")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    dedupe_key: Mapped[str | None] = mapped_column(String(128), unique=True)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    run_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=8)
    locked_by: Mapped[str | None] = mapped_column(String(64))
    locked_until: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class DeviceStatus(Base):
    """A device host's heartbeat for one device: what the portal shows managers."""

    __tablename__ = "device_status"
    __table_args__ = (UniqueConstraint("till_id", "kind", name="uq_device_status_till_kind"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    till_id: Mapped[int] = mapped_column(ForeignKey("tills.id"))
    kind: Mapped[str] = mapped_column(String(32))  # card_terminal | nfc_reader
    url: Mapped[str] = mapped_column(String(255))
    state: Mapped[str] = mapped_column(String(16))  # connected | busy | disconnected | error
    detail: Mapped[str | None] = mapped_column(Text)
    last_error: Mapped[str | None] = mapped_column(Text)
    host: Mapped[str] = mapped_column(String(128))
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Card terminal: the currency it takes (ISO 4217 alphabetic), as registered at start.
    currency: Mapped[str | None] = mapped_column(String(3))


class CardBatch(Base):
    """A terminal's closed batch (end of day): the terminal's totals beside Kassa's."""

    __tablename__ = "card_batches"
    __table_args__ = (Index("ix_card_batches_till_closed", "till_id", "closed_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    till_id: Mapped[int] = mapped_column(ForeignKey("tills.id"))
    currency: Mapped[str] = mapped_column(String(3))
    terminal_total_minor: Mapped[int | None] = mapped_column(BigInteger)
    terminal_count: Mapped[int | None] = mapped_column(Integer)
    # [{"card_type": "girocard", "count": 3, "amount_minor": 4500}, …] as the terminal sent them
    terminal_by_card_type: Mapped[list[Any]] = mapped_column(JSON, default=list)
    kassa_total_minor: Mapped[int] = mapped_column(BigInteger)
    kassa_count: Mapped[int] = mapped_column(Integer)
    payment_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    difference: Mapped[str | None] = mapped_column(Text)  # None: both sides agree
    receipt_text: Mapped[str | None] = mapped_column(Text)
    actor: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerTap(Base):
    """A card or phone tapped on a till's NFC reader: a keyed hash of its UID, never the UID."""

    __tablename__ = "customer_taps"
    __table_args__ = (Index("ix_customer_taps_till_seen", "till_id", "seen_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    till_id: Mapped[int] = mapped_column(ForeignKey("tills.id"))
    token: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    applications: Mapped[list[Any]] = mapped_column(JSON, default=list)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class SettlementFile(Base):
    """An imported settlement file (camt.053/054, acquirer CSV), known by its SHA-256.

    Its raw bytes are the linked inbound event's body (or, for a large file, a copy under the
    archive directory named in the event's headers).
    """

    __tablename__ = "settlement_files"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    content_hash: Mapped[str] = mapped_column(String(64), unique=True)
    inbound_event_id: Mapped[int] = mapped_column(ForeignKey("inbound_events.id"), unique=True)
    format: Mapped[str] = mapped_column(String(16))  # camt053 | camt054 | csv
    mapping: Mapped[str | None] = mapped_column(String(64))  # CSV mapping name
    filename: Mapped[str] = mapped_column(String(255))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    entry_count: Mapped[int] = mapped_column(Integer)
    skipped_count: Mapped[int] = mapped_column(Integer, default=0)
    # {"EUR": {"CRDT": "30.86", "DBIT": "2.00"}}: what the file says, as decimal strings.
    sums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    pans_masked: Mapped[int] = mapped_column(Integer, default=0)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    # {"balance-differs": 1}: every flaw found in the bank's content, by code (see findings.py).
    warning_counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict, server_default="{}")
    # "staging" while an import writes its entries in short transactions (readers ignore the
    # file and its entries), "imported" once published in one short final transaction.
    state: Mapped[str] = mapped_column(String(16), default="imported", server_default="imported")


class SettlementEntry(Base):
    """One money movement from a settlement file: a camt ``TxDtls`` (or ``Ntry``), a CSV row.

    ``identity`` is a hash of the bank's own references (plus an occurrence count within the
    file), unique per format, so the same movement in another file is not stored twice.
    """

    __tablename__ = "settlement_entries"
    __table_args__ = (
        UniqueConstraint("source", "identity", name="uq_settlement_entries_source_identity"),
        Index("ix_settlement_entries_file_position", "file_id", "position"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("settlement_files.id"))
    position: Mapped[int] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(16))  # camt053 | camt054 | csv
    identity: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str] = mapped_column(String(255))
    amount_minor: Mapped[int] = mapped_column(BigInteger)  # never negative; see indicator
    currency: Mapped[str] = mapped_column(String(3))
    indicator: Mapped[str] = mapped_column(String(4))  # CRDT | DBIT
    reversal: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(8))  # BOOK | PDNG | INFO
    booked_on: Mapped[str | None] = mapped_column(String(10), index=True)
    value_on: Mapped[str | None] = mapped_column(String(10))
    statement_id: Mapped[str | None] = mapped_column(String(64))
    account_iban: Mapped[str | None] = mapped_column(String(34))
    entry_index: Mapped[int | None] = mapped_column(Integer)
    entry_ref: Mapped[str | None] = mapped_column(String(64), index=True)
    entry_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    entry_indicator: Mapped[str | None] = mapped_column(String(4))
    entry_tx_count: Mapped[int | None] = mapped_column(Integer)
    end_to_end_id: Mapped[str | None] = mapped_column(String(64), index=True)
    account_servicer_ref: Mapped[str | None] = mapped_column(String(64))
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    instruction_id: Mapped[str | None] = mapped_column(String(64))
    remittance: Mapped[str | None] = mapped_column(Text)
    creditor_reference: Mapped[str | None] = mapped_column(String(64))
    gross_minor: Mapped[int | None] = mapped_column(BigInteger)
    charges_minor: Mapped[int | None] = mapped_column(BigInteger)
    charges_included: Mapped[bool | None] = mapped_column(Boolean)
    kind: Mapped[str | None] = mapped_column(String(32))
    merchant_id: Mapped[str | None] = mapped_column(String(64))
    terminal_id: Mapped[str | None] = mapped_column(String(32))
    # First six and last four digits only: a full PAN is masked on read and never stored.
    masked_pan: Mapped[str | None] = mapped_column(String(19))


class SettlementStatement(Base):
    """One statement (camt.053 ``Stmt``) or notification (camt.054 ``Ntfctn``) of a file.

    ``sums`` are its booked entries (``Ntry/Amt`` by ``CdtDbtInd``): what moved on the account.
    ``first_day``/``last_day`` span its entries' booking days, so reconciliation can tell which
    days a flawed statement touches.
    """

    __tablename__ = "settlement_statements"
    __table_args__ = (
        Index("ix_settlement_statements_account_days", "account", "first_day", "last_day"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("settlement_files.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    statement_id: Mapped[str | None] = mapped_column(String(64))
    account: Mapped[str | None] = mapped_column(String(34))
    entries: Mapped[int] = mapped_column(Integer)
    lines: Mapped[int] = mapped_column(Integer)
    pending: Mapped[int] = mapped_column(Integer, default=0)
    sums: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    opening: Mapped[str | None] = mapped_column(String(48))  # "18.15 EUR", signed
    closing: Mapped[str | None] = mapped_column(String(48))
    first_day: Mapped[str | None] = mapped_column(String(10))
    last_day: Mapped[str | None] = mapped_column(String(10))
    warning_count: Mapped[int] = mapped_column(Integer, default=0)


class SettlementFileWarning(Base):
    """A flaw in a file's content, flagged for a person: code, element path and line, values."""

    __tablename__ = "settlement_warnings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    file_id: Mapped[int] = mapped_column(ForeignKey("settlement_files.id"), index=True)
    statement_row_id: Mapped[int | None] = mapped_column(
        ForeignKey("settlement_statements.id"), index=True
    )
    code: Mapped[str] = mapped_column(String(32))
    path: Mapped[str] = mapped_column(String(255))
    line: Mapped[int | None] = mapped_column(Integer)
    expected: Mapped[str | None] = mapped_column(String(255))
    found: Mapped[str | None] = mapped_column(String(255))
    message: Mapped[str] = mapped_column(Text)


class ReconRun(Base):
    """One reconciliation of a merchant's day: when, by whom, and what came out."""

    __tablename__ = "recon_runs"
    __table_args__ = (Index("ix_recon_runs_merchant_day", "merchant_id", "day"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    day: Mapped[str] = mapped_column(String(10))
    source: Mapped[str | None] = mapped_column(String(16))  # which file format was used
    counts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Statements of the day whose content is flawed (settlement_statements ids): a person looks.
    flawed_statements: Mapped[list[Any]] = mapped_column(JSON, default=list, server_default="[]")
    actor: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReconResult(Base):
    """The current verdict on one payment, refund or bank line of a day (the latest run's)."""

    __tablename__ = "recon_results"
    __table_args__ = (
        UniqueConstraint("merchant_id", "subject", "subject_id", name="uq_recon_results_subject"),
        Index("ix_recon_results_merchant_day_outcome", "merchant_id", "day", "outcome"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    run_id: Mapped[int] = mapped_column(ForeignKey("recon_runs.id"))
    day: Mapped[str] = mapped_column(String(10))
    subject: Mapped[str] = mapped_column(String(8))  # payment | refund | line
    subject_id: Mapped[str] = mapped_column(String(64))
    outcome: Mapped[str] = mapped_column(String(32))
    currency: Mapped[str] = mapped_column(String(3))
    expected_minor: Mapped[int | None] = mapped_column(BigInteger)
    settled_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_expected_minor: Mapped[int | None] = mapped_column(BigInteger)
    fee_charged_minor: Mapped[int | None] = mapped_column(BigInteger)
    linked: Mapped[list[Any]] = mapped_column(JSON, default=list)
    reason: Mapped[str] = mapped_column(Text)


class ReconDecision(Base):
    """A manager's decision that outlives re-runs: a link by hand, an accepted difference, a
    write-off. Reopening revokes it; nothing is deleted, so every decision stays audited."""

    __tablename__ = "recon_decisions"
    __table_args__ = (Index("ix_recon_decisions_merchant", "merchant_id", "revoked_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    action: Mapped[str] = mapped_column(String(24))  # link | accept_difference | write_off
    subject_id: Mapped[str | None] = mapped_column(String(64))
    line_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    note: Mapped[str] = mapped_column(Text)
    decided_by: Mapped[str] = mapped_column(String(64))
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_by: Mapped[str | None] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column()


# The promotion tables share this metadata (Alembic and ``create_all`` see them through it).
from gateway.adapters import promotion_models as promotion_models  # noqa: E402
from gateway.adapters import recon_part_models as recon_part_models  # noqa: E402
from gateway.adapters import webhook_models as webhook_models  # noqa: E402


class Approval(Base):
    """A supervisor's yes to one action at a till: who, what, which payment, how much, where.

    At the cashier screen it is used at once; through the API it is a single-use token (only
    its SHA-256 kept) that a till spends on the one action, payment and amount it names.
    """

    __tablename__ = "approvals"
    __table_args__ = (Index("ix_approvals_payment", "payment_id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[int] = mapped_column(ForeignKey("stores.id"))
    till_id: Mapped[int | None] = mapped_column(ForeignKey("tills.id"))
    action: Mapped[str] = mapped_column(String(16))  # refund | cancel | payment | override
    payment_id: Mapped[str | None] = mapped_column(String(36))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    approver_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id"))
    approver: Mapped[str] = mapped_column(String(64))
    method: Mapped[str] = mapped_column(String(16))  # pin | totp | token
    requested_by: Mapped[str] = mapped_column(String(100))
    address: Mapped[str | None] = mapped_column(String(64))
    token_hash: Mapped[str | None] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime | None] = mapped_column()
    used_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEntry(Base):
    """One row of the append-only audit trail; ``row_hash`` chains it to the row before it
    in its ``chain`` (``store:<id>``, ``merchant:<id>``, ``global`` or the closed ``legacy``)."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_merchant_created", "merchant_id", "created_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(100))
    staff_id: Mapped[int | None] = mapped_column(Integer)
    role: Mapped[str | None] = mapped_column(String(16))
    merchant_id: Mapped[int | None] = mapped_column(Integer)
    store_id: Mapped[int | None] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target_type: Mapped[str | None] = mapped_column(String(32))
    target_id: Mapped[str | None] = mapped_column(String(64))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    source: Mapped[str] = mapped_column(String(64))
    approved_by: Mapped[str | None] = mapped_column(String(100))
    chain: Mapped[str] = mapped_column(String(32))
    prev_hash: Mapped[str] = mapped_column(String(64))
    row_hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditChainHead(Base):
    """One audit chain's head, naming its last row: locked to append one to that chain."""

    __tablename__ = "audit_chain_heads"

    chain: Mapped[str] = mapped_column(String(32), primary_key=True)
    last_id: Mapped[int] = mapped_column(Integer, default=0)
    last_hash: Mapped[str] = mapped_column(String(64))


class LoginThrottle(Base):
    """Failed sign-ins per account (``account:<name>``) and per address (``address:<ip>``)."""

    __tablename__ = "login_throttle"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[datetime] = mapped_column()
    locked_until: Mapped[datetime | None] = mapped_column()


class Alert(Base):
    """An anomaly a rule found (gateway.domain.monitoring), for a person to acknowledge.

    ``open_key`` (rule, merchant, subject, window) is set while the alert is open and cleared
    when it is acknowledged: the unique constraint keeps one open alert per rule, subject and
    window, and later events of the same window update it instead of raising another.
    """

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_merchant_status_raised", "merchant_id", "status", "raised_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    store_id: Mapped[int | None] = mapped_column(ForeignKey("stores.id"))
    till_id: Mapped[int | None] = mapped_column(ForeignKey("tills.id"))
    rule: Mapped[str] = mapped_column(String(32))
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    subject_kind: Mapped[str] = mapped_column(String(16))  # till | cashier | card | store | …
    subject_key: Mapped[str] = mapped_column(String(100))
    window_key: Mapped[str] = mapped_column(String(20))
    window_minutes: Mapped[int] = mapped_column(Integer)
    # The numbers that triggered it; money as {"minor": 1234, "currency": "EUR"}.
    facts: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    occurrences: Mapped[int] = mapped_column(Integer, default=1)
    raised_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | acknowledged
    open_key: Mapped[str | None] = mapped_column(String(200), unique=True)
    acknowledged_by: Mapped[str | None] = mapped_column(String(100))
    acknowledged_at: Mapped[datetime | None] = mapped_column()
    note: Mapped[str | None] = mapped_column(Text)
