"""The audit trail: one append-only row per action that moves money or changes access or
configuration, each chained to the one before it in its scope by a SHA-256 hash so that an edit
shows.

:func:`record` adds the row to the caller's unit of work, so it commits or rolls back with
the action it describes. The trail is many chains, one per scope (:func:`chain_of`): a store's
rows (``store:<id>``), a merchant's rows that name no store (``merchant:<id>``: merchant-wide,
staff and system actions) and the rows that name neither (``global``). Rows written before
chains had scopes stay in the one chain they were written in, ``legacy``, which takes no new
rows. Each chain is serialised through its own row of ``audit_chain_heads``: PostgreSQL locks
it until the transaction ends, so two stores' sales never wait for each other's head; on
SQLite every writing transaction already holds the database's write lock (``BEGIN
IMMEDIATE``). The rows are linked at the very end, just before the transaction commits
(:func:`link_pending`, a ``before_commit`` hook), so a head's lock is held for the last few
statements only. A row's hash covers a canonical JSON serialisation of every column but its id
and chain key (the key follows from the store and merchant it names), plus the previous row's
hash in its chain; the head remembers the chain's last row, so deleting rows at the end shows
too. :func:`verify` walks every chain.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Select, Table, bindparam, event, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, SessionTransaction

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import AuditChainHead, AuditEntry, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.services.staff.audit_context import current_acting, current_source

GENESIS = "0" * 64
GLOBAL = "global"  # the chain of rows that name neither a store nor a merchant
LEGACY = "legacy"  # the one chain of the rows written before chains had scopes (0022)
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


def chain_of(merchant_id: int | None, store_id: int | None) -> str:
    """The chain a row joins: its store's, else its merchant's, else the global one."""
    if store_id is not None:
        return f"store:{store_id}"
    if merchant_id is not None:
        return f"merchant:{merchant_id}"
    return GLOBAL


@event.listens_for(Session, "before_commit")
def link_pending(session: Session) -> None:
    """Link the transaction's rows into their chains and write them: each chain's head is
    locked from here to the commit that follows (heads in the order of their keys, so two
    transactions that both touch two chains cannot deadlock)."""
    if session.in_nested_transaction():
        return  # a savepoint: the rows wait for the transaction's own commit
    pending = session.info.pop(_PENDING, None)
    approver = session.info.pop(_APPROVER, None)
    if not pending:
        return
    session.flush()  # the transaction's own writes first: the heads are the last locks taken
    chains: dict[str, list[AuditEntry]] = {}
    for _, row in pending:
        if approver and not row.approved_by:
            row.approved_by = approver
        row.chain = chain_of(row.merchant_id, row.store_id)
        chains.setdefault(row.chain, []).append(row)
    one_statement = session.get_bind().dialect.name == "postgresql"
    for chain in sorted(chains):
        rows = chains[chain]
        last_hash = _locked_head(session, chain)
        if len(rows) == 1 and one_statement:
            _link_one(session, rows[0], last_hash)
            continue
        for row in rows:
            row.prev_hash = last_hash
            row.row_hash = last_hash = row_hash(row, last_hash)
            session.add(row)
            session.flush()
        heads = cast(Table, AuditChainHead.__table__)
        session.execute(
            update(heads)
            .where(heads.c.chain == chain)
            .values(last_id=rows[-1].id, last_hash=last_hash)
        )


def _link_one(session: Session, row: AuditEntry, last_hash: str) -> None:
    """PostgreSQL, one row of a chain (a payment's creation, most audited actions): the row is
    inserted and its locked head moved to it in one statement (``WITH ins AS (INSERT …
    RETURNING id) UPDATE audit_chain_heads …``), one round trip fewer while the head is held.
    The row is linked exactly as :func:`link_pending` links it."""
    row.prev_hash = last_hash
    row.row_hash = row_hash(row, last_hash)
    values = {f"entry_{name}": getattr(row, name) for name in _LINKED}
    values |= {"chain_key": row.chain}
    row.id = session.execute(_insert_and_move_head(), values).scalar_one()


_LINKED = (*HASHED, "chain", "prev_hash", "row_hash")


@lru_cache(maxsize=1)
def _insert_and_move_head() -> Any:
    """Built once (a statement's construction costs more than its execution's cache lookup):
    ``WITH inserted AS (INSERT INTO audit_log … RETURNING id) UPDATE audit_chain_heads SET
    last_id, last_hash WHERE chain RETURNING last_id``."""
    entries, heads = cast(Table, AuditEntry.__table__), cast(Table, AuditChainHead.__table__)
    inserted = (
        insert(entries)
        .values({n: bindparam(f"entry_{n}", type_=entries.c[n].type) for n in _LINKED})
        .returning(entries.c.id)
        .cte("inserted")
    )
    return (
        update(heads)
        .where(heads.c.chain == bindparam("chain_key"))
        .values(
            last_id=select(inserted.c.id).scalar_subquery(), last_hash=bindparam("entry_row_hash")
        )
        .returning(heads.c.last_id)
    )


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


def _locked_head(session: Session, chain: str) -> str:
    """The last hash of ``chain``, its head locked until the transaction ends: one statement
    that makes the head of a chain's first row and locks an existing one (``INSERT … ON
    CONFLICT DO UPDATE … RETURNING``; two writers racing to make it agree on one)."""
    upsert = _head_upsert(session.get_bind().dialect.name)
    last_hash: str = session.execute(upsert, {"chain_key": chain}).scalar_one()
    return last_hash


@lru_cache(maxsize=4)
def _head_upsert(dialect: str) -> Any:
    """Built once per dialect, the chain's key bound (``chain_key``)."""
    heads = cast(Table, AuditChainHead.__table__)
    make = postgresql.insert(heads) if dialect == "postgresql" else sqlite.insert(heads)
    upsert = make.values(
        chain=bindparam("chain_key"), last_id=0, last_hash=GENESIS
    ).on_conflict_do_update(index_elements=[heads.c.chain], set_={"chain": make.excluded.chain})
    return upsert.returning(heads.c.last_hash)


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
class Break:
    """Where one chain stops adding up: its key, the row (if one is to blame) and why."""

    chain: str
    row_id: int | None
    reason: str
    intact_before: int  # the chain's rows before the break, all of which add up


@dataclass(frozen=True, slots=True)
class Verification:
    checked: int  # rows whose hash and link add up
    chains: int
    breaks: tuple[Break, ...] = ()

    @property
    def intact(self) -> bool:
        return not self.breaks


@dataclass(slots=True)
class _Walked:
    last_hash: str = GENESIS
    last_id: int = 0
    checked: int = 0


def verify(uow: UnitOfWork, batch: int = 1000) -> Verification:
    """Walk every chain from its first row (all of them in one pass in id order, which is each
    chain's order); a chain stops at its first row that does not add up, the others go on."""
    walked: dict[str, _Walked] = {}
    breaks: dict[str, Break] = {}
    for row in _rows(uow, batch):
        if row.chain in breaks:
            continue
        chain = walked.setdefault(row.chain, _Walked())
        reason = _fault(row, chain.last_hash)
        if reason:
            breaks[row.chain] = Break(row.chain, row.id, reason, chain.checked)
            continue
        chain.last_hash, chain.last_id = row.row_hash, row.id
        chain.checked += 1
    heads = {head.chain: head for head in uow.session.scalars(select(AuditChainHead))}
    for key, chain in walked.items():
        if key not in breaks and key not in heads:
            breaks[key] = Break(key, None, "the chain head row is missing", chain.checked)
    for key, head in heads.items():
        chain = walked.get(key, _Walked())
        if key in breaks or (head.last_id, head.last_hash) == (chain.last_id, chain.last_hash):
            continue
        breaks[key] = Break(
            key,
            head.last_id or None,
            f"the chain head names row {head.last_id}, the chain ends at row {chain.last_id}: "
            "rows were deleted or added outside Kassa",
            chain.checked,
        )
    return Verification(
        sum(chain.checked for chain in walked.values()),
        len(walked.keys() | heads.keys()),
        tuple(breaks[key] for key in sorted(breaks)),
    )


def _fault(row: AuditEntry, previous: str) -> str:
    """Why ``row`` does not follow ``previous`` in its chain, or "" when it does."""
    if row.prev_hash != previous:
        return "its prev_hash is not the previous row's hash"
    if row.row_hash != row_hash(row, previous):
        return "its contents do not match its row_hash"
    if row.chain not in (LEGACY, chain_of(row.merchant_id, row.store_id)):
        return f"it names another scope ({chain_of(row.merchant_id, row.store_id)}) than its chain"
    return ""


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
    "chain",
)


def csv_row(row: AuditEntry) -> list[str]:
    values = {name: getattr(row, name) for name in CSV_COLUMNS}
    values["created_at"] = row.created_at.astimezone(UTC).isoformat(timespec="seconds")
    for name in ("before", "after"):
        values[name] = "" if values[name] is None else json.dumps(values[name], sort_keys=True)
    return [csv_safe(values[name]) for name in CSV_COLUMNS]
