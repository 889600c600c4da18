"""Conformance corpus: public camt.053/054 samples and hand-built files for what none showed.

Each file in ``tests/fixtures/settlement/corpus/`` is read as a bank sends it, and must give the
booked sums of its entries and exactly the flaws listed. The expected figures were worked out
from the files themselves (reading each ``Ntry/Amt`` and ``CdtDbtInd`` and adding by hand, and
checked with a few lines of ``xml.etree`` + ``Decimal``), never with Kassa's reader.

Public sources (copied unchanged unless said):

| file | project, commit, path |
|------|-----------------------|
| ``genkgo_*.xml`` | github.com/genkgo/camt (PHP camt parser, MIT), commit c99e4fe37347cd6d0daf9dc211186aa28794e60f, ``test/data/<name>`` |
| ``kedder_camt053.xml`` | github.com/kedder/ofxstatement-iso20022, commit d808c42d57146eb4d499b7293ddd1c648baeceb9, ``tests/samples/camt053.xml`` |
| ``kedder_davider80.xml`` | same repository and commit, ``tests/samples/davider80.xml`` |
| ``genkgo_camt053.v2.five.decimals.cr-only.xml`` | genkgo's ``camt053.v2.five.decimals.xml`` with every LF replaced by CR (no public CR-only file was found) |
| ``kassa_*.xml`` | built by hand for Kassa: no public sample was found for these spellings and flaws; each says what it reproduces |
"""  # noqa: E501

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import pytest

from gateway.adapters.settlement_files import InvalidSettlementFile, SettlementLine
from gateway.adapters.settlement_files.camt import minor_units, parse_camt
from gateway.adapters.settlement_files.findings import FileReport

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "settlement" / "corpus"
NS53 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"


@dataclass(frozen=True)
class Case:
    file: str
    case: str  # what of the issue it covers
    statements: int
    lines: int
    booked: dict[str, dict[str, int]]  # currency -> direction -> minor units, by entry
    warnings: dict[str, int]  # code -> count


CASES = [
    Case("genkgo_camt053.v2.multi.statement.xml", "several statements in one file; balances add up",
         2, 2, {"EUR": {"CRDT": 885, "DBIT": 700}}, {}),
    Case("genkgo_camt053.v2.five.decimals.xml", "8.850 EUR (zeros beyond the minor unit);"
         " 18.150 + 8.850 = 27.000, not CLBD 27.050",
         1, 1, {"EUR": {"CRDT": 885}}, {"balance-differs": 1}),
    Case("genkgo_camt053.v2.five.decimals.cr-only.xml", "CR-only line endings: same as above",
         1, 1, {"EUR": {"CRDT": 885}}, {"balance-differs": 1}),
    Case("genkgo_camt053.v4.xml", "a foreign-currency detail (0 SEK) on an 8.85 EUR entry;"
         " OPBD in EUR, CLBD in SEK",
         1, 1, {"EUR": {"CRDT": 885}}, {"details-sum-differs": 1, "balance-currency-differs": 1}),
    Case("genkgo_camt054.v8.xml", "200000 SEK debit (no decimal point) whose three details add up"
         " to 9.50 CHF credit; Btch/NbOfTxs 2 for 3 TxDtls",
         1, 3, {"SEK": {"DBIT": 20_000_000}},
         {"details-sum-differs": 1, "batch-count-differs": 1}),
    Case("genkgo_camt054.v2.xml", "a batch whose three TxDtls carry only references",
         1, 1, {"SEK": {"DBIT": 20_000_000}}, {"details-not-split": 1}),
    Case("genkgo_camt53.only-Dt-with-DtTm.xml", "5442.09000 RON opening balance, no CLBD, no entry",
         1, 0, {}, {"balance-missing": 1}),
    Case("kedder_camt053.xml", "a clean .08 statement: Othr account id, summary and balance agree",
         1, 1, {"CHF": {"CRDT": 128_430}}, {}),
    Case("kedder_davider80.xml", "16 entries, amounts such as 38 and 905.3; 9433.31 - 3679.85 ="
         " 5753.46",
         1, 16, {"CHF": {"CRDT": 36_800, "DBIT": 404_785}}, {}),
    Case("kassa_amount_spellings.xml", "01.00, .13, 79255.00 JPY, 200.0000 GBP in TxsSummry;"
         " three accounts in one file",
         3, 4, {"EUR": {"CRDT": 113}, "JPY": {"CRDT": 79_255}, "GBP": {"DBIT": 20_000}}, {}),
    Case("kassa_missing_and_contradicting.xml", "no Sts, BookgDt as DtTm, no BookgDt, a DBIT"
         " entry with a CRDT detail, 100.00 GBP with 262.55 GBP / 303.00 EUR details",
         1, 5, {"GBP": {"CRDT": 17_000, "DBIT": 3_000}},
         {"status-missing": 1, "booking-date-missing": 1, "detail-direction-differs": 1,
          "details-sum-differs": 1}),
    Case("kassa_balance_and_summary.xml", "PRCD 200.00 + 30.00 - 12.50 = 217.50, CLBD 227.50;"
         " TxsSummry claims 3 entries",
         1, 2, {"EUR": {"CRDT": 3_000, "DBIT": 1_250}},
         {"balance-differs": 1, "summary-differs": 3}),
]  # fmt: skip


def read(name: str) -> tuple[list[SettlementLine], FileReport]:
    report = FileReport()
    with (CORPUS / name).open("rb") as f:
        return list(parse_camt(f, report=report)), report


def booked(report: FileReport) -> dict[str, dict[str, int]]:
    total: dict[str, Counter[str]] = {}
    for statement in report.statements:
        for currency, sums in statement.booked.items():
            total.setdefault(currency, Counter()).update(sums)
    return {c: dict(sums) for c, sums in total.items()}


def test_every_corpus_file_is_covered() -> None:
    assert sorted(p.name for p in CORPUS.glob("*.xml")) == sorted(c.file for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.file for c in CASES])
def test_each_file_books_its_entries_and_flags_its_flaws(case: Case) -> None:
    lines, report = read(case.file)
    assert (len(report.statements), len(lines)) == (case.statements, case.lines), case.case
    assert booked(report) == case.booked, case.case
    assert dict(report.counts) == case.warnings, case.case
    for warning in report.warnings:
        assert warning.path.startswith("Document/") and warning.message
        assert warning.statement is not None


def test_a_debit_entry_is_booked_as_a_debit_whatever_its_details_say() -> None:
    lines, report = read("genkgo_camt054.v8.xml")
    assert {(x.currency, x.indicator) for x in lines} == {("CHF", "CRDT")}  # details as written
    assert {(x.entry_amount_minor, x.entry_indicator) for x in lines} == {(20_000_000, "DBIT")}
    [summed, count] = report.warnings
    assert (summed.expected, summed.found) == ("200000.00 SEK DBIT", "9.50 CHF CRDT")
    assert summed.path.endswith("Ntfctn[1]/Ntry[1]/NtryDtls") and summed.line == 63
    assert (count.expected, count.found, count.line) == ("3", "2", 92)


def test_the_balance_check_names_both_values_and_the_line_whatever_the_line_endings() -> None:
    for name in (
        "genkgo_camt053.v2.five.decimals.xml",
        "genkgo_camt053.v2.five.decimals.cr-only.xml",
    ):
        _, report = read(name)
        [warning] = report.warnings
        assert (warning.code, warning.expected, warning.found) == (
            "balance-differs", "27.000 EUR", "27.050 EUR",
        )  # fmt: skip
        assert warning.path.endswith("Stmt[1]/Bal[CLBD]") and warning.line == 49
        assert "difference 0.050" in warning.message


def test_a_batch_of_references_becomes_one_line_of_the_entry_with_its_references() -> None:
    [line], report = read("genkgo_camt054.v2.xml")
    assert (line.amount_minor, line.currency, line.indicator) == (20_000_000, "SEK", "DBIT")
    assert line.entry_tx_count == 3 and line.end_to_end_id is None
    assert "MUELL/FINP/RA12345" in (line.remittance or "")
    [warning] = report.warnings
    assert (warning.expected, warning.found) == ("an Amt in each of 3 TxDtls", "3 without")


def test_missing_elements_are_flagged_and_dated() -> None:
    lines, report = read("kassa_missing_and_contradicting.xml")
    assert [x.status for x in lines] == ["BOOK"] * 5
    assert [str(x.booked_on) for x in lines] == [
        "2026-11-25", "2026-11-25", "2026-11-26", "2026-11-26", "2026-11-26",
    ]  # fmt: skip
    by_code = {w.code: w for w in report.warnings if w.code != "details-sum-differs"}
    assert by_code["status-missing"].path.endswith("Stmt[1]/Ntry[1]/Sts")
    assert by_code["booking-date-missing"].path.endswith("Stmt[1]/Ntry[3]/BookgDt")
    turned = by_code["detail-direction-differs"]
    assert (turned.expected, turned.found) == ("DBIT", "CRDT")
    assert turned.path.endswith("Ntry[4]/NtryDtls/TxDtls[1]/CdtDbtInd")
    [fx] = [w for w in report.warnings if w.code == "details-sum-differs"]
    assert (fx.expected, fx.found) == ("100.00 GBP CRDT", "262.55 GBP CRDT")
    assert lines[4].gross_minor is None  # the 303.00 EUR instructed amount is not a GBP gross
    # By entry the balance adds up (no balance warning); by details it would be 1352.55.
    assert report.statements[0].closing == (Decimal("1140.00"), "GBP")


def test_the_summary_check_names_each_contradiction() -> None:
    _, report = read("kassa_balance_and_summary.xml")
    found = {w.path.rpartition("Stmt[1]/")[2]: (w.expected, w.found) for w in report.warnings}
    assert found == {
        "Bal[CLBD]": ("217.50 EUR", "227.50 EUR"),
        "TxsSummry/TtlNtries/NbOfNtries": ("2", "3"),
        "TxsSummry/TtlNtries/Sum": ("42.50", "52.50"),
        "TxsSummry/TtlCdtNtries/NbOfNtries": ("1", "2"),
    }


@pytest.mark.parametrize(
    ("text", "currency", "minor"),
    [("01.00", "EUR", 100), (".13", "EUR", 13), ("200000", "SEK", 20_000_000),
     ("79255.00", "JPY", 79_255), ("200.0000", "GBP", 20_000), ("8.850", "EUR", 885),
     ("0", "EUR", 0), ("3.", "CHF", 300), ("1.234", "KWD", 1_234)],
)  # fmt: skip
def test_xs_decimal_spellings_are_exact_minor_units(text: str, currency: str, minor: int) -> None:
    assert minor_units(text, currency) == minor


@pytest.mark.parametrize("text", ["1.001", "79255.5", ".", "", "1e3", "1,00", "- 1"])
def test_a_non_zero_digit_beyond_the_minor_unit_or_a_non_number_is_an_error(text: str) -> None:
    currency = "JPY" if text == "79255.5" else "EUR"
    with pytest.raises(ValueError):
        minor_units(text, currency)


def balance(code: str, euros: int) -> str:
    return (
        f'<Bal><Tp><CdOrPrtry><Cd>{code}</Cd></CdOrPrtry></Tp><Amt Ccy="EUR">{euros}.00</Amt>'
        "<CdtDbtInd>CRDT</CdtDbtInd><Dt><Dt>2026-11-25</Dt></Dt></Bal>"
    )


def batch(count: int, amounts: bool) -> Iterator[bytes]:
    """A camt.053 with one entry of ``count`` TxDtls (with or without amounts) of 1.00 EUR."""
    yield (
        f'<?xml version="1.0"?><Document xmlns="{NS53}"><BkToCstmrStmt><GrpHdr><MsgId>B</MsgId>'
        "<CreDtTm>2026-11-25T00:00:00Z</CreDtTm></GrpHdr><Stmt><Id>B-1</Id><Acct><Id><IBAN>"
        "DE89370400440532013000</IBAN></Id></Acct>"
        f"{balance('OPBD', 0)}{balance('CLBD', count)}"
        f'<Ntry><Amt Ccy="EUR">{count}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd>'
        "</Sts><BookgDt><Dt>2026-11-25</Dt></BookgDt><AcctSvcrRef>B</AcctSvcrRef><NtryDtls>"
        f"<Btch><NbOfTxs>{count}</NbOfTxs></Btch>"
    ).encode()
    amount = '<Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>' if amounts else ""
    for i in range(count):
        yield f"<TxDtls><Refs><EndToEndId>E{i}</EndToEndId></Refs>{amount}</TxDtls>\n".encode()
    yield b"</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>"


@pytest.mark.parametrize("amounts", [True, False])
def test_a_batch_of_hundreds_of_details_in_one_entry(amounts: bool) -> None:
    report = FileReport()
    lines = list(parse_camt(io.BytesIO(b"".join(batch(400, amounts))), report=report))
    assert booked(report) == {"EUR": {"CRDT": 40_000}}
    if amounts:
        assert (len(lines), sum(x.amount_minor for x in lines), report.flawed) == (
            400,
            40_000,
            False,
        )
        assert lines[-1].location.startswith(
            "Document/BkToCstmrStmt/Stmt[1]/Ntry[1]/NtryDtls/TxDtls[400]"
        )
    else:
        [line] = lines
        assert (line.amount_minor, line.entry_tx_count) == (40_000, 400)
        assert (line.remittance or "").split()[:3] == ["E0", "E1", "E2"]
        assert dict(report.counts) == {"details-not-split": 1}


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (lambda data: data[: len(data) // 2], r"not well-formed XML at line \d+"),
        (lambda data: b"%PDF-1.4\n" + data, r"not well-formed XML at line 1"),
        (lambda data: data.replace(b'Ccy="CHF">1284.30</Amt>', b'Ccy="CHF">1284.305</Amt>', 1),
         r"Ntry\[1\]/Amt \(line \d+\): '1284.305' has non-zero digits"),
    ],
    ids=["truncated", "not-xml", "beyond-minor-unit"],
)  # fmt: skip
def test_what_cannot_be_read_or_would_book_wrongly_is_still_refused(mangle, message) -> None:  # type: ignore[no-untyped-def]
    data = mangle((CORPUS / "kedder_camt053.xml").read_bytes())
    with pytest.raises(InvalidSettlementFile, match=message):
        list(parse_camt(io.BytesIO(data)))
