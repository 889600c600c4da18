"""Idempotency keys: a retried request gets the first answer, never a second money movement.

A key belongs to one merchant and one request body. The first successful answer is stored in
the same transaction as the change it reports, so either both exist or neither does; errors are
not stored, so a client may fix its request and retry. The same key with another body is a 422.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from sandbox_bank.errors import IdempotencyKeyMissing, IdempotencyKeyReused, InvalidRequest
from sandbox_bank.models import IdempotencyRecord, utcnow

Answer = tuple[int, dict[str, Any]]


def check_key(key: str | None) -> str:
    if key is None or not key.strip():
        raise IdempotencyKeyMissing(
            "money-moving calls need an Idempotency-Key header (a unique value per request,"
            " repeated on every retry of it)"
        )
    if len(key) > 255 or not key.isprintable():
        raise InvalidRequest("Idempotency-Key must be at most 255 printable characters")
    return key.strip()


def request_hash(method: str, path: str, body: Any) -> str:
    canonical = json.dumps([method, path, body], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def run_once(
    session: Session,
    merchant_id: str,
    key: str,
    fingerprint: str,
    action: Callable[[], Answer],
    on_conflict: Callable[[], Answer] | None = None,
) -> Answer:
    """Replay the stored answer for ``key``, or run ``action`` and store its answer with it.

    ``action`` adds its rows to ``session`` without committing; this commits once. If the
    commit loses a race (another request stored the same key first), the winner's answer is
    replayed; any other integrity conflict goes to ``on_conflict``.
    """
    stored = _stored(session, merchant_id, key, fingerprint)
    if stored is not None:
        return stored
    status, body = action()
    session.add(
        IdempotencyRecord(
            merchant_id=merchant_id,
            key=key,
            request_hash=fingerprint,
            status_code=status,
            body=json.dumps(body),
            created_at=utcnow(),
        )
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        stored = _stored(session, merchant_id, key, fingerprint)
        if stored is not None:
            return stored
        if on_conflict is None:
            raise
        return on_conflict()
    return status, body


def _stored(session: Session, merchant_id: str, key: str, fingerprint: str) -> Answer | None:
    record = session.scalar(
        select(IdempotencyRecord).where(
            IdempotencyRecord.merchant_id == merchant_id, IdempotencyRecord.key == key
        )
    )
    if record is None:
        return None
    if record.request_hash != fingerprint:
        raise IdempotencyKeyReused(
            f"Idempotency-Key {key!r} was first used with a different request; use a new key"
            " for a new request"
        )
    return record.status_code, json.loads(record.body)
