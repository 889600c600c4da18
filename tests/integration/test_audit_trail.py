"""The audit trail on SQLite and PostgreSQL: rows written with their action, chained by
hashes, checked by `kassa audit verify` (which catches an edited, deleted or added row), shown
on the portal with filters and exported as formula-safe CSV."""

from __future__ import annotations

import csv
import io
import threading
from typing import Any

import pytest
import requests
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import func, select, text

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry
from gateway.services.staff import audit
from gateway.services.staff.audit_context import set_acting
from tests.integration.test_portal_pages import log_in, staff


def kassa(db: Database, *args: str) -> Any:
    from gateway.entrypoints.cli import main

    return CliRunner().invoke(main, list(args), env={"KASSA_DATABASE_URL": db.url})


def rows(db: Database, action: str | None = None) -> list[AuditEntry]:
    with db.unit_of_work() as uow:
        query = select(AuditEntry).order_by(AuditEntry.id)
        if action:
            query = query.where(AuditEntry.action == action)
        found = list(uow.session.scalars(query))
        uow.session.expunge_all()
        return found


def write(db: Database, count: int, **fields: Any) -> None:
    with db.unit_of_work() as uow:
        for n in range(count):
            audit.record(uow, "test.action", actor=f"staff:tester{n}", after={"n": n}, **fields)
        uow.commit()


def test_verify_passes_an_intact_chain_and_fails_on_an_edited_row(db: Database) -> None:
    write(db, 5, merchant_id=1, before={"card": "4111 1111 1111 1111"})
    assert rows(db)[0].before == {"card": "4111 11** **** 1111"}  # a PAN never lands here
    intact = kassa(db, "audit", "verify")
    assert intact.exit_code == 0, intact.output
    assert "5 rows checked" in intact.output
    target = rows(db)[2]
    with db.engine.begin() as conn:
        conn.execute(
            text("UPDATE audit_log SET actor = 'staff:someone-else' WHERE id = :id"),
            {"id": target.id},
        )
    broken = kassa(db, "audit", "verify")
    assert broken.exit_code == 1
    assert f"row {target.id}" in broken.output and "row_hash" in broken.output


def test_verify_catches_a_rehashed_row_a_deleted_row_and_a_cut_tail(db: Database) -> None:
    write(db, 4)
    ids = [r.id for r in rows(db)]
    # An editor who recomputes the edited row's own hash still breaks the next row's link.
    with db.unit_of_work() as uow:
        row = uow.session.get_one(AuditEntry, ids[1])
        row.after = {"n": 99}
        row.row_hash = audit.row_hash(row, row.prev_hash)
        uow.commit()
    result = kassa(db, "audit", "verify")
    assert result.exit_code == 1 and f"row {ids[2]}" in result.output


@pytest.mark.parametrize("where", ["middle", "tail"])
def test_verify_catches_deleted_rows(db: Database, where: str) -> None:
    write(db, 3)
    ids = [r.id for r in rows(db)]
    with db.engine.begin() as conn:
        conn.execute(
            text("DELETE FROM audit_log WHERE id = :id"),
            {"id": ids[1] if where == "middle" else ids[2]},
        )
    assert kassa(db, "audit", "verify").exit_code == 1


def test_an_audit_row_rolls_back_with_its_action(db: Database) -> None:
    with db.unit_of_work() as uow:
        audit.record(uow, "test.action", actor="staff:x")
        # no commit: the action failed, so its row never existed
    write(db, 1)
    assert [r.action for r in rows(db)] == ["test.action"]
    assert kassa(db, "audit", "verify").exit_code == 0


def test_concurrent_writers_keep_one_chain(db: Database) -> None:
    """Writers in parallel threads (each its own transaction) serialise on the chain head."""
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(10):
                write(db, 1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with db.unit_of_work() as uow:
        assert uow.session.scalar(select(func.count()).select_from(AuditEntry)) == 30
        assert audit.verify(uow).intact


def test_actions_from_web_and_api_are_recorded_with_who_and_where(
    live_server: Any, demo: Any, db: Database
) -> None:
    key = demo["tills"][0]["api_key"]
    created = requests.post(
        f"{live_server.url}/api/v1/payments",
        json={"amount": "5.00", "currency": "EUR", "method": "qr"},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    assert created.status_code == 201, created.text
    [row] = rows(db, "payment.created")
    assert (row.actor, row.source, row.target_id) == ("till:T01", "127.0.0.1", created.json()["id"])
    assert row.after and row.after["amount"] == "5.00" and row.store_id is not None
    session = requests.Session()
    page = session.get(f"{live_server.url}/cashier/login", timeout=10).text
    token = page.split('name="csrf_token" value="')[1].split('"')[0]
    session.post(
        f"{live_server.url}/cashier/login",
        data={"username": "cashier", "password": "wrong", "csrf_token": token},
        timeout=10,
    )
    [failed] = rows(db, "login.failed")
    assert (failed.actor, failed.source, failed.role) == ("staff:cashier", "127.0.0.1", "cashier")
    assert failed.merchant_id is not None
    assert kassa(db, "audit", "verify").exit_code == 0


@pytest.fixture
def manager(app: Any, demo: Any) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    return client


def test_portal_lists_filters_and_exports_formula_safe_csv(
    app: Any, manager: FlaskClient, demo: Any, db: Database
) -> None:
    evil = app.test_client()
    log_in(evil, "cashier", "nope")  # a failed sign-in: one row, actor from the form
    with db.unit_of_work() as uow:
        merchant_id = rows(db, "login")[0].merchant_id
        audit.record(
            uow, "test.formula", actor="=HYPERLINK(\"http://x\")", merchant_id=merchant_id,
            after={"note": "@SUM(1)"},
        )  # fmt: skip
        uow.commit()
    page = manager.get("/portal/audit").get_data(as_text=True)
    assert 'data-action="login"' in page and 'data-action="login.failed"' in page
    assert 'data-action="mfa.passed"' in page
    only = manager.get("/portal/audit?action=login.failed").get_data(as_text=True)
    assert 'data-action="login.failed"' in only and 'data-action="login"' not in only
    assert 'data-action="login"' not in manager.get("/portal/audit?actor=cashier").get_data(
        as_text=True
    )
    assert "is not a date" in manager.get("/portal/audit?from=yesterday").get_data(as_text=True)
    response = manager.get("/portal/audit.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    table = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert table[0][:3] == ["id", "created_at", "actor"]
    formula = next(r for r in table if r[6] == "test.formula")
    assert formula[2] == '\'=HYPERLINK("http://x")'
    assert all(not cell.startswith(("=", "+", "-", "@")) for r in table[1:] for cell in r)
    assert rows(db, "csv.downloaded")[-1].target_id == "audit"


def test_csv_safe_quotes_every_formula_start() -> None:
    for start in ("=", "+", "-", "@", "\t", "\r"):
        assert audit.csv_safe(f"{start}1+1") == f"'{start}1+1"
    assert audit.csv_safe("plain") == "plain" and audit.csv_safe(None) == ""


def test_a_savepoint_rolled_back_takes_only_its_own_rows(db: Database) -> None:
    """Rows are linked at commit: a savepoint rolled back takes its own rows, no others."""
    with db.unit_of_work() as uow:
        audit.record(uow, "test.before_savepoint", actor="staff:x")
        try:
            with uow.session.begin_nested():
                audit.record(uow, "test.inside_savepoint", actor="staff:x")
                raise RuntimeError("the savepoint's work fails")
        except RuntimeError:
            pass
        with uow.session.begin_nested():
            pass  # a savepoint released: the rows wait for the transaction's commit
        audit.record(uow, "test.after_savepoint", actor="staff:x")
        uow.commit()
    assert [r.action for r in rows(db)] == ["test.before_savepoint", "test.after_savepoint"]
    assert kassa(db, "audit", "verify").exit_code == 0


# -- one chain per scope -------------------------------------------------------------------------


def chains(db: Database) -> dict[str, list[AuditEntry]]:
    found: dict[str, list[AuditEntry]] = {}
    for row in rows(db):
        found.setdefault(row.chain, []).append(row)
    return found


def test_two_stores_interleaved_make_two_valid_chains(db: Database) -> None:
    """Each store's rows link only to that store's rows; merchant-wide rows (and rows naming
    neither) make chains of their own; one transaction may feed several chains."""
    set_acting(None)  # no signed-in person left in this thread by an earlier test
    for _ in range(3):
        write(db, 1, merchant_id=1, store_id=1)
        write(db, 1, merchant_id=1, store_id=2)
    with db.unit_of_work() as uow:  # one transaction, three chains, in no particular order
        for store_id in (2, None, 1):
            audit.record(uow, "test.mixed", actor="staff:x", merchant_id=1, store_id=store_id)
        uow.commit()
    write(db, 1)
    found = chains(db)
    assert {key: len(chain) for key, chain in found.items()} == {
        "store:1": 4, "store:2": 4, "merchant:1": 1, "global": 1,
    }  # fmt: skip
    for chain in found.values():
        previous = audit.GENESIS
        for row in chain:
            assert row.prev_hash == previous and row.row_hash == audit.row_hash(row, previous)
            previous = row.row_hash
    with db.unit_of_work() as uow:
        result = audit.verify(uow)
    assert (result.intact, result.checked, result.chains) == (True, 10, 4)
    output = kassa(db, "audit", "verify").output
    assert "10 rows checked in 4 chains" in output


def test_a_tampered_row_is_reported_with_its_chain_and_the_other_chains_pass(db: Database) -> None:
    for _ in range(3):
        write(db, 1, merchant_id=1, store_id=1)
        write(db, 1, merchant_id=1, store_id=2)
    target = chains(db)["store:2"][1]
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_log SET after = NULL WHERE id = :id"), {"id": target.id})
    with db.unit_of_work() as uow:
        result = audit.verify(uow)
    assert [(b.chain, b.row_id, b.intact_before) for b in result.breaks] == [
        ("store:2", target.id, 1)
    ]
    broken = kassa(db, "audit", "verify")
    assert broken.exit_code == 1
    assert f"chain store:2 at row {target.id}" in broken.output and "store:1" not in broken.output


@pytest.mark.parametrize("tamper", ["swap", "move", "head", "rescope"])
def test_verify_catches_reordering_moving_a_row_and_a_deleted_head(
    db: Database, tamper: str
) -> None:
    """Swapping two rows of a chain, moving a row to another chain (its hashes intact), a
    chain's head deleted, or a row's store changed with its own hash recomputed."""
    for _ in range(3):
        write(db, 1, merchant_id=1, store_id=1)
        write(db, 1, merchant_id=1, store_id=2)
    one, two = chains(db)["store:1"], chains(db)["store:2"]
    with db.engine.begin() as conn:
        if tamper == "swap":  # the ids of two rows of one chain exchanged
            renumber = text("UPDATE audit_log SET id = :n WHERE id = :i")
            for id_, new in ((one[0].id, -1), (one[1].id, one[0].id), (-1, one[1].id)):
                conn.execute(renumber, {"n": new, "i": id_})
        elif tamper == "move":
            conn.execute(
                text("UPDATE audit_log SET chain = 'store:2' WHERE id = :id"), {"id": one[-1].id}
            )
        elif tamper == "head":
            conn.execute(text("DELETE FROM audit_chain_heads WHERE chain = 'store:1'"))
    if tamper == "rescope":  # rehashed in place: the link holds, the row names store 2
        with db.unit_of_work() as uow:
            row = uow.session.get_one(AuditEntry, two[-1].id)
            row.store_id = 1
            row.row_hash = audit.row_hash(row, row.prev_hash)
            uow.session.execute(
                text("UPDATE audit_chain_heads SET last_hash = :h WHERE chain = 'store:2'"),
                {"h": row.row_hash},
            )
            uow.commit()
    with db.unit_of_work() as uow:
        result = audit.verify(uow)
    expected = {"swap": {"store:1"}, "move": {"store:1", "store:2"}, "head": {"store:1"}}
    assert {b.chain for b in result.breaks} == expected.get(tamper, {"store:2"})
    assert kassa(db, "audit", "verify").exit_code == 1


def test_concurrent_writers_of_two_stores_do_not_wait_for_each_other(db: Database) -> None:
    """PostgreSQL: store 1's transaction holds its chain head, uncommitted. Another writer of
    store 1 waits for it (seen in pg_stat_activity), while a writer of store 2 commits."""
    if db.dialect != "postgresql":
        pytest.skip("SQLite has one writer at a time: every transaction waits for the last")
    write(db, 1, merchant_id=1, store_id=1)
    write(db, 1, merchant_id=1, store_id=2)
    bound = 60  # seconds: a failure bound only, never reached when the heads are separate
    with db.unit_of_work() as holder:
        audit.record(holder, "test.holding", actor="staff:a", merchant_id=1, store_id=1)
        audit.link_pending(holder.session)  # store 1's head locked, the transaction open
        other_store = threading.Thread(target=write, args=(db, 1), kwargs={"store_id": 2})
        other_store.start()
        other_store.join(bound)
        assert not other_store.is_alive(), "store 2's write waited for store 1's head"
        waiter_pid: list[int] = []

        def same_store() -> None:
            with db.unit_of_work() as uow:
                waiter_pid.append(uow.session.scalar(text("SELECT pg_backend_pid()")))
                audit.record(uow, "test.waiting", actor="staff:b", merchant_id=1, store_id=1)
                uow.commit()

        waiter = threading.Thread(target=same_store)
        waiter.start()
        assert _waits_for_a_lock(db, waiter_pid, bound), "store 1's second writer did not wait"
        holder.commit()
    waiter.join(bound)
    assert not waiter.is_alive()
    found = chains(db)
    assert [r.action for r in found["store:1"]] == ["test.action", "test.holding", "test.waiting"]
    assert [r.action for r in found["store:2"]] == ["test.action", "test.action"]
    with db.unit_of_work() as uow:
        assert audit.verify(uow).intact


def _waits_for_a_lock(db: Database, pid: list[int], bound: float) -> bool:
    """Whether the backend ``pid`` comes to wait for a lock (asked until ``bound`` seconds)."""
    import time

    end = time.monotonic() + bound
    with db.engine.connect() as conn:
        while time.monotonic() < end:
            if pid:
                waiting = conn.execute(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid[0]},
                ).scalar()
                if waiting == "Lock":
                    return True
            conn.rollback()
            time.sleep(0.05)
    return False
