"""Receipts are stored without card numbers, even from a terminal that prints them whole;
the real device host against the simulator, SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import text

from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until


def test_a_whole_card_number_on_the_receipt_is_masked_before_it_is_stored(
    db: Database, demo: Any
) -> None:
    till = first_till(db, demo)
    with ZvtSimulator(baudrate=115200) as terminal:
        terminal.receipt_card = "Karte 4111 1111 1111 1111"  # a terminal that prints it whole
        host = host_for(db, till, terminal.port, timezone="UTC")
        try:
            payment_id = card_payment(db, till, "3.00")
            until(lambda: read_payment(db, payment_id).status == "authorised", host)
        finally:
            close(host)
    receipt = read_payment(db, payment_id).receipt_text or ""
    assert "Karte 4111 11** **** 1111" in receipt
    with db.engine.connect() as conn:  # nowhere in the database, in any column
        for table in ("payments", "payment_events", "jobs"):
            rows = conn.execute(text(f"SELECT * FROM {table}")).all()
            assert "4111 1111 1111 1111" not in repr(rows)
            assert "4111111111111111" not in repr(rows)
