"""Importing settlement files into the database: once, whole or not at all, raw first."""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import (
    InboundEvent,
    SettlementEntry,
    SettlementFile,
    SettlementFileWarning,
    SettlementStatement,
)
from gateway.adapters.settlement_files import InvalidSettlementFile
from gateway.config import load_config
from gateway.entrypoints.settlement_cli import settlement
from gateway.errors import KassaError
from gateway.services.settlement.file_import import import_settlement_file
from sandbox_bank.camt import camt053, camt054
from sandbox_bank.settlement import SettlementBatch, to_csv
from sandbox_bank.settlement import SettlementLine as SandboxLine
from tests.conftest import isolated_env

SETTINGS = load_config(env=isolated_env()).settlement


def sandbox_batch() -> SettlementBatch:
    day = date(2026, 11, 25)
    lines = (
        SandboxLine("payment", "K1", "bp1", None, None, day, 1234, 29, "EUR", "bill 1"),
        SandboxLine("payment", "K2", "bp2", None, None, day, 2000, 40, "EUR", "bill 2"),
        SandboxLine("refund", "K1", "bp1", "br1", "rf1", day, 200, 0, "EUR", "refund"),
    )
    return SettlementBatch(
        "STL-20261125", "KASSA-DEMO-0001", "Kassa Demo", "DE89370400440532013000", day,
        "EUR", datetime(2026, 11, 25, 23, tzinfo=UTC), 0, lines,
    )  # fmt: skip


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(db: Database, path: Path, **options: Any) -> Any:
    with db.unit_of_work() as uow:
        return import_settlement_file(uow, path, SETTINGS, **options)


def count(db: Database, column: Any) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count(column))) or 0)


def test_a_sandbox_statement_is_imported_once(db: Database, tmp_path: Path) -> None:
    batch = sandbox_batch()
    path = write(tmp_path, "stl.camt053.xml", camt053(batch))
    first = run(db, path)
    assert (first.format, first.entries, first.stored, first.duplicate) == ("camt053", 3, 3, False)
    # What moved on the account is the entry: one credit of the net; its details stay lines.
    assert first.sums == {"EUR": {"CRDT": "29.65"}} and batch.net_minor == 2965
    assert (first.warnings, first.warning_counts) == ([], {})
    again = run(db, path)
    assert (again.duplicate, again.file_id, again.sums) == (True, first.file_id, first.sums)
    assert count(db, SettlementEntry.id) == 3
    with db.unit_of_work(readonly=True) as uow:
        event = uow.session.scalars(select(InboundEvent)).one()
        assert (event.source, event.external_id, event.status) == (
            "settlement_file", first.content_hash, "processed",
        )  # fmt: skip
        assert event.body == path.read_bytes()
        rows = uow.session.scalars(select(SettlementEntry).order_by(SettlementEntry.position))
        assert [(r.end_to_end_id, r.amount_minor, r.indicator) for r in rows] == [
            ("K1", 1205, "CRDT"), ("K2", 1960, "CRDT"), ("K1", 200, "DBIT"),
        ]  # fmt: skip


def test_the_same_movements_in_another_file_are_not_doubled(db: Database, tmp_path: Path) -> None:
    text = camt053(sandbox_batch())
    run(db, write(tmp_path, "a.xml", text))
    other = run(db, write(tmp_path, "b.xml", text.replace("-053</MsgId>", "-053-resent</MsgId>")))
    assert (other.duplicate, other.entries, other.stored, other.skipped) == (False, 3, 0, 3)
    notification = run(db, write(tmp_path, "c.xml", camt054(sandbox_batch())))
    assert (notification.format, notification.stored) == ("camt054", 3)
    csv = run(db, write(tmp_path, "d.csv", to_csv(sandbox_batch())))
    assert (csv.format, csv.mapping, csv.stored) == ("csv", "sandbox", 3)
    assert csv.sums == {"EUR": {"CRDT": "31.65", "DBIT": "2.00"}}
    assert count(db, SettlementEntry.id) == 9


def test_a_malformed_file_is_rejected_whole(db: Database, tmp_path: Path) -> None:
    text = camt053(sandbox_batch()).replace(
        '<Amt Ccy="EUR">2.00</Amt>', '<Amt Ccy="EUR">2.001</Amt>'
    )
    path = write(tmp_path, "bad.xml", text)
    with pytest.raises(InvalidSettlementFile, match=r"TxDtls\[3\]/Amt \(line \d+\)"):
        run(db, path)
    assert count(db, SettlementEntry.id) == 0 and count(db, SettlementFile.id) == 0
    with db.unit_of_work(readonly=True) as uow:
        event = uow.session.scalars(select(InboundEvent)).one()
        assert event.status == "rejected" and "2.001" in (event.error or "")


def test_a_dry_run_writes_nothing(db: Database, tmp_path: Path) -> None:
    summary = run(db, write(tmp_path, "s.xml", camt054(sandbox_batch())), dry_run=True)
    assert (summary.entries, summary.dry_run, summary.file_id) == (3, True, None)
    assert count(db, InboundEvent.id) == 0 and count(db, SettlementEntry.id) == 0


@pytest.mark.parametrize(
    "url",
    ["sqlite:///{tmp}/var/kassa.db", "postgresql://nobody@127.0.0.1:9/nowhere"],
    ids=["sqlite in a directory not there yet", "postgresql that does not answer"],
)
def test_a_dry_run_from_the_command_line_opens_no_database(tmp_path: Path, url: str) -> None:
    path = write(tmp_path, "s.xml", camt053(sandbox_batch()))
    before = sorted(tmp_path.rglob("*"))
    group = _Wrapped(commands={"settlement": settlement})
    env = {"KASSA_DATABASE_URL": url.format(tmp=tmp_path)}
    args = ["settlement", "import", str(path), "--dry-run"]
    result = CliRunner().invoke(group, [*args, "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["entries"], summary["dry_run"], summary["file_id"]) == (3, True, None)
    assert summary["sums"] == {"EUR": {"CRDT": "29.65"}}
    text = CliRunner().invoke(group, args, env=env)
    assert text.stdout.startswith("s.xml: camt053, 3 entries, would import\n"), text.output
    assert sorted(tmp_path.rglob("*")) == before  # no database file, no var/ directory


def test_a_csv_dry_run_reads_its_mapping_from_the_configuration(tmp_path: Path) -> None:
    """A camt dry run reads no configuration; a CSV's columns are configured, so its does."""
    path = write(tmp_path, "d.csv", to_csv(sandbox_batch()))
    group = _Wrapped(commands={"settlement": settlement})
    env = {"KASSA_DATABASE_URL": f"sqlite:///{tmp_path}/k.db"}
    args = ["settlement", "import", str(path), "--dry-run", "--json"]
    result = CliRunner().invoke(group, args, env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert (summary["mapping"], summary["entries"]) == ("sandbox", 3)
    unknown = CliRunner().invoke(group, [*args, "--mapping", "nosuch"], env=env)
    assert unknown.exit_code == 2
    assert "no CSV mapping 'nosuch': configured are sandbox" in unknown.output


class _Wrapped(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KassaError as exc:
            click.echo(f"kassa: {exc}", err=True)
            sys.exit(2)


def test_the_command_line(db: Database, tmp_path: Path) -> None:
    group = _Wrapped(commands={"settlement": settlement})
    env = {"KASSA_DATABASE_URL": db.url}
    path = write(tmp_path, "s.xml", camt053(sandbox_batch()))
    result = CliRunner().invoke(group, ["settlement", "import", str(path), "--json"], env=env)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["format"], summary["entries"], summary["duplicate"]) == ("camt053", 3, False)
    assert summary["sums"] == {"EUR": {"CRDT": "29.65"}}
    assert [(x["entries"], x["lines"], x["warnings"]) for x in summary["statements"]] == [(1, 3, 0)]
    again = CliRunner().invoke(group, ["settlement", "import", str(path)], env=env)
    assert "already imported" in again.output
    bad = write(tmp_path, "bad.csv", "Datum;Betrag\n1;2\n")
    failed = CliRunner().invoke(group, ["settlement", "import", str(bad)], env=env)
    assert failed.exit_code == 2
    assert failed.output.startswith("kassa: line 1: the CSV header matches no configured mapping")


CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "settlement" / "corpus"


def test_a_flawed_statement_is_imported_by_its_entries_and_its_flaws_stored(
    db: Database, tmp_path: Path
) -> None:
    summary = run(db, CORPUS / "kassa_missing_and_contradicting.xml")
    assert (summary.entries, summary.stored) == (5, 5)
    assert summary.sums == {"GBP": {"CRDT": "170.00", "DBIT": "30.00"}}
    assert summary.warning_counts == {
        "booking-date-missing": 1, "detail-direction-differs": 1,
        "details-sum-differs": 1, "status-missing": 1,
    }  # fmt: skip
    with db.unit_of_work(readonly=True) as uow:
        [statement] = uow.session.scalars(select(SettlementStatement)).all()
        assert (statement.statement_id, statement.account, statement.entries) == (
            "FLAWS-GBP", "GB33BUKB20201555555555", 5,
        )  # fmt: skip
        assert (statement.first_day, statement.last_day, statement.warning_count) == (
            "2026-11-25", "2026-11-26", 4,
        )  # fmt: skip
        assert (statement.opening, statement.closing) == ("1000.00 GBP", "1140.00 GBP")
        rows = uow.session.scalars(select(SettlementFileWarning).order_by(SettlementFileWarning.id))
        assert [(w.code, w.statement_row_id, w.line) for w in rows] == [
            ("status-missing", statement.id, 22),
            ("booking-date-missing", statement.id, 34),
            ("detail-direction-differs", statement.id, 48),
            ("details-sum-differs", statement.id, 51),
        ]
        file = uow.session.scalars(select(SettlementFile)).one()
        assert file.warning_counts == summary.warning_counts


def test_a_pending_movement_booked_in_a_later_file_is_updated_not_skipped(
    db: Database, tmp_path: Path
) -> None:
    text = camt054(sandbox_batch())
    pending = text.replace("<Cd>BOOK</Cd>", "<Cd>PDNG</Cd>")
    assert pending != text
    first = run(db, write(tmp_path, "pending.xml", pending))
    assert (first.stored, first.updated) == (3, 0)
    booked = run(db, write(tmp_path, "booked.xml", text))
    assert (booked.stored, booked.updated, booked.skipped) == (0, 3, 0)
    again = run(db, write(tmp_path, "again.xml", text.replace("</MsgId>", "-2</MsgId>", 1)))
    assert (again.stored, again.updated, again.skipped) == (0, 0, 3)
    with db.unit_of_work(readonly=True) as uow:
        rows = uow.session.scalars(select(SettlementEntry)).all()
        files = {f.filename: f.id for f in uow.session.scalars(select(SettlementFile))}
        assert {(r.status, r.file_id) for r in rows} == {("BOOK", files["booked.xml"])}
        assert len(rows) == 3


def test_the_command_line_lists_the_warnings(db: Database) -> None:
    group = _Wrapped(commands={"settlement": settlement})
    env = {"KASSA_DATABASE_URL": db.url}
    path = str(CORPUS / "genkgo_camt054.v8.xml")
    result = CliRunner().invoke(
        group, ["settlement", "import", path, "--dry-run", "--json"], env=env
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert (summary["entries"], summary["sums"]) == (3, {"SEK": {"DBIT": "200000.00"}})
    assert [(w["code"], w["expected"], w["found"], w["line"]) for w in summary["warnings"]] == [
        ("details-sum-differs", "200000.00 SEK DBIT", "9.50 CHF CRDT", 63),
        ("batch-count-differs", "3", "2", 92),
    ]
    text = CliRunner().invoke(group, ["settlement", "import", path, "--dry-run"], env=env)
    assert "warning: details-sum-differs (1)" in text.output


def test_an_imported_file_is_published_to_the_merchants_whose_account_it_names(
    db: Database, tmp_path: Path
) -> None:
    from gateway.adapters.models import Merchant
    from gateway.adapters.webhook_models import WebhookDelivery
    from gateway.services.webhooks import endpoints
    from tests.factories import merchant_with_stores

    ours = merchant_with_stores(db, "ours")["merchant_id"]
    other = merchant_with_stores(db, "other")["merchant_id"]
    with db.unit_of_work() as uow:
        uow.session.get_one(Merchant, ours).settlement_accounts = ["DE89370400440532013000"]
        for merchant in (ours, other):
            endpoints.create_endpoint(
                uow, merchant, url="https://erp.example/hook", event_types=["settlement.*"],
                description=None, actor="test",
            )  # fmt: skip
        uow.commit()
    summary = run(db, write(tmp_path, "s.xml", camt053(sandbox_batch())))
    with db.unit_of_work(readonly=True) as uow:
        sent = [
            (d.merchant_id, d.event_type, d.body)
            for d in uow.session.scalars(select(WebhookDelivery))
        ]
    assert [(merchant, kind) for merchant, kind, _ in sent] == [(ours, "settlement.imported")]
    data = json.loads(sent[0][2])["data"]
    assert (data["file_id"], data["entries"]) == (summary.file_id, 3)
