"""Migration 0022_audit_chains on SQLite and PostgreSQL: the rows of the one chain written
before it keep their hashes and verify as the chain ``legacy``, new rows go to their scope's
chain, and a downgrade that would have to rehash rows is refused."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from alembic import command
from sqlalchemy import Table, insert, select, text

from gateway.adapters.db import Database, alembic_config
from gateway.adapters.models import AuditEntry
from gateway.services.staff import audit
from tests.integration.test_card_scan import fresh  # noqa: F401  (the fixture)

BEFORE = "0021_parts"


def plant_old_chain(database: Database, count: int) -> list[str]:
    """``count`` rows chained as Kassa wrote them before 0022, with the single head."""
    hashes, previous = [], audit.GENESIS
    entries = cast(Table, AuditEntry.__table__)
    with database.engine.begin() as conn:
        for n in range(count):
            row = AuditEntry(
                created_at=datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=n),
                actor="staff:before", merchant_id=1, store_id=n % 2 + 1, action="test.old",
                after={"n": n}, source="cli",
            )  # fmt: skip
            values: dict[str, Any] = {name: getattr(row, name) for name in audit.HASHED}
            values["prev_hash"] = previous
            values["row_hash"] = previous = audit.row_hash(row, previous)
            last_id = conn.execute(insert(entries).values(values).returning(entries.c.id))
            hashes.append(previous)
        conn.execute(
            text("UPDATE audit_chain_head SET last_id = :i, last_hash = :h WHERE id = 1"),
            {"i": last_id.scalar_one(), "h": previous},
        )
    return hashes


def test_old_rows_verify_as_the_legacy_chain_and_new_rows_get_chains_of_their_own(
    fresh: Database,  # noqa: F811
) -> None:
    fresh.upgrade(BEFORE)
    hashes = plant_old_chain(fresh, 3)
    fresh.upgrade()
    with fresh.unit_of_work() as uow:
        result = audit.verify(uow)
        stored = list(uow.session.execute(select(AuditEntry.chain, AuditEntry.row_hash)))
    assert (result.intact, result.checked, result.chains) == (True, 3, 1)
    assert stored == [("legacy", h) for h in hashes]  # not one hash rewritten
    with fresh.unit_of_work() as uow:
        audit.record(uow, "test.new", actor="staff:after", merchant_id=1, store_id=1)
        uow.commit()
    with fresh.unit_of_work() as uow:
        result = audit.verify(uow)
        new = uow.session.scalars(select(AuditEntry).where(AuditEntry.action == "test.new")).one()
        assert (new.chain, new.prev_hash) == ("store:1", audit.GENESIS)
    assert (result.intact, result.checked, result.chains) == (True, 4, 2)
    # One chain cannot hold the store's row without rehashing it: the downgrade says no.
    with pytest.raises(RuntimeError, match="per-scope chains"):
        command.downgrade(alembic_config(fresh), BEFORE)
    with fresh.engine.begin() as conn:
        conn.execute(text("DELETE FROM audit_log WHERE chain <> 'legacy'"))
        conn.execute(text("DELETE FROM audit_chain_heads WHERE chain <> 'legacy'"))
    command.downgrade(alembic_config(fresh), BEFORE)  # only the legacy chain: it goes back
    with fresh.engine.connect() as conn:
        head = conn.execute(text("SELECT id, last_hash FROM audit_chain_head")).one()
    assert tuple(head) == (1, hashes[-1])
    fresh.upgrade()
    with fresh.unit_of_work() as uow:
        assert audit.verify(uow).checked == 3


def test_an_edit_before_the_migration_still_shows_after_it(fresh: Database) -> None:  # noqa: F811
    fresh.upgrade(BEFORE)
    plant_old_chain(fresh, 3)
    with fresh.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET actor = 'staff:other' WHERE id = 2"))
    fresh.upgrade()
    with fresh.unit_of_work() as uow:
        result = audit.verify(uow)
    assert [(b.chain, b.row_id) for b in result.breaks] == [("legacy", 2)]
