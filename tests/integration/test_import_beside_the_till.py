"""A large settlement import never blocks the till: while it runs, another thread creates
payments and asks /healthz over real HTTP, and every one of them succeeds, on SQLite (one
writer at a time) as on PostgreSQL. Success and order only; how fast is for
bench/settlement_import.py.
"""

from __future__ import annotations

import itertools
import threading
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, SettlementEntry, SettlementFile
from gateway.services.settlement.file_import import import_settlement_file
from tests.integration.test_settlement_card_numbers import SETTINGS, camt

pytestmark = pytest.mark.slow

TRANSACTIONS = 10_000  # 2 MB of camt.053: seconds to import, 10 batches


def test_payments_and_healthz_answer_during_a_large_import(
    db: Database, live_server: Any, demo: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "large.xml"
    path.write_text(camt(TRANSACTIONS))
    size = path.stat().st_size
    headers = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
    done = threading.Event()
    read = [0]  # bytes of the file the import has read so far: its progress
    outcomes: list[tuple[str, int, str]] = []
    spans: list[tuple[int, int]] = []  # the import's progress when each payment began and ended
    keys = itertools.count()

    def till() -> None:
        while not done.is_set():
            began = read[0]
            response = requests.post(
                f"{live_server.url}/api/v1/payments",
                json={"amount": "1.50", "currency": "EUR", "method": "qr"},
                headers={**headers, "Idempotency-Key": f"beside-{next(keys)}"},
                timeout=120,
            )
            outcomes.append(("payment", response.status_code, response.text[:200]))
            if response.status_code == 201:
                spans.append((began, read[0]))
            health = requests.get(f"{live_server.url}/healthz", timeout=120)
            outcomes.append(("healthz", health.status_code, health.text[:200]))

    def progress(count: int) -> None:
        read[0] += count

    thread = threading.Thread(target=till, daemon=True)
    thread.start()
    importer = Database(db.url)  # a process of its own would have its own engine
    try:
        _wait_for(lambda: len(outcomes) >= 2)  # the till is working before the import starts
        with importer.unit_of_work() as uow:
            summary = import_settlement_file(uow, path, SETTINGS, on_read=progress)
    finally:
        done.set()
        thread.join(120)
        importer.dispose()
    failed = [o for o in outcomes if o[1] not in (200, 201)]
    assert failed == [], failed[:3]
    assert summary.stored == TRANSACTIONS
    # Begun and answered in the middle of the import: a whole-file transaction would have held
    # each of them until the end.
    middle = [(b, e) for b, e in spans if b >= size * 0.2 and e <= size * 0.8]
    assert len(middle) >= 2, f"payments answered only around the import: {spans}"
    with db.unit_of_work(readonly=True) as uow:
        created = uow.session.scalar(select(func.count(Payment.id)))
        entries = uow.session.scalar(select(func.count(SettlementEntry.id)))
        state = uow.session.scalar(select(SettlementFile.state))
    assert created == sum(1 for kind, status, _ in outcomes if kind == "payment")
    assert (entries, state) == (TRANSACTIONS, "imported")


def _wait_for(condition: Any, seconds: float = 60) -> None:
    event = threading.Event()
    for _ in range(int(seconds * 20)):
        if condition():
            return
        event.wait(0.05)
    raise AssertionError("the till thread made no request within a minute")
