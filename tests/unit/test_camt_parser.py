"""The camt.053/054 parser: public sample structures, sandbox files, faults, streaming memory."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.adapters.settlement_files import InvalidSettlementFile, SettlementLine, detect_format
from gateway.adapters.settlement_files.camt import parse_camt
from sandbox_bank.camt import camt053, camt054
from sandbox_bank.settlement import SettlementBatch
from sandbox_bank.settlement import SettlementLine as SandboxLine

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "settlement"
NS53 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


def parse(data: bytes | str) -> list[SettlementLine]:
    raw = data.encode() if isinstance(data, str) else data
    return list(parse_camt(io.BytesIO(raw)))


def sandbox_batch(currency: str = "EUR") -> SettlementBatch:
    day = date(2026, 11, 25)
    lines = (
        SandboxLine("payment", "K1", "bp1", None, None, day, 1234, 29, currency, "bill 1 T01"),
        SandboxLine("payment", "K2", "bp2", None, None, day, 2000, 40, currency, "bill 2 T02"),
        SandboxLine("refund", "K1", "bp1", "br1", "rf1", day, 200, 0, currency, "refund K1"),
    )
    return SettlementBatch(
        "STL-20261125", "KASSA-DEMO-0001", "Kassa Demo", "DE89370400440532013000", day,
        currency, datetime(2026, 11, 25, 23, tzinfo=UTC), 0, lines,
    )  # fmt: skip


def test_v02_minimal_structure_takes_the_entry_amount_for_a_lone_txdtls() -> None:
    [line] = parse((FIXTURES / "camt053_v02_minimal.xml").read_bytes())
    assert (line.source, line.amount_minor, line.currency, line.indicator) == (
        "camt053", 740, "EUR", "CRDT",
    )  # fmt: skip
    assert (line.status, line.booked_on, line.value_on) == (
        "BOOK", date(2026, 11, 25), date(2026, 11, 26),
    )  # fmt: skip
    assert line.creditor_reference == "RF18539007547034"
    assert (line.statement_id, line.account_iban) == ("STMT-02-0001", "DE89370400440532013000")
    assert line.entry_ref is None and line.identity() is None


def test_v08_notification_batch_keeps_twins_and_the_batch_fields() -> None:
    lines = parse((FIXTURES / "camt054_v08_batch.xml").read_bytes())
    assert [(x.amount_minor, x.currency, x.indicator) for x in lines] == [
        (310, "CHF", "CRDT"), (320, "CHF", "CRDT"), (320, "CHF", "CRDT"),
    ]  # fmt: skip
    assert sum(x.amount_minor for x in lines) == 950
    assert {(x.entry_ref, x.entry_amount_minor, x.entry_tx_count) for x in lines} == {
        ("ACSR-2611-0001", 950, 3)
    }
    assert [x.end_to_end_id for x in lines] == ["E2E-0001", "E2E-0002", "E2E-0002"]
    assert lines[1].identity() == lines[2].identity()  # twins: the importer counts occurrences
    assert [x.remittance for x in lines] == ["first line", None, "block 1 block 2"]
    assert lines[1].creditor_reference == "ISR 2"
    assert lines[0].status == "BOOK" and lines[0].source == "camt054"
    assert "Ntry[1]/NtryDtls/TxDtls[2]" in lines[1].location and "line" in lines[1].location


def test_reversal_datetime_pending_charges_and_entries_without_details() -> None:
    lines = parse((FIXTURES / "camt053_v04_reversal_charges.xml").read_bytes())
    reversal, pending, refund = lines
    assert (reversal.amount_minor, reversal.currency, reversal.indicator) == (1500, "JPY", "CRDT")
    assert reversal.reversal and reversal.original_indicator == "DBIT"
    assert reversal.booked_on == date(2026, 11, 25) and reversal.entry_ref == "REV-0001"
    assert reversal.identity() == "REV-0001"
    assert (pending.status, pending.charges_minor, pending.charges_included) == ("PDNG", 30, True)
    assert (refund.indicator, refund.amount_minor, refund.charges_minor) == ("DBIT", 300, 12)
    assert refund.charges_included is False and refund.end_to_end_id == "K7Q2M9"


@pytest.mark.parametrize("make", [camt053, camt054])
@pytest.mark.parametrize("currency", ["EUR", "JPY", "KWD"])
def test_sandbox_files_give_the_sandbox_totals(make: object, currency: str) -> None:
    batch = sandbox_batch(currency)
    lines = parse(make(batch))  # type: ignore[operator]
    assert sum(x.signed_minor for x in lines) == batch.net_minor
    assert sum(x.gross_minor or 0 for x in lines if x.indicator == "CRDT") == batch.gross_minor
    assert sum(x.charges_minor or 0 for x in lines) == batch.fees_minor
    assert [x.end_to_end_id for x in lines] == [line.reference for line in batch.lines]
    assert [x.instruction_id for x in lines] == [None, None, "rf1"]
    assert {(x.entry_ref, x.entry_amount_minor, x.entry_tx_count) for x in lines} == {
        (batch.settlement_id, batch.net_minor, 3)
    }


def test_any_camt_version_is_detected() -> None:
    for version in ("02", "04", "08", "13"):
        namespace = f"urn:iso:std:iso:20022:tech:xsd:camt.054.001.{version}"
        head = f'<?xml version="1.0"?><Document xmlns="{namespace}">'
        assert detect_format(head.encode()) == "camt054"
    assert detect_format(b"\xef\xbb\xbfdate,net\n") == "csv"
    with pytest.raises(InvalidSettlementFile, match="not ISO 20022"):
        detect_format(b'<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09">')


def test_too_many_decimals_names_the_element_and_line() -> None:
    text = camt053(sandbox_batch()).replace(
        '<Amt Ccy="EUR">12.05</Amt>', '<Amt Ccy="EUR">12.055</Amt>', 1
    )
    assert "12.055" in text
    beyond = r"TxDtls\[1\]/Amt \(line \d+\): '12.055' has non-zero digits beyond the 2 decimal"
    with pytest.raises(InvalidSettlementFile, match=beyond):
        parse(text)


def test_malformed_xml_names_the_line() -> None:
    text = camt053(sandbox_batch()).replace("</NtryDtls>", "</NtryDetails>")
    with pytest.raises(InvalidSettlementFile, match=r"not well-formed XML at line \d+"):
        parse(text)


def test_entities_and_dtds_are_refused() -> None:
    bomb = (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;">]>'
        f'<Document xmlns="{NS53}"><BkToCstmrStmt>&lol2;</BkToCstmrStmt></Document>'
    )
    with pytest.raises(InvalidSettlementFile, match="DTDs"):
        parse(bomb)


def test_other_documents_are_refused() -> None:
    with pytest.raises(InvalidSettlementFile, match="expected Document"):
        parse('<Document xmlns="urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"/>')


# Every attack defusedxml refuses stays refused with the lxml parser (its tests' documents,
# github.com/tiran/defusedxml xmltestdata: xmlbomb, xmlbomb2 (quadratic), external,
# external_file, dtd, plus a parameter entity and a bare DOCTYPE).
_DOC = f'<Document xmlns="{NS53}"><BkToCstmrStmt>%s</BkToCstmrStmt></Document>'
_ATTACKS = {
    "billion_laughs": '<!DOCTYPE Document [<!ENTITY a "1234567890">'
    + "".join(
        f'<!ENTITY {c} "{("&" + p + ";") * 10}">'
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    + "]>"
    + _DOC % "&i;",
    "quadratic_blowup": f'<!DOCTYPE Document [<!ENTITY x "{"X" * 50_000}">]>'
    + _DOC % ("&x;" * 2_000),
    "external_entity_file": '<!DOCTYPE Document [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    + _DOC % "&e;",
    "external_entity_http": '<!DOCTYPE Document [<!ENTITY e SYSTEM "http://127.0.0.1:9/x">]>'
    + _DOC % "&e;",
    "external_dtd": '<!DOCTYPE Document SYSTEM "http://127.0.0.1:9/camt.dtd">' + _DOC % "",
    "parameter_entity": '<!DOCTYPE Document [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>'
    + _DOC % "",
    "bare_doctype": "<!DOCTYPE Document>" + _DOC % "",
}


@pytest.mark.parametrize("attack", sorted(_ATTACKS))
def test_every_defusedxml_attack_is_refused(attack: str) -> None:
    document = '<?xml version="1.0" encoding="UTF-8"?>\n' + _ATTACKS[attack]
    with pytest.raises(InvalidSettlementFile, match="may not contain DTDs or entities"):
        parse(document)


def test_an_undeclared_entity_is_not_well_formed() -> None:
    with pytest.raises(InvalidSettlementFile, match="not well-formed XML"):
        parse(_DOC % "&passwd;")


def test_xinclude_is_not_followed() -> None:
    """An XInclude element is an unknown element like any other: nothing is read from disk."""
    include = '<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="/etc/passwd"/>'
    lines = parse(camt053(sandbox_batch()).replace("<GrpHdr>", include + "<GrpHdr>", 1))
    assert lines and not any("root:" in str(line) for line in lines)


@pytest.mark.parametrize("ending", ["\n", "\r\n", "\r"])
@pytest.mark.parametrize("chunk", [1, 2, 7, 1 << 16])
def test_line_numbers_whatever_the_line_ends_and_reads(ending: str, chunk: int) -> None:
    """CR LF split across two reads, or a lone CR: lines are counted as the file shows them."""
    text = camt053(sandbox_batch()).replace(
        '<Amt Ccy="EUR">12.05</Amt>', '<Amt Ccy="EUR">12.055</Amt>', 1
    )
    want = text[: text.index("12.055")].count("\n") + 1
    raw = io.BytesIO(text.replace("\n", ending).encode())

    class Trickle(io.RawIOBase):
        def readinto(self, b: bytearray) -> int:  # type: ignore[override]
            data = raw.read(min(len(b), chunk))
            b[: len(data)] = data
            return len(data)

    with pytest.raises(InvalidSettlementFile, match=rf"TxDtls\[1\]/Amt \(line {want}\)"):
        list(parse_camt(Trickle()))  # type: ignore[arg-type]
