"""``prepared.loaded`` gives the entity the ORM would have loaded from a row: persistent in the
session (found by ``get`` without a query), its unread columns and relationships read when asked
for, changes to it flushed as to any loaded object."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import event, inspect, select

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant
from gateway.services.bank import prepared


def test_an_entity_from_a_row_acts_as_a_loaded_one(db: Database, demo: dict[str, Any]) -> None:
    with db.unit_of_work() as uow:
        merchant_id, name = uow.session.execute(select(Merchant.id, Merchant.name).limit(1)).one()
        uow.session.expunge_all()
        sent: list[str] = []

        def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
            sent.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            merchant = prepared.loaded(
                uow, Merchant, ("id", "monitoring_thresholds"), (merchant_id, None)
            )
            state = inspect(merchant)
            assert state.persistent and not state.modified
            assert uow.session.get(Merchant, merchant_id) is merchant
            assert sent == []  # found in the session, not asked for
            assert merchant.name == name  # an unread column: read when asked for
            assert len(sent) == 1
            assert merchant.stores  # a relationship: loaded as ever
            merchant.monitoring_thresholds = {"voids_per_till": 3}
            uow.session.flush()
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        uow.commit()
    with db.unit_of_work() as uow:
        stored = uow.session.get_one(Merchant, merchant_id)
        assert stored.monitoring_thresholds == {"voids_per_till": 3}


def test_only_columns_can_be_given(db: Database, demo: dict[str, Any]) -> None:
    with db.unit_of_work() as uow, pytest.raises(ValueError, match="not columns"):
        prepared.loaded(uow, Merchant, ("id", "stores"), (1, []))
