"""What a settlement file holds, from the file alone: its format, lines, sums, statements and
warnings (``kassa settlement import --dry-run``, and the reading half of
:mod:`~gateway.services.settlement.file_import`).

No database here: a dry run imports neither SQLAlchemy nor the models, and starts as fast as the
file's reader.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.adapters.settlement_files import (
    InvalidSettlementFile,
    SettlementLine,
    detect_format,
    scrubbed,
    sha256_of,
)
from gateway.adapters.settlement_files.camt import parse_camt
from gateway.adapters.settlement_files.csv_report import (
    CsvMapping,
    choose_mapping,
    csv_mappings,
    parse_csv,
)
from gateway.adapters.settlement_files.findings import FileReport, StatementReport
from gateway.domain.card_data import scrub_json
from gateway.domain.money import Money

if TYPE_CHECKING:  # a dry run of a camt file reads no configuration (pydantic stays unloaded)
    from gateway.settings import SettlementSettings


@dataclass
class ImportSummary:
    """What a file holds and what became of it.

    ``entries`` counts the movement lines (a camt ``TxDtls``, or an ``Ntry`` without details; a
    CSV row); ``sums`` are decimal strings per currency and direction of what moved on the
    account: a camt file's booked entries (``Ntry/Amt``), a CSV's rows. ``statements`` has one
    item per camt statement, ``warnings`` the flaws found (the first ``MAX_KEPT``), and
    ``warning_counts`` all of them by code.
    """

    format: str
    content_hash: str
    mapping: str | None = None
    entries: int = 0
    stored: int = 0
    skipped: int = 0
    updated: int = 0  # known as pending from an earlier file, booked now
    sums: dict[str, dict[str, str]] = field(default_factory=dict)
    pans_masked: int = 0
    duplicate: bool = False
    file_id: int | None = None
    dry_run: bool = False
    statements: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    warning_counts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ImportPlan:
    path: Path
    format: str
    mapping: CsvMapping | None
    content_hash: str
    size: int


def summarise_settlement_file(
    path: Path,
    settings: SettlementSettings | None,
    *,
    file_format: str | None = None,
    mapping_name: str | None = None,
    on_read: Callable[[int], None] | None = None,
) -> ImportSummary:
    """What importing ``path`` would store, from the file alone: no database, nothing written
    (``kassa settlement import --dry-run``). Whether it was imported before is not known here.

    ``settings`` may be None for a camt file (only a CSV's reading is configured)."""
    return summarise_plan(plan_import(path, settings, file_format, mapping_name), on_read)


def summarise_plan(plan: ImportPlan, on_read: Callable[[int], None] | None) -> ImportSummary:
    summary = summary_of(plan, dry_run=True)
    report = FileReport()
    tally(summary, file_lines(plan, on_read, report))
    add_report(summary, report)
    return summary


def plan_import(
    path: Path,
    settings: SettlementSettings | None,
    file_format: str | None,
    mapping_name: str | None,
) -> ImportPlan:
    with path.open("rb") as f:
        head = f.read(1 << 16)
        f.seek(0)
        content_hash, size = sha256_of(f)
    detected = detect_format(head)
    if file_format and file_format != detected:
        raise InvalidSettlementFile(f"{path.name} is {detected}, not {file_format}")
    mapping = None
    if detected == "csv":
        if settings is None:
            raise ValueError("a CSV file is read by a configured mapping: settings are needed")
        mappings = csv_mappings(settings.csv_mappings)
        if mapping_name is not None and mapping_name not in mappings:
            raise InvalidSettlementFile(
                f"no CSV mapping {mapping_name!r}: configured are {', '.join(mappings)}"
            )
        mapping = mappings[mapping_name] if mapping_name else choose_mapping(head, mappings)
    return ImportPlan(path, detected, mapping, content_hash, size)


def summary_of(plan: ImportPlan, **extra: Any) -> ImportSummary:
    mapping = plan.mapping.name if plan.mapping else None
    return ImportSummary(
        format=plan.format, content_hash=plan.content_hash, mapping=mapping, **extra
    )


def file_lines(
    plan: ImportPlan, on_read: Callable[[int], None] | None, report: FileReport
) -> Iterator[SettlementLine]:
    with plan.path.open("rb") as f:
        if plan.mapping is not None:
            for line in parse_csv(f, plan.mapping, on_read):
                yield scrubbed(line)
        else:
            yield from parse_camt(f, on_read, report)  # masked as it reads them


def tally(summary: ImportSummary, lines: Iterable[SettlementLine]) -> None:
    """Count and sum ``lines`` into ``summary`` (minor units, rendered at the end)."""
    minor: dict[str, Counter[str]] = {}
    count_lines(summary, minor, lines)
    render_sums(summary, minor)


def count_lines(
    summary: ImportSummary, minor: dict[str, Counter[str]], lines: Iterable[SettlementLine]
) -> None:
    """Count ``lines`` into ``summary`` and add their amounts to ``minor`` (one loop here: a
    call per line costs as much as the counting)."""
    entries = masked = 0
    for line in lines:
        entries += 1
        masked += line.pan_masked
        sums = minor.get(line.currency)
        if sums is None:
            sums = minor[line.currency] = Counter()
        sums[line.indicator] += line.amount_minor
    summary.entries += entries
    summary.pans_masked += masked


def render_sums(summary: ImportSummary, minor: dict[str, Counter[str]]) -> None:
    summary.sums = _rendered(minor)


def _rendered(minor: Mapping[str, Counter[str]]) -> dict[str, dict[str, str]]:
    return {
        currency: {
            ind: Money(total, currency).to_decimal_string() for ind, total in sorted(c.items())
        }
        for currency, c in sorted(minor.items())
    }


def add_report(summary: ImportSummary, report: FileReport) -> None:
    """A camt file's statements and warnings into ``summary``; its sums are the booked entries."""
    if summary.format == "csv":
        return
    booked: dict[str, Counter[str]] = {}
    for statement in report.statements:
        for currency, sums in statement.booked.items():
            booked.setdefault(currency, Counter()).update(sums)
    summary.sums = _rendered(booked)
    # What the bank wrote (ids, found values, messages quoting them): masked like the lines.
    summary.statements = [scrub_json(_statement_json(s)) for s in report.statements]
    summary.warnings = [scrub_json(w.to_json()) for w in report.warnings]
    summary.warning_counts = dict(sorted(report.counts.items()))


def _statement_json(statement: StatementReport) -> dict[str, Any]:
    return {
        "position": statement.position,
        "id": statement.statement_id,
        "account": statement.account,
        "entries": statement.entries,
        "lines": statement.lines,
        "pending": statement.pending,
        "sums": _rendered(statement.booked),
        "opening": _balance(statement.opening),
        "closing": _balance(statement.closing),
        "first_day": statement.first_day.isoformat() if statement.first_day else None,
        "last_day": statement.last_day.isoformat() if statement.last_day else None,
        "warnings": statement.warnings,
    }


def _balance(balance: tuple[Any, str] | None) -> str | None:
    return None if balance is None else f"{balance[0]} {balance[1]}"
