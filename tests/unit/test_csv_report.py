"""Acquirer CSV reports through the configured column mappings; PANs are masked on read."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from gateway.adapters.settlement_files import InvalidSettlementFile, SettlementLine
from gateway.adapters.settlement_files.csv_report import (
    CsvMapping,
    choose_mapping,
    csv_mappings,
    parse_csv,
)
from gateway.config import load_config
from gateway.domain.card_data import masked_card_number
from sandbox_bank.settlement import SettlementBatch, to_csv
from sandbox_bank.settlement import SettlementLine as SandboxLine

# The card acquirer fixture is written for Kassa in the generic settlement-detail layout of
# [settlement.csv_mappings.card_acquirer]; its first row carries the test PAN 4111 1111 1111 1111.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "settlement"
MAPPINGS = csv_mappings(load_config(env={}).settlement.csv_mappings)


def parse(data: bytes, mapping: CsvMapping) -> list[SettlementLine]:
    return list(parse_csv(io.BytesIO(data), mapping))


def sandbox_csv() -> tuple[SettlementBatch, bytes]:
    day = date(2026, 11, 25)
    lines = (
        SandboxLine("payment", "K1", "bp1", None, None, day, 1234, 29, "EUR", "bill 1"),
        SandboxLine("payment", "K2", "bp2", None, None, day, 2000, 40, "EUR", "bill 2"),
        SandboxLine("refund", "K1", "bp1", "br1", "rf1", day, 200, 0, "EUR", "refund"),
    )
    batch = SettlementBatch(
        "STL-20261125", "KASSA-DEMO-0001", "Kassa Demo", "DE89370400440532013000", day,
        "EUR", datetime(2026, 11, 25, 23, tzinfo=UTC), 0, lines,
    )  # fmt: skip
    return batch, to_csv(batch).encode()


def test_the_sandbox_csv_gives_the_sandbox_totals() -> None:
    batch, data = sandbox_csv()
    assert choose_mapping(data, MAPPINGS).name == "sandbox"
    lines = parse(data, MAPPINGS["sandbox"])
    assert sum(x.signed_minor for x in lines) == batch.net_minor
    assert sum(x.charges_minor or 0 for x in lines) == batch.fees_minor
    assert [x.indicator for x in lines] == ["CRDT", "CRDT", "DBIT"]
    assert [x.end_to_end_id for x in lines] == ["K1", "K2", "K1"]
    assert lines[2].account_servicer_ref == "br1" and lines[2].kind == "refund"
    assert lines[0].booked_on == date(2026, 11, 25) and lines[0].location == "line 2"


def test_the_card_acquirer_report_masks_pans_and_reads_decimal_commas() -> None:
    data = (FIXTURES / "card_acquirer_report.csv").read_bytes()
    mapping = choose_mapping(data, MAPPINGS)
    assert mapping.name == "card_acquirer"
    sale, other, refund = parse(data, mapping)
    assert (sale.amount_minor, sale.gross_minor, sale.charges_minor) == (121598, 123450, 1852)
    assert sale.masked_pan == "411111******1111" and sale.pan_masked
    assert "4111111111111111" not in repr(sale)
    assert other.masked_pan == "520000******0007" and not other.pan_masked
    assert (refund.indicator, refund.amount_minor, refund.kind) == ("DBIT", 500, "Refund")
    assert (sale.merchant_id, sale.terminal_id, sale.booked_on) == (
        "MID-4711", "T0000001", date(2026, 11, 25),
    )  # fmt: skip


def test_a_pan_in_any_text_column_is_masked() -> None:
    data = (
        b"date,merchant_id,reference,bank_payment_id,type,gross,fee,net,currency,bank_refund_id\n"
    )
    data += b"2026-11-25,M,card 4111111111111111,bp,payment,1.00,0.00,1.00,EUR,\n"
    [line] = parse(data, MAPPINGS["sandbox"])
    assert line.end_to_end_id == "card 411111******1111" and line.pan_masked
    assert masked_card_number("12345") == "12345"


@pytest.mark.parametrize(
    "card",
    ["5500.0000.0000.0004", "5500_0000_0000_0004", "5500 0000 0000 0004", "5500000000000004"],
)
def test_the_card_column_is_masked_whatever_its_separators(card: str) -> None:
    data = (FIXTURES / "card_acquirer_report.csv").read_bytes()
    data = data.replace(b"4111 1111 1111 1111", card.encode()).replace(
        b"4111111111111111", card.encode()
    )
    sale = parse(data, MAPPINGS["card_acquirer"])[0]
    assert sale.masked_pan == "550000******0004" and sale.pan_masked


def test_a_bad_amount_names_its_line_and_column() -> None:
    _, data = sandbox_csv()
    bad = data.replace(b"12.05", b"12.055")
    with pytest.raises(InvalidSettlementFile, match=r"line 2, column 'net': EUR has 2"):
        parse(bad, MAPPINGS["sandbox"])
    with pytest.raises(InvalidSettlementFile, match="line 3: 2 columns"):
        parse(data.splitlines(keepends=True)[0] + data.splitlines(keepends=True)[1] + b"a,b\n",
              MAPPINGS["sandbox"])  # fmt: skip


def test_an_unknown_header_matches_no_mapping() -> None:
    with pytest.raises(InvalidSettlementFile, match="matches no configured mapping"):
        choose_mapping(b"Datum;Betrag\n", MAPPINGS)
