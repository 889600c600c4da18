"""The PostgreSQL test database is reset between tests as ``TRUNCATE ... RESTART IDENTITY``
would leave it: every table empty, every sequence back at its start (``conftest._truncate``
deletes the rows of the tables a test used instead, which is much faster)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.adapters.db import Database
from gateway.adapters.models import Base
from gateway.services.demo import seed_demo
from tests.conftest import _truncate


def state(db: Database) -> tuple[dict[str, int], list[Any]]:
    with db.engine.connect() as conn:
        counts = {
            t.name: conn.execute(text(f"SELECT count(*) FROM {t.name}")).scalar_one()
            for t in Base.metadata.sorted_tables
        }
        sequences = conn.execute(
            text(
                "SELECT sequencename, last_value FROM pg_sequences"
                " WHERE schemaname = current_schema() ORDER BY 1"
            )
        ).all()
    return counts, sequences


def test_reset_leaves_what_truncate_leaves(pg_database: Database | None, tmp_path: Path) -> None:
    """(SQLite needs no reset: each test gets a copy of the migrated template.)"""
    if pg_database is None:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    db = pg_database
    _truncate(db)  # whatever the worker's previous test left
    with db.unit_of_work() as uow:
        seed_demo(uow, tmp_path / "first.json", promotions=True)
    used, _ = state(db)
    assert sum(1 for n in used.values() if n) > 5  # the seed wrote into many tables
    _truncate(db)
    counts, sequences = state(db)
    assert set(counts.values()) == {0}
    assert sequences and all(last is None for _, last in sequences)  # restarted, none drawn
    with db.unit_of_work() as uow:
        again = seed_demo(uow, tmp_path / "again.json", promotions=True)
    with db.engine.connect() as conn:
        first_id = conn.execute(text("SELECT min(id) FROM merchants")).scalar_one()
    assert first_id == 1 and again["tills"][0]["till"] == "T01"
