"""SQLite: the writing transactions of one process take turns before BEGIN IMMEDIATE, so a
waiting writer starts when the last one ends instead of sleeping in SQLite's busy handler."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from gateway.adapters import db as db_module
from gateway.adapters.db import Database, _WriterTurn

# A ceiling for a thread that should finish at once: far above any slow machine's pause, far
# below the turn's own wait (a turn never handed back would show as this ceiling reached).
CEILING_SECONDS = 30


class FakeConnection:
    """What the turn reads of a connection: its options and its info dict."""

    def __init__(self, readonly: bool = False) -> None:
        self.info: dict[str, Any] = {}
        self.readonly = readonly
        self.sql: list[str] = []

    def get_execution_options(self) -> dict[str, Any]:
        return {"kassa_readonly": self.readonly}

    def exec_driver_sql(self, sql: str) -> None:
        self.sql.append(sql)


def test_a_second_writer_waits_for_the_first_to_end_then_goes() -> None:
    turn = _WriterTurn()
    first, second = FakeConnection(), FakeConnection()
    turn.begin(first)
    began = threading.Event()

    def write() -> None:
        turn.begin(second)
        began.set()

    other = threading.Thread(target=write)
    other.start()
    with turn._turn:  # the other writer is waiting for the turn, not in SQLite
        assert turn._owner is first.info["kassa_writer_turn"]
    assert not began.is_set()
    turn.end(first)
    assert began.wait(CEILING_SECONDS)
    other.join()
    assert second.sql == ["BEGIN IMMEDIATE"] and turn._owner is second.info["kassa_writer_turn"]
    turn.end(second)
    assert turn._owner is None and not second.info


def test_readers_never_take_the_turn() -> None:
    turn = _WriterTurn()
    writer, reader = FakeConnection(), FakeConnection(readonly=True)
    turn.begin(writer)
    turn.begin(reader)  # does not wait for the writer

    assert reader.sql == ["BEGIN"] and "kassa_writer_turn" not in reader.info


def test_a_turn_never_handed_back_is_taken_over(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(db_module, "WRITER_TURN_SECONDS", 0.01)
    turn = _WriterTurn()
    lost, next_one = FakeConnection(), FakeConnection()
    turn.begin(lost)  # its commit and rollback never come

    turn.begin(next_one)
    assert turn._owner is next_one.info["kassa_writer_turn"]
    turn.end(lost)  # late: does not end the new owner's turn
    assert turn._owner is next_one.info["kassa_writer_turn"]


def test_a_failed_begin_hands_the_turn_back() -> None:
    turn = _WriterTurn()
    conn = FakeConnection()

    def refuse(_: str) -> None:
        raise RuntimeError("database is locked")

    conn.exec_driver_sql = refuse  # type: ignore[method-assign]
    with pytest.raises(RuntimeError):
        turn.begin(conn)
    assert turn._owner is None


@pytest.mark.parametrize("ending", ["commit", "rollback", "exception"])
def test_a_real_transaction_hands_the_turn_back(
    tmp_path: Path, ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(db_module, "WRITER_TURN_SECONDS", 4 * CEILING_SECONDS)
    db = Database(f"sqlite:///{tmp_path / 'turns.db'}")
    try:
        with db.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (n INTEGER)"))
        with pytest.raises(ZeroDivisionError) if ending == "exception" else _nothing():
            with db.unit_of_work() as uow:
                uow.session.execute(text("INSERT INTO t VALUES (1)"))
                assert "kassa_writer_turn" in uow.session.connection().info
                if ending == "commit":
                    uow.commit()
                elif ending == "exception":
                    _ = 1 / 0
        # Another thread's writer gets the turn at once (a turn kept would hold it 30 s).
        done = threading.Event()

        def write() -> None:
            with db.unit_of_work() as uow:
                uow.session.execute(text("INSERT INTO t VALUES (2)"))
                uow.commit()
            done.set()

        other = threading.Thread(target=write)
        other.start()
        assert done.wait(CEILING_SECONDS)
        other.join()
        with db.unit_of_work(readonly=True) as uow:
            rows = uow.session.execute(text("SELECT n FROM t ORDER BY n")).scalars().all()
        assert rows == ([1, 2] if ending == "commit" else [2])
    finally:
        db.dispose()


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *_: object) -> None:
        return None
