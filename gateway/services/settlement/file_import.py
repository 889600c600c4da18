"""Import a settlement file (camt.053, camt.054, acquirer CSV): store it raw, then its entries.

The raw file is stored first (DESIGN.md: raw inbound events are stored before processing), in
its own commit, by :mod:`~gateway.services.settlement.raw_files`: an inbound event with
``source="settlement_file"`` and the file's SHA-256 as ``external_id``, the bytes themselves up
to ``[settlement] store_max_bytes``, beyond that a copy under ``archive_dir`` named by the hash.
Either way with every card number masked (:mod:`gateway.domain.card_data`); the hash is the
original's, so the same file is still recognised. Every text of every line, every warning and
every error is masked the same way before it is written.

The entries are written in short transactions of ``BATCH_SIZE`` lines, so a large import never
holds the database (on SQLite one writer at a time: the till's payments and ``/healthz`` keep
answering between batches). The file stays all-or-nothing as a whole: its row is ``staging``
while the entries are written, and readers ignore a staging file and its entries; one short
final transaction stores its statements and warnings, books the pending movements it books and
marks it ``imported``. A malformed file (or any failure) removes what was staged, in batches,
and its inbound event is marked ``rejected`` with the reason; an import that died midway is
removed when the file is imported again.

A file seen before (same SHA-256) is reported as a duplicate and changes nothing; a movement seen
before in another file of the same format (same bank references) is skipped, not doubled, unless
it was pending there and is booked now: then the stored movement is updated to booked.

A camt file's statements are stored beside its lines, with the sums of their booked entries, and
every flaw the reader found in the bank's content (a balance that does not add up, details that
contradict their entry, …) is stored as a warning for a person, with its element path and line.
The file is imported as its entries say; only a file that cannot be read is refused.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Iterable
from itertools import islice
from operator import attrgetter
from pathlib import Path
from typing import Any

from sqlalchemy import delete, or_, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import (
    InboundEvent,
    Merchant,
    SettlementEntry,
    SettlementFile,
    SettlementFileWarning,
    SettlementStatement,
)
from gateway.adapters.settlement_files import InvalidSettlementFile, SettlementLine
from gateway.adapters.settlement_files.findings import FileReport
from gateway.domain.card_data import scrub_card_numbers
from gateway.services.settlement.file_summary import (
    ImportPlan,
    ImportSummary,
    add_report,
    count_lines,
    file_lines,
    plan_import,
    render_sums,
    summarise_plan,
    summary_of,
)
from gateway.services.settlement.raw_files import mark, store_raw
from gateway.settings import SettlementSettings

BATCH_SIZE = 1000
STAGING, IMPORTED = "staging", "imported"
_REF_COLUMNS = {
    "end_to_end_id": 64,
    "account_servicer_ref": 64,
    "transaction_id": 64,
    "instruction_id": 64,
    "creditor_reference": 64,
    "entry_ref": 64,
    "statement_id": 64,
    "merchant_id": 64,
    "terminal_id": 32,
    "kind": 32,
    "account_iban": 34,
}


def import_settlement_file(
    uow: UnitOfWork,
    path: Path,
    settings: SettlementSettings,
    *,
    file_format: str | None = None,
    mapping_name: str | None = None,
    dry_run: bool = False,
    on_read: Callable[[int], None] | None = None,
) -> ImportSummary:
    """Import ``path`` (see the module docstring) as ``[settlement]`` says."""
    plan = plan_import(path, settings, file_format, mapping_name)
    known = uow.session.scalar(
        select(SettlementFile).where(SettlementFile.content_hash == plan.content_hash)
    )
    if known is not None and known.state == IMPORTED:
        return _known(known, dry_run)
    uow.rollback()  # the lookup's transaction ends here: nothing is held while parsing
    if dry_run:
        return summarise_plan(plan, on_read)
    event = store_raw(uow, plan.path, plan.content_hash, plan.size, plan.format, settings)
    _discard_staged(uow, plan.content_hash)  # an import of this file that died midway
    try:
        summary = _import(uow, plan, event, on_read)
    except InvalidSettlementFile as exc:
        uow.rollback()
        _discard_staged(uow, plan.content_hash)
        mark(uow, event, "rejected", str(exc))
        raise
    except BaseException:
        uow.rollback()
        try:
            _discard_staged(uow, plan.content_hash)
        except Exception:  # the staged rows stay invisible; the next import removes them
            uow.rollback()
        raise
    mark(uow, event, "processed", None)
    return summary


def _known(known: SettlementFile, dry_run: bool) -> ImportSummary:
    return ImportSummary(
        format=known.format,
        content_hash=known.content_hash,
        mapping=known.mapping,
        entries=known.entry_count,
        stored=0,
        skipped=known.entry_count,
        sums=known.sums,
        pans_masked=known.pans_masked,
        warning_counts=dict(known.warning_counts or {}),
        duplicate=True,
        file_id=known.id,
        dry_run=dry_run,
    )


def _discard_staged(uow: UnitOfWork, content_hash: str) -> None:
    """Remove a staging import of this file and its entries, in short transactions."""
    staged = uow.session.scalar(
        select(SettlementFile.id).where(
            SettlementFile.content_hash == content_hash, SettlementFile.state == STAGING
        )
    )
    if staged is None:
        uow.rollback()
        return
    while True:
        ids = list(
            uow.session.scalars(
                select(SettlementEntry.id)
                .where(SettlementEntry.file_id == staged)
                .limit(BATCH_SIZE)
            )
        )
        if not ids:
            break
        uow.session.execute(delete(SettlementEntry).where(SettlementEntry.id.in_(ids)))
        uow.commit()
    uow.session.execute(delete(SettlementFile).where(SettlementFile.id == staged))
    uow.commit()


def _import(
    uow: UnitOfWork,
    plan: ImportPlan,
    event: InboundEvent,
    on_read: Callable[[int], None] | None,
) -> ImportSummary:
    """The file row (staging), its entries in a transaction per BATCH_SIZE lines, then the
    publishing transaction: statements, warnings, pending movements booked, ``imported``."""
    record = SettlementFile(
        content_hash=plan.content_hash,
        inbound_event_id=event.id,
        format=plan.format,
        mapping=plan.mapping.name if plan.mapping else None,
        filename=scrub_card_numbers(plan.path.name)[:255],
        size_bytes=plan.size,
        entry_count=0,
        state=STAGING,
    )
    uow.session.add(record)
    uow.commit()
    summary = summary_of(plan, file_id=record.id)
    minor: dict[str, Counter[str]] = {}
    identities = _Identities()
    report = FileReport()
    booked_later: list[tuple[SettlementLine, str]] = []
    lines = file_lines(plan, on_read, report)
    batches = 0
    while batch := list(islice(lines, BATCH_SIZE)):  # parsed before the transaction begins
        count_lines(summary, minor, batch)
        pairs = [(line, identities.of(line)) for line in batch]
        booked_later += _write(uow, record, pairs, summary)
        uow.commit()
        batches += 1
        if batches in _ANALYSE_AFTER:
            _analyse_entries(uow)
    render_sums(summary, minor)
    add_report(summary, report)
    for line, key in booked_later:
        _book_pending(uow, record, line, key)
    _store_report(uow, record, summary)
    record.entry_count, record.skipped_count = summary.entries, summary.skipped
    record.sums, record.pans_masked = summary.sums, summary.pans_masked
    record.warning_counts = summary.warning_counts
    record.state = IMPORTED
    _publish_imported(uow, record)
    uow.commit()
    return summary


# PostgreSQL plans each batch's duplicate lookup from the table's statistics. A large file
# grows settlement_entries faster than autovacuum analyses it, and a plan made for the small
# table (a scan) makes every later batch slower than the one before: the statistics are brought
# up to date as the table grows, a few times per file.
_ANALYSE_AFTER = frozenset({2, 10, 50, 250, 1250})


def _analyse_entries(uow: UnitOfWork) -> None:
    connection = uow.session.connection()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql("ANALYZE settlement_entries")
        uow.commit()


def _publish_imported(uow: UnitOfWork, record: SettlementFile) -> None:
    """``settlement.imported`` for each merchant whose settlement accounts the file names."""
    accounts: set[str] = set()
    for iban, acquirer_id in uow.session.execute(
        select(SettlementEntry.account_iban, SettlementEntry.merchant_id)
        .where(SettlementEntry.file_id == record.id)
        .distinct()
    ):
        accounts.update(a for a in (iban, acquirer_id) if a)
    if not accounts:
        return
    for merchant in uow.session.scalars(select(Merchant).order_by(Merchant.id)):
        if accounts & {str(a) for a in merchant.settlement_accounts or []}:
            # Imported here: the outbox brings the webhook sender (requests) and the job
            # queue, which an import naming no merchant's account never needs.
            from gateway.services.webhooks import outbox

            outbox.publish(
                uow,
                merchant_id=merchant.id,
                event_type="settlement.imported",
                data={
                    "file_id": record.id,
                    "format": record.format,
                    "filename": record.filename,
                    "entries": record.entry_count,
                    "sums": record.sums,
                    "warning_counts": record.warning_counts,
                },
            )


def _store_report(uow: UnitOfWork, record: SettlementFile, summary: ImportSummary) -> None:
    """The file's statements, then its warnings, each pointing at its statement."""
    rows = {
        s["position"]: SettlementStatement(
            file_id=record.id,
            position=s["position"],
            statement_id=_cut(s["id"], 64),
            account=_cut(s["account"], 34),
            entries=s["entries"],
            lines=s["lines"],
            pending=s["pending"],
            sums=s["sums"],
            opening=_cut(s["opening"], 48),
            closing=_cut(s["closing"], 48),
            first_day=s["first_day"],
            last_day=s["last_day"],
            warning_count=s["warnings"],
        )
        for s in summary.statements
    }
    uow.session.add_all(rows.values())
    uow.session.flush()
    uow.session.add_all(
        SettlementFileWarning(
            file_id=record.id,
            statement_row_id=rows[w["statement"]].id if w["statement"] in rows else None,
            code=w["code"],
            path=_cut(w["path"], 255) or "",
            line=w["line"],
            expected=_cut(w["expected"], 255),
            found=_cut(w["found"], 255),
            message=w["message"],
        )
        for w in summary.warnings
    )


def _cut(text: str | None, limit: int) -> str | None:
    return None if text is None else text[:limit]


class _Identities:
    """Hashed bank references, with an occurrence count so twins within one entry stay apart."""

    def __init__(self) -> None:
        self._index: int | None = -1  # the entry (statement_id, entry_index) counted in
        self._statement: str | None = None
        self._seen: dict[str, int] = {}

    def of(self, line: SettlementLine) -> str | None:
        refs = line.identity()
        if refs is None:
            return None
        if line.entry_index != self._index or line.statement_id != self._statement:
            self._index, self._statement, self._seen = line.entry_index, line.statement_id, {}
        seen = self._seen[refs] = self._seen.get(refs, 0) + 1
        return _sha256(f"{line.account_iban or ''}|{refs}#{seen}".encode()).hexdigest()


def _write(
    uow: UnitOfWork,
    record: SettlementFile,
    batch: list[tuple[SettlementLine, str | None]],
    summary: ImportSummary,
) -> list[tuple[SettlementLine, str]]:
    """Store the batch's new movements; the pending ones it books, to be booked on publishing
    (an earlier file's rows change only when this file becomes visible)."""
    keys = [key for _, key in batch if key is not None]
    known: dict[str | None, str] = {
        identity: status for identity, status in _known_statuses(uow, record, keys)
    }
    file_id, source = record.id, record.format
    rows = [
        _row_values(file_id, source, line, key)
        for line, key in batch
        if key is None or key not in known
    ]
    booked_now = [
        (line, key)
        for line, key in batch
        if key is not None and key in known and known[key] != "BOOK" and line.status == "BOOK"
    ]
    summary.updated += len(booked_now)
    summary.skipped += len(batch) - len(rows) - len(booked_now)
    summary.stored += len(rows)
    if rows:
        _insert_entries(uow, rows)
    return booked_now


# The batch's identities already stored by an imported file or by this one: their statuses.
# The keys go as one parameter (an IN list of a thousand is planned anew for every batch).
_KNOWN = (
    "SELECT e.identity, e.status FROM settlement_entries e"
    " JOIN settlement_files f ON f.id = e.file_id"
    " WHERE e.source = {p} AND e.identity {keys} AND (f.state = {p} OR f.id = {p})"
)
_KNOWN_SQL = {
    "sqlite": _KNOWN.format(p="?", keys="IN (SELECT value FROM json_each(?))"),
    "postgresql": _KNOWN.format(p="%s", keys="= ANY(string_to_array(%s, ','))"),
}


def _known_statuses(uow: UnitOfWork, record: SettlementFile, keys: list[str]) -> Iterable[Any]:
    """(identity, status) of each key known (see _KNOWN)."""
    connection = uow.session.connection()
    dialect = connection.dialect.name
    if dialect not in _KNOWN_SQL:
        return uow.session.execute(
            select(SettlementEntry.identity, SettlementEntry.status)
            .join(SettlementFile, SettlementFile.id == SettlementEntry.file_id)
            .where(
                SettlementEntry.source == record.format,
                SettlementEntry.identity.in_(keys),
                or_(SettlementFile.state == IMPORTED, SettlementFile.id == record.id),
            )
        )
    # One text either way: psycopg dumps a list of a thousand strings in Python, element by
    # element (a key is a SHA-256 in hex: never a comma in one).
    param = json.dumps(keys) if dialect == "sqlite" else ",".join(keys)
    result = connection.exec_driver_sql(
        _KNOWN_SQL[dialect], (record.format, param, IMPORTED, record.id)
    )
    return result  # (a Result has keys(): never made a dict of as it is)


_ENTRY_COLUMNS = tuple(c.name for c in SettlementEntry.__table__.columns if c.name != "id")
# Names from the model only, never from a file.
_COPY_ENTRIES = f"COPY settlement_entries ({', '.join(_ENTRY_COLUMNS)}) FROM STDIN"
_INSERT_ENTRIES = (
    f"INSERT INTO settlement_entries ({', '.join(_ENTRY_COLUMNS)})"  # noqa: S608
    f" VALUES ({', '.join('?' * len(_ENTRY_COLUMNS))})"
)


def _insert_entries(uow: UnitOfWork, rows: list[tuple[Any, ...]]) -> None:
    """The batch's rows, in the unit of work's transaction: PostgreSQL's COPY, else one
    prepared INSERT run for every row (the ORM's bulk insert builds each row's parameters in
    Python a second time)."""
    connection = uow.session.connection()
    values = rows
    if connection.dialect.name == "postgresql":
        driver: Any = connection.connection.driver_connection  # psycopg 3
        with driver.cursor() as cursor, cursor.copy(_COPY_ENTRIES) as copy:
            for row in values:
                copy.write_row(row)
        return
    connection.exec_driver_sql(_INSERT_ENTRIES, values)


_sha256 = hashlib.sha256


def _book_pending(uow: UnitOfWork, record: SettlementFile, line: SettlementLine, key: str) -> None:
    """A movement stored as pending (PDNG, INFO) that this file books: it becomes this file's."""
    row = uow.session.scalars(
        select(SettlementEntry).where(
            SettlementEntry.source == record.format, SettlementEntry.identity == key
        )
    ).one()
    for name, value in _row(record, line, key).items():
        setattr(row, name, value)


def _row(record: SettlementFile, line: SettlementLine, key: str | None) -> dict[str, Any]:
    return dict(zip(_ENTRY_COLUMNS, _values(record, line, key), strict=True))


_REFS = attrgetter(*_REF_COLUMNS)
_LIMITS = tuple(_REF_COLUMNS.values())
_SHORTEST = min(_LIMITS)  # no reference longer than this: none is checked one by one


class _IsoDays(dict[Any, str | None]):
    """A day as the text stored for it (``None`` as None), each worked out once: a file's lines
    share a few days. Bounded."""

    def __missing__(self, day: Any) -> str | None:
        if len(self) > 4096:
            self.clear()
        self[day] = text = None if day is None else day.isoformat()
        return text


def _row_maker() -> Any:
    """``make(line, file_id, source, identity)``: a line's values in _ENTRY_COLUMNS order, as
    one tuple display (the line's fields of the same names, runs of them as slices; the file's
    id and format, the identity, the location cut to its column, days as ISO text). Made once,
    from the model's column names and SettlementLine's fields only."""
    fields = SettlementLine._fields
    parts: list[str] = []
    run: list[int] = []  # line indices of consecutive columns taken as they are

    def flush() -> None:
        if run:
            parts.append(f"*line[{run[0]}:{run[-1] + 1}]" if len(run) > 1 else f"line[{run[0]}]")
            run.clear()

    for column in _ENTRY_COLUMNS:
        if column in ("file_id", "source", "identity"):
            flush()
            parts.append(column)
        elif column == "location":
            flush()
            parts.append(f"line[{fields.index(column)}][:255]")
        elif column in ("booked_on", "value_on"):
            flush()
            parts.append(f"days[line[{fields.index(column)}]]")
        else:
            index = fields.index(column)
            if run and index != run[-1] + 1:
                flush()
            run.append(index)
    flush()
    source = f"lambda line, file_id, source, identity: ({', '.join(parts)},)"
    return eval(source, {"days": _IsoDays()})  # noqa: S307 (names from the model only)


_make_row = _row_maker()


def _values(record: SettlementFile, line: SettlementLine, key: str | None) -> tuple[Any, ...]:
    """The ``settlement_entries`` row of ``line`` (a reference longer than its column is an
    error of the file, not cut short)."""
    return _row_values(record.id, record.format, line, key)


def _row_values(
    file_id: int, source: str, line: SettlementLine, key: str | None
) -> tuple[Any, ...]:
    """``_values`` with the file's id and format read once per batch (an ORM attribute costs as
    much as the rest of a row)."""
    refs = _REFS(line)
    if max(map(len, filter(None, refs)), default=0) > _SHORTEST:
        for name, value, limit in zip(_REF_COLUMNS, refs, _LIMITS, strict=True):
            if value is not None and len(value) > limit:
                raise InvalidSettlementFile(
                    f"{line.location}: {name} {value[:20]!r}… is longer than {limit} characters"
                )
    row: tuple[Any, ...] = _make_row(line, file_id, source, key)
    return row
