"""Idempotent requests: the same ``Idempotency-Key`` and body replay the first response.

The record is written in the same transaction as the work it describes, under a unique
(scope, key) constraint: of concurrent duplicates exactly one commits, the others fail the
constraint, roll back and replay what the winner stored.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import IdempotencyRecord, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.errors import (
    IdempotencyKeyReused,
    IdempotencyRequestInProgress,
    InvalidInput,
    KassaError,
)

MAX_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class Outcome:
    status: int
    body: dict[str, Any]
    replayed: bool


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def check_key(key: str) -> str:
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


def stored_key(key: str) -> str:
    """The key as stored: a key holding a card number is kept as its SHA-256 (a full card
    number is never stored, whatever a client puts in a header), any other as sent."""
    if scrub_card_numbers(key) == key:
        return key
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def run_once(
    db: Database,
    scope: str,
    key: str,
    fingerprint: str,
    action: Callable[[UnitOfWork], tuple[int, dict[str, Any]]],
    *,
    look_first: bool = True,
) -> Outcome:
    """Run ``action`` once per (scope, key); later calls get the stored response back.

    ``look_first=False`` is for an action that only writes to the database (no device, bank or
    other outside party hears of it before the commit): the action runs without asking for a
    stored response first, and the record's ``INSERT … ON CONFLICT DO NOTHING`` at its end
    decides. A key already used rolls the whole unit of work back and replays what was stored,
    as does an action refused on a retry (its first run may have used what it needs, such as
    an approval token). One round trip fewer for every new key.
    """
    key = stored_key(key)
    try:
        with db.unit_of_work() as uow:
            if look_first:
                stored = _stored(uow, scope, key, fingerprint)
                if stored:
                    return stored
            try:
                status, body = action(uow)
            except KassaError:
                if look_first:
                    raise
                uow.rollback()
                stored = _stored(uow, scope, key, fingerprint)
                if stored:
                    return stored
                raise
            # A Core INSERT: one row needs no ORM object (nothing reads it back in this unit).
            record = {
                "scope": scope,
                "key": key,
                "request_hash": fingerprint,
                "response_status": status,
                "response_body": json.dumps(body),
                "created_at": utcnow(),
            }
            if look_first:
                uow.session.execute(_INSERT, record)
            elif uow.session.execute(_insert_new(db.dialect), record).first() is None:
                uow.rollback()  # the key was used (perhaps just now, by a double click)
                raise _KeyTaken
            uow.commit()
            return Outcome(status, body, replayed=False)
    except (IntegrityError, _KeyTaken):
        pass  # a concurrent duplicate committed first (PostgreSQL); replay what it stored
    with db.unit_of_work(readonly=True) as uow:
        stored = _stored(uow, scope, key, fingerprint)
    if stored:
        return stored
    raise IdempotencyRequestInProgress(
        "another request with this Idempotency-Key is being processed; retry shortly"
    )


# Built once, plain columns (no ORM object): the lookup runs before every idempotent request.
_RECORD = select(
    IdempotencyRecord.request_hash,
    IdempotencyRecord.response_status,
    IdempotencyRecord.response_body,
).where(IdempotencyRecord.scope == bindparam("scope"), IdempotencyRecord.key == bindparam("key"))
_INSERT = insert(cast(Table, IdempotencyRecord.__table__))


class _KeyTaken(Exception):
    """The record's INSERT found the key already stored (``look_first=False``)."""


@lru_cache(maxsize=4)
def _insert_new(dialect: str) -> Any:
    """``INSERT … ON CONFLICT (scope, key) DO NOTHING RETURNING id``: no row back if the key
    is stored (or being stored by a transaction not yet committed, which it waits for)."""
    table = cast(Table, IdempotencyRecord.__table__)
    if dialect not in ("postgresql", "sqlite"):
        return insert(table).returning(table.c.id)  # a duplicate fails the unique constraint
    make = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    return make.on_conflict_do_nothing(index_elements=["scope", "key"]).returning(table.c.id)


def _stored(uow: UnitOfWork, scope: str, key: str, fingerprint: str) -> Outcome | None:
    record = uow.session.execute(_RECORD, {"scope": scope, "key": key}).first()
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            "this Idempotency-Key was already used with a different request; "
            "use a new key for a new payment"
        )
    return Outcome(record.response_status, json.loads(record.response_body), replayed=True)
