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
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import IdempotencyRecord, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.errors import IdempotencyKeyReused, IdempotencyRequestInProgress, InvalidInput

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
) -> Outcome:
    """Run ``action`` once per (scope, key); later calls get the stored response back."""
    key = stored_key(key)
    try:
        with db.unit_of_work() as uow:
            stored = _stored(uow, scope, key, fingerprint)
            if stored:
                return stored
            status, body = action(uow)
            # A Core INSERT: one row needs no ORM object (nothing reads it back in this unit).
            uow.session.execute(
                _INSERT,
                {
                    "scope": scope,
                    "key": key,
                    "request_hash": fingerprint,
                    "response_status": status,
                    "response_body": json.dumps(body),
                    "created_at": utcnow(),
                },
            )
            uow.commit()
            return Outcome(status, body, replayed=False)
    except IntegrityError:
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
