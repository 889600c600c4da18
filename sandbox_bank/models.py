"""The sandbox bank's own tables (SQLAlchemy 2 typed mappings) and its database handle.

The sandbox is not the gateway: it has its own metadata and database file, created with
``create_all`` (no migrations; delete the file to start afresh). Money is always an integer of
minor units beside an ISO 4217 code. Times are stored as naive UTC and read back timezone-aware.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Dialect,
    ForeignKey,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    create_engine,
    event,
    inspect,
    make_url,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in Python, naive UTC in the column (SQLite keeps no offset)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("the sandbox bank stores timezone-aware datetimes only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime, dict[str, Any]: JSON}


class Merchant(Base):
    __tablename__ = "merchants"

    merchant_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(140))
    currency: Mapped[str] = mapped_column(String(3))
    callback_url: Mapped[str] = mapped_column(String(500))
    api_key_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 hex of the bearer key
    webhook_secret: Mapped[str] = mapped_column(String(200))  # needed in clear to sign
    fee_percent_bp: Mapped[int] = mapped_column(Integer)  # basis points: 150 = 1.50 %
    fee_fixed_minor: Mapped[int] = mapped_column(Integer)
    iban: Mapped[str] = mapped_column(String(34))
    faults: Mapped[dict[str, Any]] = mapped_column(default=dict)


class Wallet(Base):
    __tablename__ = "wallets"

    wallet_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    balance_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))


class Payment(Base):
    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_payment_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"), index=True)
    reference: Mapped[str] = mapped_column(String(25), unique=True)  # EMV tag 62-05
    bill_number: Mapped[str | None] = mapped_column(String(25))
    terminal_label: Mapped[str | None] = mapped_column(String(25))
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.wallet_id"))
    paid_at: Mapped[datetime]
    # Reserved by refunds that are pending or succeeded; the ceiling check runs on this column.
    refunded_minor: Mapped[int] = mapped_column(Integer, default=0)
    settlement_id: Mapped[str | None] = mapped_column(String(40), index=True)


class Refund(Base):
    __tablename__ = "refunds"
    __table_args__ = (UniqueConstraint("merchant_id", "refund_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    bank_refund_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"))
    refund_id: Mapped[str] = mapped_column(String(64))  # the gateway's id
    # X-Request-Id of the request that asked for it: its callback carries it back.
    request_id: Mapped[str | None] = mapped_column(String(128))
    payment_id: Mapped[int] = mapped_column(ForeignKey("payments.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    status: Mapped[str] = mapped_column(String(16))  # pending | succeeded | failed
    reason: Mapped[str | None] = mapped_column(String(200))
    idempotency_key: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
    process_after: Mapped[datetime]
    processed_at: Mapped[datetime | None]
    settlement_id: Mapped[str | None] = mapped_column(String(40), index=True)


class IdempotencyRecord(Base):
    """The first answer to a request with this key, replayed for every retry of it."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("merchant_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]


class Settlement(Base):
    __tablename__ = "settlements"
    __table_args__ = (UniqueConstraint("merchant_id", "settlement_date"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    settlement_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"))
    settlement_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    gross_minor: Mapped[int] = mapped_column(Integer)
    fees_minor: Mapped[int] = mapped_column(Integer)
    refunds_minor: Mapped[int] = mapped_column(Integer)
    net_minor: Mapped[int] = mapped_column(Integer)
    payment_count: Mapped[int] = mapped_column(Integer)
    refund_count: Mapped[int] = mapped_column(Integer)
    opening_balance_minor: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    camt053: Mapped[str] = mapped_column(Text)
    camt054: Mapped[str] = mapped_column(Text)
    csv: Mapped[str] = mapped_column(Text)


class Delivery(Base):
    """One callback event; re-deliveries reuse its ``event_id`` (the ``webhook-id``)."""

    __tablename__ = "deliveries"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    merchant_id: Mapped[str] = mapped_column(ForeignKey("merchants.merchant_id"), index=True)
    type: Mapped[str] = mapped_column(String(40))
    body: Mapped[str] = mapped_column(Text)  # fixed at creation: every attempt sends these bytes
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    created_at: Mapped[datetime]
    delivered_at: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
    # X-Request-Id of the request that caused the event, sent with every attempt (and logged).
    request_id: Mapped[str | None] = mapped_column(String(128))


class DeliveryAttempt(Base):
    """Every attempt, including dropped ones and duplicates, for the record and the tests."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("deliveries.id"), index=True)
    attempted_at: Mapped[datetime]
    status_code: Mapped[int | None]
    error: Mapped[str | None] = mapped_column(String(500))
    dropped: Mapped[bool] = mapped_column(Boolean, default=False)
    wrong_signature: Mapped[bool] = mapped_column(Boolean, default=False)


class Database:
    """Engine and sessions for the sandbox bank; ``session()`` rolls back unless committed."""

    def __init__(self, url: str) -> None:
        if url.startswith("postgresql://"):  # psycopg 3, as the gateway uses
            url = "postgresql+psycopg://" + url[len("postgresql://") :]
        sqlite = url.startswith("sqlite")
        if sqlite:
            _make_parent_directory(url)
        self.engine = create_engine(url, connect_args={"timeout": 30} if sqlite else {})
        if sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    def create_all(self) -> None:
        Base.metadata.create_all(self.engine)
        self._add_missing_columns()

    def _add_missing_columns(self) -> None:
        """Columns newer than a sandbox database file (created before they existed): added,
        nullable, so an old file keeps working without being deleted."""
        known = inspect(self.engine)
        with self.engine.begin() as conn:
            for table in Base.metadata.sorted_tables:
                have = {c["name"] for c in known.get_columns(table.name)}
                for column in table.columns:
                    if column.name not in have and column.nullable:
                        kind = column.type.compile(dialect=self.engine.dialect)
                        conn.execute(
                            text(f'ALTER TABLE {table.name} ADD COLUMN "{column.name}" {kind}')
                        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._sessions() as session:
            yield session  # leaving without session.commit() rolls back

    def dispose(self) -> None:
        self.engine.dispose()


def _make_parent_directory(url: str) -> None:
    """SQLite creates the database file on first connect, but not its directory."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
