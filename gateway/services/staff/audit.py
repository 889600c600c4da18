"""The audit trail: one append-only row per action that moves money or changes access or
configuration, each chained to the one before by a SHA-256 hash so that an edit shows.

:func:`record` adds the row to the caller's unit of work, so it commits or rolls back with
the action it describes. The chain is serialised through the single row of
``audit_chain_head``: PostgreSQL locks it (``SELECT … FOR UPDATE``) until the transaction
ends; on SQLite every writing transaction already holds the database's write lock
(``BEGIN IMMEDIATE``). The rows are linked into the chain at the very end, just before the
transaction commits (:func:`link_pending`, a ``before_commit`` hook), so the head's lock is
held for the last few statements only, not for the whole of the audited action: audited
writes on PostgreSQL (every payment creation) no longer queue behind each other's work.
A row's hash covers a canonical JSON serialisation of every column but its id, plus the
previous row's hash; the head remembers the last row, so deleting rows at the end shows too.
:func:`verify` walks the chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Select, Table, event, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import AuditChainHead, AuditEntry, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.services.staff.audit_context import current_acting, current_source

GENESIS = "0" * 64
_PENDING = "kassa.audit.pending"  # the key of a session's unlinked rows in ``Session.info``
_APPROVER = "kassa.audit.approver"  # who approved this transaction's action, if anyone
# The columns a row's hash covers, in this order (``id`` is left out: sequences skip numbers).
HASHED = (
    "created_at",
    "actor",
    "staff_id",
    "role",
    "merchant_id",
    "store_id",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "source",
    "approved_by",
)


def record(
    uow: UnitOfWork,
    action: str,
    *,
    target: tuple[str, object] | None = None,
    before: Mapping[str, Any] | None = None,
    after: Mapping[str, Any] | None = None,
    actor: str | None = None,
    staff_id: int | None = None,
    role: str | None = None,
    merchant_id: int | None = None,
    store_id: int | None = None,
    source: str | None = None,
    approved_by: str | None = None,
) -> AuditEntry:
    """Append one row to the trail in the caller's transaction (not committed here; its id
    and hashes are set when the transaction commits).

    Who and from where default to what the entry point set (:mod:`audit_context`); a given
    value wins. Text in ``before``/``after`` is scrubbed of card numbers.
    """
    acting = current_acting()
    person = acting if acting is not None and actor in (None, acting.actor) else None
    row = AuditEntry(
        created_at=utcnow(),
        actor=(actor or (acting.actor if acting else "system"))[:100],
        staff_id=staff_id if staff_id is not None else person.staff_id if person else None,
        role=role or (person.role if person else None),
        merchant_id=merchant_id if merchant_id is not None else _from(acting, "merchant_id"),
        store_id=store_id if store_id is not None else _from(acting, "store_id"),
        action=action[:64],
        target_type=str(target[0])[:32] if target else None,
        target_id=str(target[1])[:64] if target else None,
        before=_clean(before),
        after=_clean(after),
        source=(source or current_source())[:64],
        approved_by=approved_by[:100] if approved_by else None,
    )
    # Linked and written by link_pending, at commit; kept with the (sub)transaction it belongs
    # to, so that a savepoint rolled back takes its rows with it.
    current = uow.session.get_nested_transaction() or uow.session.get_transaction()
    _pending(uow.session).append((current, row))
    return row


def approved_by(uow: UnitOfWork, approver: str) -> None:
    """Name the supervisor who approved this transaction's action: every row it records
    (before or after this call) carries ``approved_by`` unless given another."""
    uow.session.info[_APPROVER] = approver[:100]


def _pending(session: Session) -> list[tuple[SessionTransaction | None, AuditEntry]]:
    """The rows recorded in ``session``'s transaction and not linked into the chain yet."""
    rows: list[tuple[SessionTransaction | None, AuditEntry]]
    rows = session.info.setdefault(_PENDING, [])
    return rows


@event.listens_for(Session, "before_commit")
def link_pending(session: Session) -> None:
    """Link the transaction's rows into the chain and write them: the chain head is locked
    from here to the commit that follows."""
    if session.in_nested_transaction():
        return  # a savepoint: the rows wait for the transaction's own commit
    rows = session.info.pop(_PENDING, None)
    approver = session.info.pop(_APPROVER, None)
    if not rows:
        return
    session.flush()  # the transaction's own writes first: the head is the last lock taken
    head = _locked_head(session)
    if len(rows) == 1 and session.get_bind().dialect.name == "postgresql":
        _link_one(session, head, rows[0][1], approver)
        return
    for _, row in rows:
        if approver and not row.approved_by:
            row.approved_by = approver
        row.prev_hash = head.last_hash
        row.row_hash = row_hash(row, head.last_hash)
        session.add(row)
        session.flush()
        head.last_id, head.last_hash = row.id, row.row_hash
    session.flush()


def _link_one(
    session: Session, head: AuditChainHead, row: AuditEntry, approver: str | None
) -> None:
    """PostgreSQL, one row (a payment's creation, most audited actions): the row is inserted
    and the locked head moved to it in one statement (``WITH ins AS (INSERT … RETURNING id)
    UPDATE audit_chain_head …``), one round trip fewer while every audited transaction of every
    store waits for the head. The row is linked exactly as :func:`link_pending` links it."""
    if approver and not row.approved_by:
        row.approved_by = approver
    row.prev_hash = head.last_hash
    row.row_hash = row_hash(row, head.last_hash)
    values = {name: getattr(row, name) for name in (*HASHED, "prev_hash", "row_hash")}
    entries, heads = cast(Table, AuditEntry.__table__), cast(Table, AuditChainHead.__table__)
    inserted = insert(entries).values(values).returning(entries.c.id).cte("inserted")
    last_id = session.execute(
        update(heads)
        .where(heads.c.id == head.id)
        .values(last_id=select(inserted.c.id).scalar_subquery(), last_hash=row.row_hash)
        .returning(heads.c.last_id)
    ).scalar_one()
    row.id = last_id
    # The head object now holds what the database holds: no second UPDATE at the next flush.
    set_committed_value(head, "last_id", last_id)
    set_committed_value(head, "last_hash", row.row_hash)


@event.listens_for(Session, "after_soft_rollback")
def _forget_pending(session: Session, previous_transaction: SessionTransaction) -> None:
    """A rolled-back action leaves no row behind (nor for a later commit of the session): the
    rows recorded within the transaction or savepoint rolled back go with it."""
    rows = session.info.get(_PENDING)
    if rows:
        rows[:] = [(t, row) for t, row in rows if not _within(t, previous_transaction)]
    if not previous_transaction.nested:
        session.info.pop(_APPROVER, None)  # the approved action did not happen


def _within(transaction: SessionTransaction | None, outer: SessionTransaction) -> bool:
    while transaction is not None:
        if transaction is outer:
            return True
        transaction = transaction.parent
    return False


def _locked_head(session: Session) -> AuditChainHead:
    """The chain head, locked until the transaction ends (made if an emptied table lacks it;
    the migration makes it, and two writers racing to make it agree on one)."""
    query = select(AuditChainHead).where(AuditChainHead.id == 1).with_for_update()
    head = session.scalars(query.execution_options(populate_existing=True)).first()
    if head is not None:
        return head
    try:
        with session.begin_nested():
            session.add(AuditChainHead(id=1, last_id=0, last_hash=GENESIS))
    except IntegrityError:
        pass  # another writer made it first
    return session.scalars(query.execution_options(populate_existing=True)).one()


def _from(acting: Any, name: str) -> int | None:
    value = getattr(acting, name, None) if acting is not None else None
    return value if isinstance(value, int) else None


def _clean(values: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """JSON-safe values with every card number masked (dates as ISO text)."""
    if values is None:
        return None
    cleaned = json.loads(json.dumps(dict(values), default=_plain))
    return _scrub(cleaned)  # type: ignore[no-any-return]


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, set | frozenset | tuple):
        return sorted(value, key=str)
    return str(value)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_card_numbers(value)
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _scrub(v) for k, v in value.items()}
    return value


def canonical(row: AuditEntry) -> str:
    """The row as the hash sees it: sorted-key compact JSON, times as UTC with microseconds."""
    values: dict[str, Any] = {name: getattr(row, name) for name in HASHED}
    values["created_at"] = row.created_at.astimezone(UTC).isoformat(timespec="microseconds")
    return json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def row_hash(row: AuditEntry, prev_hash: str) -> str:
    return hashlib.sha256((prev_hash + canonical(row)).encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int
    broken_id: int | None = None
    reason: str = ""

    @property
    def intact(self) -> bool:
        return self.broken_id is None and not self.reason


def verify(uow: UnitOfWork, batch: int = 1000) -> Verification:
    """Walk the chain from the first row; stop at the first row that does not add up."""
    previous = GENESIS
    checked = 0
    last_id = 0
    for row in _rows(uow, batch):
        if row.prev_hash != previous:
            return Verification(checked, row.id, "its prev_hash is not the previous row's hash")
        if row.row_hash != row_hash(row, previous):
            return Verification(checked, row.id, "its contents do not match its row_hash")
        previous, last_id = row.row_hash, row.id
        checked += 1
    head = uow.session.get(AuditChainHead, 1)
    if head is None:
        if checked == 0:
            return Verification(0)
        return Verification(checked, None, "the chain head row is missing")
    if (head.last_id, head.last_hash) != (last_id, previous):
        return Verification(
            checked,
            head.last_id or None,
            f"the chain head names row {head.last_id}, the log ends at row {last_id}: "
            "rows were deleted or added outside Kassa",
        )
    return Verification(checked)


def _rows(uow: UnitOfWork, batch: int) -> Iterator[AuditEntry]:
    after = 0
    while True:
        rows = list(
            uow.session.scalars(
                select(AuditEntry).where(AuditEntry.id > after).order_by(AuditEntry.id).limit(batch)
            )
        )
        if not rows:
            return
        yield from rows
        after = rows[-1].id
        uow.session.expunge_all()


@dataclass
class AuditFilter:
    """What the portal's audit page asks for; dates are UTC days, inclusive."""

    merchant_id: int
    date_from: date | None = None
    date_to: date | None = None
    actor: str = ""
    action: str = ""
    store_id: int | None = None
    limit: int | None = 100
    offset: int = 0

    def query(self) -> Select[Any]:
        query = select(AuditEntry).where(AuditEntry.merchant_id == self.merchant_id)
        if self.date_from:
            query = query.where(
                AuditEntry.created_at >= datetime.combine(self.date_from, time(), UTC)
            )
        if self.date_to:
            end = datetime.combine(self.date_to, time(), UTC) + timedelta(days=1)
            query = query.where(AuditEntry.created_at < end)
        if self.actor:
            query = query.where(AuditEntry.actor.contains(self.actor, autoescape=True))
        if self.action:
            query = query.where(AuditEntry.action == self.action)
        if self.store_id is not None:
            query = query.where(AuditEntry.store_id == self.store_id)
        return query


def list_entries(uow: UnitOfWork, wanted: AuditFilter) -> tuple[list[AuditEntry], int]:
    """The newest rows first, one page of them, and how many match in all."""
    query = wanted.query()
    total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = query.order_by(AuditEntry.id.desc()).offset(wanted.offset)
    if wanted.limit is not None:
        page = page.limit(wanted.limit)
    return list(uow.session.scalars(page)), total


def actions(uow: UnitOfWork, merchant_id: int) -> list[str]:
    query = (
        select(AuditEntry.action)
        .where(AuditEntry.merchant_id == merchant_id)
        .distinct()
        .order_by(AuditEntry.action)
    )
    return list(uow.session.scalars(query))


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet shows as text: one that would start a formula gets a quote first
    (OWASP's CSV injection advice)."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_STARTS) else text


CSV_COLUMNS = (
    "id",
    "created_at",
    "actor",
    "staff_id",
    "role",
    "store_id",
    "action",
    "target_type",
    "target_id",
    "before",
    "after",
    "source",
    "approved_by",
    "row_hash",
)


def csv_row(row: AuditEntry) -> list[str]:
    values = {name: getattr(row, name) for name in CSV_COLUMNS}
    values["created_at"] = row.created_at.astimezone(UTC).isoformat(timespec="seconds")
    for name in ("before", "after"):
        values[name] = "" if values[name] is None else json.dumps(values[name], sort_keys=True)
    return [csv_safe(values[name]) for name in CSV_COLUMNS]
