"""The PostgreSQL pool hands out no dead connection: one that sat idle is pinged first."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from gateway.adapters import db as db_module
from gateway.adapters.db import Database


@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
def test_a_connection_killed_while_idle_is_replaced(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = Database(db.url)  # a pool of its own, so the test's fixtures are not disturbed
    try:
        with own.engine.connect() as conn:
            pid = conn.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as admin:  # the server ends it while it sits in the pool
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            admin.commit()
        monkeypatch.setattr(db_module, "PING_AFTER_IDLE_SECONDS", 0.0)  # it has been idle long
        with own.unit_of_work(readonly=True) as uow:
            assert uow.session.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    finally:
        own.dispose()
