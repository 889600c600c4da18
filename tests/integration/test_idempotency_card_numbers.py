"""A client that puts a card number in its Idempotency-Key does not get it stored: the key is
kept as its SHA-256, and a retry with the same key still replays the first response. On
SQLite and PostgreSQL; the route fuzz test found such a key stored as sent."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.adapters.card_scan import scan_database
from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import IdempotencyRecord
from gateway.services import idempotency

VISA_TEST_CARD = "4111111111111111"  # Visa's published test number (Luhn-valid)


def test_a_key_holding_a_card_number_is_kept_as_its_hash(db: Database) -> None:
    calls: list[str] = []

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        calls.append("ran")
        return 201, {"payment": len(calls)}

    key = f"order {VISA_TEST_CARD}"
    first = idempotency.run_once(db, "api:1", key, "request-a", action)
    again = idempotency.run_once(db, "api:1", key, "request-a", action)
    plain = idempotency.run_once(db, "api:1", "order-7", "request-b", action)
    assert (first.replayed, again.replayed, plain.replayed) == (False, True, False)
    assert again.body == first.body == {"payment": 1} and calls == ["ran", "ran"]

    with db.engine.connect() as conn:
        assert [str(hit) for hit in scan_database(conn)] == []
        keys = sorted(conn.execute(select(IdempotencyRecord.key)).scalars())
    assert keys[0] == "order-7"  # a key without a card number is stored as sent
    assert keys[1].startswith("sha256:") and len(keys[1]) == 71
