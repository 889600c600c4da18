"""Find (and mask) card numbers already stored: every text, JSON and binary column of every
table, and the files of a folder. :mod:`gateway.domain.card_data` is the rule.

The schema is reflected, not taken from the models, so a table or column added later, or one a
migration left behind, is scanned too. Rows are read in batches by primary key, so memory stays
bounded whatever the size of the table. ``kassa db scan-pans`` reports; migration 0012 masks.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    select,
    tuple_,
    update,
)
from sqlalchemy.types import TypeEngine

from gateway.domain.card_data import (
    MAX_CARRY,
    card_number_spans,
    has_card_number,
    masked_card_number,
    safe_cut,
    scrub_bytes,
    scrub_card_numbers,
    scrub_json,
)

BATCH_ROWS = 500
BLOB_BATCH_ROWS = 20  # a settlement file's body may be 16 MiB
CARD_COLUMNS = {("settlement_entries", "masked_pan")}  # first six/last four at most
_SKIPPED_TABLES = {"alembic_version"}


@dataclass(frozen=True, slots=True)
class Hit:
    """One stored card number: where, and a masked sample of the text around it."""

    where: str  # "table.column" or a file path
    row: str  # the row's primary key, or the byte offset in a file
    sample: str

    def __str__(self) -> str:
        return f"{self.where} [{self.row}]: {self.sample}"


TextTables = list[tuple[Table, list[Column[Any]]]]


def text_tables(connection: Connection) -> TextTables:
    """Each table (reflected) with its text, JSON and binary columns, but its primary key."""
    return list(_text_tables(connection))


def scan_database(connection: Connection, tables: TextTables | None = None) -> Iterator[Hit]:
    """Every card number stored in the database ``connection`` is connected to (``tables``:
    the schema as :func:`text_tables` reflected it before, when scanning often)."""
    for table, columns in tables if tables is not None else _text_tables(connection):
        for key, row in _rows(connection, table, columns):
            for column in columns:
                value = row[column.name]
                for sample in _samples(value, card_column=_is_card_column(table, column)):
                    yield Hit(f"{table.name}.{column.name}", key, sample)


def scrub_database(connection: Connection) -> int:
    """Mask every card number stored in the database; the number of values changed."""
    changed = 0
    for table, columns in _text_tables(connection):
        keys = list(table.primary_key.columns)
        for _, row in _rows(connection, table, columns):
            values: dict[str, Any] = {}
            for column in columns:
                value = row[column.name]
                clean = _scrubbed(value, card_column=_is_card_column(table, column))
                if clean != value:
                    values[column.name] = clean
            if values:
                where = [key == row[key.name] for key in keys]
                connection.execute(update(table).where(*where).values(values))
                changed += len(values)
    return changed


def scrub_archived_copies(connection: Connection) -> int:
    """Mask the card numbers in the archived copies of settlement files (the paths the inbound
    events name); the number of files rewritten. Each is replaced whole, readable by its
    owner only."""
    from gateway.adapters.settlement_files import scrub_copy

    metadata = MetaData()
    metadata.reflect(bind=connection, only=["inbound_events"])
    events = metadata.tables["inbound_events"]
    rewritten = 0
    rows = connection.execute(select(events.c.headers).where(events.c.source == "settlement_file"))
    for (headers,) in rows:
        archived = (headers or {}).get("archived_as") if isinstance(headers, dict) else None
        path = Path(archived) if archived else None
        if path is None or not path.is_file() or next(scan_folder_file(path), None) is None:
            continue
        draft = path.with_name(path.name + ".masking")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with path.open("rb") as source, os.fdopen(fd, "wb") as target:
            scrub_copy(source, target)
        draft.replace(path)
        rewritten += 1
    return rewritten


def scan_folder_file(path: Path) -> Iterator[Hit]:
    """Every card number in one file."""
    with path.open("rb") as f:
        yield from _file_hits(path, f)


def scan_folder(folder: Path) -> Iterator[Hit]:
    """Every card number in the files under ``folder`` (archived settlement files, device
    hosts' support logs)."""
    if not folder.is_dir():
        return
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        with path.open("rb") as f:
            if _DEVICE_LOG.search(path.name):
                yield from _device_log_hits(path, f)
            else:
                yield from _file_hits(path, f)


# drivers/device_log.py's files: card_terminal.log, nfc_reader.log and their rotated copies.
_DEVICE_LOG = re.compile(r"\.log(\.\d+)?$")
# An entry's time stamp and its hex dump are not text: a dump's card data is hidden byte by
# byte as it is written, by the protocol's own fields, and decimal-looking bytes or a time
# with a dot in it pass the Luhn check one time in ten. Its texts are what can hold a number.
_NOT_TEXT = frozenset({"t", "hex"})


def _device_log_hits(path: Path, f: BinaryIO) -> Iterator[Hit]:
    offset = 0
    for raw in f:
        line = raw.decode("utf-8", "replace")
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        if isinstance(entry, dict) and "dir" in entry:
            texts = list(_texts({k: v for k, v in entry.items() if k not in _NOT_TEXT}))
        else:
            texts = [line]  # not an entry: every character of it counts
        for text in texts:
            for start, end in card_number_spans(text):
                yield Hit(str(path), f"byte {offset}", _sample(text, start, end))
        offset += len(raw)


def _texts(value: Any) -> Iterator[str]:
    """Each string and number in a decoded entry, one by one (never joined across fields)."""
    if isinstance(value, dict):
        for item in value.values():
            yield from _texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from _texts(item)
    elif isinstance(value, str | int) and not isinstance(value, bool):
        yield str(value)


def _file_hits(path: Path, f: BinaryIO, chunk_size: int = 1 << 20) -> Iterator[Hit]:
    offset, carry = 0, b""
    while True:
        data = f.read(chunk_size)
        block = carry + data
        cut = safe_cut(block) if data else len(block)
        if data and cut == 0 and len(block) < MAX_CARRY:
            carry = block
            continue
        cut = cut or len(block)
        text = block[:cut].decode("latin-1")
        for start, end in card_number_spans(text):
            yield Hit(str(path), f"byte {offset + start}", _sample(text, start, end))
        offset, carry = offset + cut, block[cut:]
        if not data:
            return


def _text_tables(connection: Connection) -> Iterator[tuple[Table, list[Column[Any]]]]:
    metadata = MetaData()
    metadata.reflect(bind=connection)
    for table in metadata.sorted_tables:
        if table.name in _SKIPPED_TABLES or not table.primary_key.columns:
            continue
        keys = {c.name for c in table.primary_key.columns}
        columns = [c for c in table.columns if _holds_text(c.type) and c.name not in keys]
        if columns:
            yield table, columns


def _holds_text(kind: TypeEngine[Any]) -> bool:
    return isinstance(kind, String | Text | LargeBinary | JSON) or kind.__class__.__name__ in {
        "JSONB",
        "BYTEA",
        "NullType",
    }


def _rows(
    connection: Connection, table: Table, columns: list[Column[Any]]
) -> Iterator[tuple[str, Any]]:
    """(primary key as text, row) for every row with a value in one of ``columns``."""
    keys = list(table.primary_key.columns)
    has_blob = any(isinstance(c.type, LargeBinary) for c in columns)
    size = BLOB_BATCH_ROWS if has_blob else BATCH_ROWS
    last: tuple[Any, ...] | None = None
    while True:
        query = select(*keys, *columns).order_by(*keys).limit(size)
        if last is not None:
            query = query.where(tuple_(*keys) > tuple_(*last))
        rows = connection.execute(query).mappings().all()
        for row in rows:
            yield "/".join(str(row[k.name]) for k in keys), row
        if len(rows) < size:
            return
        last = tuple(rows[-1][k.name] for k in keys)


def _is_card_column(table: Table, column: Column[Any]) -> bool:
    return (table.name, column.name) in CARD_COLUMNS


def _as_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("latin-1")
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _samples(value: Any, *, card_column: bool) -> Iterator[str]:
    text = _as_text(value)
    if not text:
        return
    if card_column and masked_card_number(text) != text:
        yield masked_card_number(text) or "(not a masked card number)"
        return
    for start, end in card_number_spans(text):
        yield _sample(text, start, end)


def _sample(text: str, start: int, end: int) -> str:
    """The masked card number with a little of its context, on one line."""
    around = text[max(0, start - 12) : end + 12]
    return scrub_card_numbers(around).encode("unicode_escape").decode("ascii")


def _scrubbed(value: Any, *, card_column: bool) -> Any:
    if value is None:
        return None
    if card_column and isinstance(value, str):
        return masked_card_number(value)
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        return scrub_bytes(data) if has_card_number(data.decode("latin-1")) else value
    if isinstance(value, str):
        return scrub_card_numbers(value)
    return scrub_json(value)


def file_is_private(path: Path) -> bool:
    """Whether only the owner may read ``path`` (mode 0600 or stricter)."""
    return not os.stat(path).st_mode & 0o077


__all__ = [
    "Hit",
    "TextTables",
    "file_is_private",
    "scan_database",
    "scan_folder",
    "scan_folder_file",
    "scrub_archived_copies",
    "scrub_database",
    "text_tables",
]
