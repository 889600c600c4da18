"""A settlement file's card numbers never reach the database, the archive, an error or stderr;
a large import is staged in short transactions and published whole, or not at all."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.adapters.card_scan import file_is_private, scan_database, scan_folder
from gateway.adapters.db import Database
from gateway.adapters.models import InboundEvent, SettlementEntry, SettlementFile
from gateway.adapters.settlement_files import InvalidSettlementFile, sha256_of
from gateway.config import load_config
from gateway.entrypoints.cli import main
from gateway.services.settlement import file_import
from gateway.services.settlement.file_import import import_settlement_file
from tests.conftest import isolated_env
from tests.unit.test_camt_parser import NS53

SETTINGS = load_config(env=isolated_env()).settlement
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "settlement"
IBAN = "DE89370400440532013000"
PANS = ("4111111111111111", "5500000000000004", "4222222222222")


def camt(count: int, remittance: str = "payment {i} of the day", bad_at: int | None = None) -> str:
    """A camt.053 with one batch entry of ``count`` TxDtls of 1.00 EUR; ``bad_at`` has 1.001."""
    head = (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS53}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>M</MsgId><CreDtTm>2026-11-25T00:00:00Z</CreDtTm></GrpHdr><Stmt>"
        f"<Id>S-1</Id><Acct><Id><IBAN>{IBAN}</IBAN></Id></Acct><Ntry>"
        f'<Amt Ccy="EUR">{count}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        "<BookgDt><Dt>2026-11-25</Dt></BookgDt><AcctSvcrRef>BATCH</AcctSvcrRef><NtryDtls>"
        f"<Btch><NbOfTxs>{count}</NbOfTxs></Btch>\n"
    )
    body = "".join(
        f"<TxDtls><Refs><AcctSvcrRef>A{i}</AcctSvcrRef><EndToEndId>E{i}</EndToEndId></Refs>"
        f'<Amt Ccy="EUR">{"1.001" if i == bad_at else "1.00"}</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
        f"<RmtInf><Ustrd>{remittance.format(i=i)}</Ustrd></RmtInf></TxDtls>\n"
        for i in range(count)
    )
    return head + body + "</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>\n"


def run(db: Database, path: Path, settings: Any = SETTINGS, **options: Any) -> Any:
    with db.unit_of_work() as uow:
        return import_settlement_file(uow, path, settings, **options)


def count(db: Database, column: Any, *where: Any) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count(column)).where(*where)) or 0)


def no_card_numbers(db: Database) -> list[str]:
    with db.engine.connect() as conn:
        return [str(hit) for hit in scan_database(conn)]


REMITTANCES = [
    "card 4111111111111111 paid",
    "Karte 5500.0000.0000.0004 bezahlt",
    "PAN 4111_1111_1111_1111",
    "Kartenzahlung 4111 1111 1111 1111 am 25.11.2026",
    "13 digits 4222222222222 ok",
]


def test_card_numbers_in_a_camt_file_are_masked_everywhere(db: Database, tmp_path: Path) -> None:
    text = camt(len(REMITTANCES), "{i}").replace("<Ustrd>", "<Ustrd>R")
    for i, remittance in enumerate(REMITTANCES):
        text = text.replace(f"<Ustrd>R{i}</Ustrd>", f"<Ustrd>{remittance}</Ustrd>")
    text = text.replace("<EndToEndId>E2</EndToEndId>", "<EndToEndId>4111111111111111</EndToEndId>")
    text = text.replace("<Id>S-1</Id>", "<Id>4111 1111 1111 1111</Id>")  # the statement's id
    text = text.replace('<Amt Ccy="EUR">5.00</Amt>', '<Amt Ccy="EUR">6.00</Amt>')  # a warning
    path = tmp_path / "cards.xml"
    path.write_text(text)
    summary = run(db, path)
    assert summary.entries == 5 and summary.pans_masked == 5
    assert summary.warning_counts  # stored too, and scanned below
    assert [st["id"] for st in summary.statements] == ["4111 11** **** 1111"]
    with db.unit_of_work(readonly=True) as uow:
        rows = uow.session.scalars(select(SettlementEntry).order_by(SettlementEntry.position))
        remittances = [row.remittance for row in rows]
        event = uow.session.scalars(select(InboundEvent)).one()
        raw, content_hash = event.body, event.content_hash
    assert remittances == [
        "card 411111******1111 paid",
        "Karte 5500.00**.****.0004 bezahlt",
        "PAN 4111_11**_****_1111",
        "Kartenzahlung 4111 11** **** 1111 am 25.11.2026",
        "13 digits 422222***2222 ok",
    ]
    body = raw.decode()
    assert "card 411111******1111 paid" in body and IBAN in body and "2026-11-25" in body
    assert len(raw) == len(text.encode())  # masked in place
    assert content_hash == summary.content_hash == sha256_of(path.open("rb"))[0]
    assert not any(pan in re.sub(r"[ ._\-]", "", body) for pan in PANS)
    assert no_card_numbers(db) == []
    assert run(db, path).duplicate  # the original's hash: the same file is still recognised


@pytest.mark.parametrize(
    "card",
    ["5500.0000.0000.0004", "5500_0000_0000_0004", "5500 0000 0000 0004", "5500-0000-0000-0004"],
)
def test_the_card_number_column_is_always_masked(db: Database, tmp_path: Path, card: str) -> None:
    data = (FIXTURES / "card_acquirer_report.csv").read_text().replace("4111 1111 1111 1111", card)
    path = tmp_path / "report.csv"
    path.write_text(data)
    run(db, path)
    with db.unit_of_work(readonly=True) as uow:
        pans = list(uow.session.scalars(select(SettlementEntry.masked_pan)))
    assert sorted(pans) == sorted(["550000******0004", "520000******0007", "411111******1111"])
    assert no_card_numbers(db) == []


def test_a_card_number_in_the_wrong_column_is_masked_in_the_error(
    db: Database, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    data = (FIXTURES / "card_acquirer_report.csv").read_text()
    data = data.replace("25.11.2026;MID-4711;T0000001;4111", "4111 1111 1111 1111;MID;T1;4111", 1)
    path = tmp_path / "wrong.csv"
    path.write_text(data)
    with pytest.raises(InvalidSettlementFile) as raised:
        run(db, path)
    assert "4111 11** **** 1111" in str(raised.value)
    with db.unit_of_work(readonly=True) as uow:
        event = uow.session.scalars(select(InboundEvent)).one()
        status, error = event.status, event.error or ""
    assert status == "rejected" and "4111 11** **** 1111" in error
    assert no_card_numbers(db) == []
    # The command line: the error on stderr, masked too, exit code 2.
    env = {**isolated_env(), "KASSA_DATABASE_URL": db.url}
    path.write_text(data.replace("MID;T1", "MID;T2"))  # another file, not a known one
    result = CliRunner().invoke(main, ["settlement", "import", str(path)], env=env)
    assert result.exit_code == 2
    assert "4111 11** **** 1111" in result.output and "4111 1111 1111 1111" not in result.output


def test_an_archived_copy_is_masked_and_private(db: Database, tmp_path: Path) -> None:
    settings = SETTINGS.model_copy(
        update={"store_max_bytes": 100, "archive_dir": str(tmp_path / "archive")}
    )
    path = tmp_path / "big.xml"
    path.write_text(camt(50, "card 4111 1111 1111 1111 paid {i}"))
    summary = run(db, path, settings)
    archived = tmp_path / "archive" / summary.content_hash
    assert archived.stat().st_size == path.stat().st_size
    assert "card 4111 11** **** 1111 paid 7" in archived.read_text()
    assert file_is_private(archived)
    assert list(scan_folder(tmp_path / "archive")) == []
    hits = [hit for hit in scan_folder(tmp_path) if hit.where == str(path)]
    assert len(hits) == 50, hits  # the original, outside Kassa's folders
    assert run(db, path, settings).duplicate


def test_a_file_failing_midway_leaves_nothing_visible(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_import, "BATCH_SIZE", 10)
    path = tmp_path / "late-fault.xml"
    path.write_text(camt(100, bad_at=95))
    with pytest.raises(InvalidSettlementFile, match=r"1\.001"):
        run(db, path)
    assert count(db, SettlementEntry.id) == 0 and count(db, SettlementFile.id) == 0
    good = tmp_path / "good.xml"
    good.write_text(camt(100))
    assert run(db, good).stored == 100  # nothing of the failed file stands in the way


def test_staged_entries_stay_invisible_until_the_file_is_published(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_import, "BATCH_SIZE", 100)
    path = tmp_path / "staged.xml"
    path.write_text(camt(3000))  # about 600 kB: the parser reads it in 64 kB pieces
    seen: list[tuple[int, int]] = []

    def look(_: int) -> None:  # between batches: what another connection sees now
        published = SettlementFile.state == "imported"
        seen.append((count(db, SettlementEntry.id), count(db, SettlementFile.id, published)))

    run(db, path, on_read=look)
    assert any(entries > 0 for entries, _ in seen), "the entries were written in batches"
    assert all(published == 0 for _, published in seen), "nothing published before the end"
    assert count(db, SettlementFile.id, SettlementFile.state == "imported") == 1


def test_an_import_that_died_midway_is_removed_when_the_file_comes_again(
    db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_import, "BATCH_SIZE", 10)
    path = tmp_path / "again.xml"
    path.write_text(camt(60))
    calls = {"n": 0}
    original = file_import._write

    def dying(*args: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt  # the process is stopped between two batches
        return original(*args)

    monkeypatch.setattr(file_import, "_write", dying)
    with pytest.raises(KeyboardInterrupt):
        run(db, path)
    monkeypatch.setattr(file_import, "_write", original)
    assert count(db, SettlementFile.id, SettlementFile.state == "imported") == 0
    summary = run(db, path)
    assert (summary.stored, summary.duplicate) == (60, False)
    assert count(db, SettlementEntry.id) == 60
