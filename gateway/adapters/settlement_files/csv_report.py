"""Acquirer CSV settlement reports, read through a configurable column mapping.

A mapping (``[settlement.csv_mappings.<name>]`` in the configuration) names, for each of
Kassa's fields, the column header that holds it, plus the delimiter, decimal separator, date
format and sign convention. Kassa's fields:

| field                   | meaning                                                     |
|-------------------------|-------------------------------------------------------------|
| ``amount`` (required)   | the money that moved for this row (net of fees)             |
| ``currency``            | ISO 4217 code (else the mapping's ``currency``)             |
| ``booked_on``           | settlement or transaction date                              |
| ``gross``, ``fee``      | amount before fees; the fee deducted                        |
| ``kind``                | the row's type (sale, refund, chargeback, …)                |
| ``end_to_end_id``       | the payment's reference (Kassa's EMV 62-05 label)           |
| ``transaction_id``, ``account_servicer_ref``, ``instruction_id`` | the acquirer's ids |
| ``merchant_id``, ``terminal_id``, ``card_number``, ``remittance`` | as named           |

Sign conventions: ``signed`` (a debit is a negative ``amount``) or ``type`` (``amount`` is
unsigned; a ``kind`` listed in ``debit_types`` is a debit).

A full card number (PAN) is never kept: ``card_number`` is masked to first six and last four
digits, and any other text field holding a card number is masked the same way
(:mod:`gateway.domain.card_data` is the rule).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, BinaryIO

from gateway.adapters.settlement_files import InvalidSettlementFile, SettlementLine, counting
from gateway.domain.card_data import masked_card_number, scrub_card_numbers
from gateway.domain.money import Money
from gateway.errors import ConfigurationError, InvalidMoney

FIELDS = (
    "amount",
    "currency",
    "booked_on",
    "gross",
    "fee",
    "kind",
    "end_to_end_id",
    "transaction_id",
    "account_servicer_ref",
    "instruction_id",
    "merchant_id",
    "terminal_id",
    "card_number",
    "remittance",
)
_TEXT_FIELDS = (
    "end_to_end_id",
    "transaction_id",
    "account_servicer_ref",
    "instruction_id",
    "merchant_id",
    "terminal_id",
    "remittance",
    "kind",
)


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """How one report layout maps onto Kassa's fields."""

    name: str
    columns: Mapping[str, str]
    delimiter: str = ","
    decimal_separator: str = "."
    thousands_separator: str = ""
    date_format: str = "%Y-%m-%d"
    sign: str = "signed"  # signed | type
    debit_types: tuple[str, ...] = ()
    currency: str = ""
    encoding: str = "utf-8-sig"

    @classmethod
    def from_config(cls, name: str, values: Mapping[str, Any]) -> CsvMapping:
        columns = dict(values.get("columns", {}))
        unknown = sorted(set(columns) - set(FIELDS))
        if unknown or "amount" not in columns:
            raise ConfigurationError(
                f"settlement.csv_mappings.{name}.columns: needs 'amount'; unknown fields"
                f" {unknown}; known: {', '.join(FIELDS)}"
            )
        if values.get("sign", "signed") not in ("signed", "type"):
            raise ConfigurationError(f"settlement.csv_mappings.{name}.sign: signed or type")
        options = {k: v for k, v in values.items() if k != "columns"}
        options["debit_types"] = tuple(str(t).lower() for t in options.get("debit_types", ()))
        return cls(name=name, columns=columns, **options)

    def matches(self, header: list[str]) -> bool:
        present = {h.strip() for h in header}
        return all(column in present for column in self.columns.values())


def csv_mappings(tables: Mapping[str, Mapping[str, Any]]) -> dict[str, CsvMapping]:
    """The ``[settlement.csv_mappings.*]`` tables, checked, by name."""
    return {name: CsvMapping.from_config(name, values) for name, values in tables.items()}


def choose_mapping(head: bytes, mappings: Mapping[str, CsvMapping]) -> CsvMapping:
    """The mapping whose columns all appear in the file's header row."""
    for mapping in mappings.values():
        first = head.decode(mapping.encoding, errors="replace").splitlines()[:1]
        header = next(csv.reader(first, delimiter=mapping.delimiter), [])
        if mapping.matches(header):
            return mapping
    raise InvalidSettlementFile(
        "line 1: the CSV header matches no configured mapping"
        f" ({', '.join(mappings) or 'none configured'}); add one under"
        " [settlement.csv_mappings.<name>] or pass --mapping"
    )


def parse_csv(
    source: BinaryIO, mapping: CsvMapping, on_read: Callable[[int], None] | None = None
) -> Iterator[SettlementLine]:
    """Yield one line per data row; a bad row raises InvalidSettlementFile naming its line."""
    text = io.TextIOWrapper(counting(source, on_read), encoding=mapping.encoding, newline="")
    reader = csv.reader(text, delimiter=mapping.delimiter)
    try:
        header = [h.strip() for h in next(reader, [])]
        if not mapping.matches(header):
            missing = sorted(set(mapping.columns.values()) - set(header))
            raise InvalidSettlementFile(f"line 1: mapping {mapping.name!r} needs columns {missing}")
        index = {field: header.index(column) for field, column in mapping.columns.items()}
        position = 0
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            position += 1
            yield _line(row, index, mapping, position, reader.line_num)
    except UnicodeDecodeError as exc:
        raise InvalidSettlementFile(f"not {mapping.encoding} text: {exc.reason}") from None
    except csv.Error as exc:
        raise InvalidSettlementFile(f"line {reader.line_num}: {exc}") from None


def _line(
    row: list[str], index: Mapping[str, int], mapping: CsvMapping, position: int, line_no: int
) -> SettlementLine:
    if len(row) < len(index) or max(index.values()) >= len(row):
        raise InvalidSettlementFile(f"line {line_no}: {len(row)} columns, fewer than the header")
    cells = {field: row[i].strip() for field, i in index.items()}
    currency = cells.get("currency") or mapping.currency
    amount = _money(cells["amount"], currency, mapping, line_no, "amount")
    kind = cells.get("kind") or None
    debit = amount < 0 if mapping.sign == "signed" else (kind or "").lower() in mapping.debit_types
    card = cells.get("card_number") or None
    pan = masked_card_number(card)
    masked = sum(c in "0123456789" for c in card or "") > 10
    text = {f: _masked_text(cells.get(f)) for f in _TEXT_FIELDS}
    refs: dict[str, Any] = {f: value for f, (value, _) in text.items()}
    return SettlementLine(
        source="csv",
        position=position,
        location=f"line {line_no}",
        amount_minor=abs(amount),
        currency=Money(0, currency).currency,
        indicator="DBIT" if debit else "CRDT",
        booked_on=_date(cells.get("booked_on"), mapping, line_no),
        gross_minor=_optional_money(cells.get("gross"), currency, mapping, line_no, "gross"),
        charges_minor=_optional_money(cells.get("fee"), currency, mapping, line_no, "fee"),
        charges_included=True if cells.get("fee") else None,
        masked_pan=pan,
        pan_masked=masked or any(changed for _, changed in text.values()),
        **refs,
    )


def _money(raw: str, currency: str, mapping: CsvMapping, line_no: int, field: str) -> int:
    column = mapping.columns[field]
    text = raw.replace(" ", "").replace("\u00a0", "")
    if mapping.thousands_separator:
        text = text.replace(mapping.thousands_separator, "")
    if mapping.decimal_separator != ".":
        text = text.replace(mapping.decimal_separator, ".")
    text = text[1:] if text.startswith("+") else text
    if text.endswith("-"):  # "12,34-": trailing minus, common in bank exports
        text = "-" + text[:-1]
    try:
        return Money.parse(text, currency).minor
    except InvalidMoney as exc:
        raise InvalidSettlementFile(f"line {line_no}, column {column!r}: {exc}") from None


def _optional_money(
    raw: str | None, currency: str, mapping: CsvMapping, line_no: int, field: str
) -> int | None:
    return None if not raw else abs(_money(raw, currency, mapping, line_no, field))


def _date(raw: str | None, mapping: CsvMapping, line_no: int) -> date | None:
    if not raw:
        return None
    try:
        return datetime.strptime(raw, mapping.date_format).date()
    except ValueError:
        column = mapping.columns["booked_on"]
        raise InvalidSettlementFile(
            f"line {line_no}, column {column!r}: {raw!r} does not match {mapping.date_format}"
        ) from None


def _masked_text(value: str | None) -> tuple[str | None, bool]:
    if not value:
        return None, False
    masked = scrub_card_numbers(value)
    return masked, masked != value
