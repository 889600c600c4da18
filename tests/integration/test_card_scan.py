"""`kassa db scan-pans` finds every stored card number (SQLite and PostgreSQL, every table and
the archive folder); migration 0012 masks what earlier versions stored."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    insert,
    select,
    text,
)

from gateway.adapters.card_scan import (
    file_is_private,
    scan_database,
    scan_folder,
    scrub_database,
)
from gateway.adapters.db import Database
from gateway.entrypoints.cli import main
from tests.conftest import PG_URL, isolated_env

RAW = (
    b"<Ustrd>card 4111111111111111 paid</Ustrd><IBAN>DE89370400440532013000</IBAN>"
    b"<Dt>2026-11-25</Dt><Amt>12.50</Amt>"
)


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty database of its own (not the shared test one), gone after the test: the card
    numbers planted here must not be left for the suite's final scan."""
    if request.param == "sqlite":
        path = tmp_path / "planted.db"
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
        for leftover in tmp_path.glob("planted.db*"):
            leftover.unlink()
        return
    if not PG_URL:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    schema = f"kassa_pans_{os.getpid()}"
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    database = Database(f"{PG_URL}{sep}options=-csearch_path%3D{schema}")
    yield database
    database.dispose()
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


def put(database: Database, table: str, **values: Any) -> int:
    """Insert a row into ``table`` as the schema is now, filling required columns."""
    metadata = MetaData()
    metadata.reflect(bind=database.engine, only=[table])
    t = metadata.tables[table]
    for column in t.columns:
        if column.name in values or column.nullable or column.primary_key:
            continue
        if column.server_default is not None:
            continue
        kind = column.type
        if isinstance(kind, Boolean):
            values[column.name] = False
        elif isinstance(kind, Integer | Numeric):
            values[column.name] = 1
        elif isinstance(kind, DateTime):
            values[column.name] = datetime.now(UTC)
        elif isinstance(kind, JSON) or kind.__class__.__name__ == "JSONB":
            values[column.name] = {}
        elif isinstance(kind, LargeBinary):
            values[column.name] = b""
        else:
            values[column.name] = "x"
    with database.engine.begin() as conn:
        return int(conn.execute(insert(t).values(values)).inserted_primary_key[0])


def plant(database: Database) -> dict[str, int]:
    """What an earlier Kassa stored in clear."""
    event = put(
        database,
        "inbound_events",
        source="settlement_file",
        external_id="h1",
        body=RAW,
        content_hash=hashlib.sha256(RAW).hexdigest(),
        error="line 2, column 'Date': '4111 1111 1111 1111' does not match %d.%m.%Y",
        headers={"filename": "s.xml"},
    )
    file = put(database, "settlement_files", content_hash="h1", inbound_event_id=event)
    entry = put(
        database,
        "settlement_entries",
        file_id=file,
        masked_pan="5500.0000.0000.0004",
        remittance="card 4111_1111_1111_1111 paid",
        account_iban="DE89370400440532013000",
        end_to_end_id="E2E-2026-000123",
        currency="EUR",
    )
    job = put(database, "jobs", kind="x", payload={"note": "card 4111111111111111"},
              last_error="bank said: 4111 1111 1111 1111")  # fmt: skip
    return {"event": event, "entry": entry, "job": job}


def hits(database: Database) -> list[str]:
    with database.engine.connect() as conn:
        return [str(hit) for hit in scan_database(conn)]


def test_the_migration_masks_what_was_stored(fresh: Database) -> None:
    fresh.upgrade("0010")
    ids = plant(fresh)
    found = hits(fresh)
    assert {hit.split(" ")[0] for hit in found} == {
        "inbound_events.body", "inbound_events.error", "settlement_entries.masked_pan",
        "settlement_entries.remittance", "jobs.payload", "jobs.last_error",
    }  # fmt: skip
    fresh.upgrade()
    assert hits(fresh) == []
    with fresh.engine.connect() as conn:
        body, content_hash, error = conn.execute(
            text("SELECT body, content_hash, error FROM inbound_events WHERE id = :i"),
            {"i": ids["event"]},
        ).one()
        entry = conn.execute(
            text("SELECT masked_pan, remittance, account_iban, end_to_end_id"
                 " FROM settlement_entries WHERE id = :i"), {"i": ids["entry"]},
        ).one()  # fmt: skip
        state = conn.execute(text("SELECT state FROM settlement_files")).scalar_one()
    assert bytes(body) == RAW.replace(b"4111111111111111", b"411111******1111")
    assert content_hash == hashlib.sha256(RAW).hexdigest()  # the original's: still recognised
    assert "'4111 11** **** 1111'" in error
    assert tuple(entry) == (
        "550000******0004", "card 4111_11**_****_1111 paid",
        "DE89370400440532013000", "E2E-2026-000123",
    )  # fmt: skip
    assert state == "imported"


def test_the_migration_masks_archived_copies(fresh: Database, tmp_path: Path) -> None:
    fresh.upgrade("0010")
    copy = tmp_path / "settlement-files" / hashlib.sha256(RAW).hexdigest()
    copy.parent.mkdir()
    copy.write_bytes(RAW)
    put(fresh, "inbound_events", source="settlement_file", external_id="h2", body=b"",
        content_hash="h2", headers={"archived_as": str(copy)})  # fmt: skip
    fresh.upgrade()
    assert copy.read_bytes() == RAW.replace(b"4111111111111111", b"411111******1111")
    assert list(scan_folder(copy.parent)) == [] and file_is_private(copy)


def test_scrubbing_reads_in_batches(fresh: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    from gateway.adapters import card_scan

    monkeypatch.setattr(card_scan, "BATCH_ROWS", 3)
    fresh.upgrade()
    for i in range(10):
        put(fresh, "jobs", kind="x", payload={}, last_error=f"{i}: card 4111111111111111")
    assert len(hits(fresh)) == 10
    with fresh.engine.begin() as conn:
        assert scrub_database(conn) == 10
    assert hits(fresh) == []
    with fresh.engine.connect() as conn:
        errors = list(conn.execute(select(text("last_error")).select_from(text("jobs"))).scalars())
    assert sorted(errors) == sorted(f"{i}: card 411111******1111" for i in range(10))


def test_the_command_reports_each_hit_masked_and_exits_1(fresh: Database, tmp_path: Path) -> None:
    fresh.upgrade()
    ids = plant(fresh)
    archive = tmp_path / "archive"
    archive.mkdir()
    runner = CliRunner()
    env = {**isolated_env(), "KASSA_DATABASE_URL": fresh.url}
    result = runner.invoke(main, ["db", "scan-pans", "--folder", str(archive)], env=env)
    assert result.exit_code == 1, result.output
    lines = result.stdout.splitlines()
    assert f"settlement_entries.masked_pan [{ids['entry']}]: 550000******0004" in lines
    assert any(line.startswith(f"inbound_events.body [{ids['event']}]: ") for line in lines)
    assert any(line.startswith(f"jobs.last_error [{ids['job']}]: ") for line in lines)
    assert "411111******1111" in result.stdout
    for pan in ("4111111111111111", "4111 1111 1111 1111", "5500.0000.0000.0004"):
        assert pan not in result.output
    with fresh.engine.begin() as conn:
        scrub_database(conn)
    result = runner.invoke(main, ["db", "scan-pans", "--folder", str(archive)], env=env)
    assert result.exit_code == 0, result.output
    (archive / "old-copy").write_bytes(RAW)
    result = runner.invoke(main, ["db", "scan-pans", "--folder", str(archive)], env=env)
    assert result.exit_code == 1 and f"{archive / 'old-copy'} [byte 12]" in result.stdout
    (archive / "old-copy").unlink()


def test_the_command_scans_the_device_logs_by_default(fresh: Database, tmp_path: Path) -> None:
    """Without --folder: the settlement archive and [devices] log_dir, where a device log
    written by an older device host (before masking) may still hold a card number."""
    fresh.upgrade()
    var = tmp_path / "var"
    till_logs = var / "device-logs" / "Berlin_Mitte" / "T01"
    till_logs.mkdir(parents=True)
    line = '{"t": 1.0, "dir": "in", "what": "Status", "fields": {"pan": "4111111111111111"}}\n'
    (till_logs / "card_terminal.log.1").write_text(line, encoding="utf-8")
    runner = CliRunner()
    env = {"KASSA_PATHS_VAR_DIR": str(var), "KASSA_DATABASE_URL": fresh.url}
    result = runner.invoke(main, ["db", "scan-pans"], env=env)
    assert result.exit_code == 1, result.output
    assert f"{till_logs / 'card_terminal.log.1'} [byte " in result.stdout
    assert "4111111111111111" not in result.output
    (till_logs / "card_terminal.log.1").write_text(
        line.replace("4111111111111111", "411111******1111")
    )
    result = runner.invoke(main, ["db", "scan-pans"], env=env)
    assert result.exit_code == 0, result.output


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = f"sqlite:///{tmp_path / 'none.db'}"
    result = runner.invoke(main, ["db", "scan-pans", "--url", missing], env=isolated_env())
    assert result.exit_code == 2 and "no SQLite database" in result.output
    assert not (tmp_path / "none.db").exists()  # scanning created nothing
    result = runner.invoke(main, ["db", "scan-pans", "--colour"], env=isolated_env())
    assert result.exit_code == 2


def test_the_suites_final_scan_finds_what_a_test_left(tmp_path: Path) -> None:
    """The session's sweep (tests/conftest.py) over SQLite files and settlement archives."""
    from tests.conftest import card_numbers_under

    left = tmp_path / "left"
    database = Database(f"sqlite:///{left / 'some-test' / 'kassa.db'}")
    database.upgrade()
    put(database, "jobs", kind="x", payload={}, last_error="card 4111 1111 1111 1111")
    database.dispose()
    (left / "var" / "settlement-files").mkdir(parents=True)
    (left / "var" / "settlement-files" / "abc").write_bytes(RAW)
    (left / "var" / "original.xml").write_bytes(RAW)  # an input file, not Kassa's to scan
    (left / "var" / "device-logs" / "S" / "T").mkdir(parents=True)
    (left / "var" / "device-logs" / "S" / "T" / "nfc_reader.log").write_bytes(RAW)
    found = card_numbers_under(left)
    assert len(found) == 3
    assert found[0].startswith(f"{left / 'some-test' / 'kassa.db'}: jobs.last_error [1]: ")
    assert "4111 11** **** 1111" in found[0]
    assert found[1].startswith(f"{left / 'var' / 'device-logs' / 'S' / 'T' / 'nfc_reader.log'}")
    assert found[2].startswith(f"{left / 'var' / 'settlement-files' / 'abc'} [byte 12]")
    for path in sorted(left.rglob("*"), reverse=True):  # leave nothing for the real sweep
        path.unlink() if path.is_file() else path.rmdir()
    assert card_numbers_under(left) == []


def test_a_device_logs_hex_dump_and_time_stamps_are_not_card_numbers(tmp_path: Path) -> None:
    """Decimal-looking bytes in a dump and a time with a dot pass the Luhn check one time in
    ten; only an entry's texts are read. A number in its fields is still found."""
    from gateway.adapters.card_scan import scan_folder
    from gateway.domain.card_data import luhn_valid

    folder = tmp_path / "device-logs" / "S" / "T"
    folder.mkdir(parents=True)
    # 1796605245.002 is 13 digits with a dot between them, and Luhn-valid; so is the dump's run.
    clean = (
        '{"t": 1796605245.002, "dir": "out", "hex": "10 02 41 11 11 11 11 11 11 11", "what": "x"}'
    )
    assert luhn_valid("1796605245002") and luhn_valid("4111111111111111")
    (folder / "card_terminal.log").write_text(clean + "\n", encoding="utf-8")
    assert list(scan_folder(tmp_path / "device-logs")) == []
    leaked = clean.replace('"what": "x"', '"fields": {"text": ["Karte 4111111111111111"]}')
    (folder / "card_terminal.log.2").write_text(clean + "\n" + leaked + "\n", encoding="utf-8")
    hits = list(scan_folder(tmp_path / "device-logs"))
    assert len(hits) == 1 and hits[0].row == f"byte {len(clean) + 1}", hits
    (folder / "card_terminal.log.2").unlink()  # leave nothing for the suite's own sweep
