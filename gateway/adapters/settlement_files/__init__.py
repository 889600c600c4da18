"""Settlement files from banks and acquirers: ISO 20022 camt.053/054 and acquirer CSV reports.

Each parser streams a file and yields one :class:`SettlementLine` per transaction it reports
(camt: per ``Ntry/NtryDtls/TxDtls``, or per ``Ntry`` without details; CSV: per data row). A line
carries its entry's key fields too, so a batch can be matched as one sum or as its parts.

| format  | detected by                                                        | parser       |
|---------|--------------------------------------------------------------------|--------------|
| camt053 | root namespace ``urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN``   | ``camt``     |
| camt054 | root namespace ``urn:iso:std:iso:20022:tech:xsd:camt.054.001.NN``   | ``camt``     |
| csv     | a header row with all columns of a configured mapping              | ``csv_report`` |

Card numbers never leave this package in clear (:mod:`gateway.domain.card_data` is the rule):
:func:`scrubbed` masks a line's texts and its card number column, :func:`scrub_copy` copies a
raw file with its card numbers masked, and an :class:`InvalidSettlementFile`'s message is
masked when it is made, so a number in the wrong column never reaches an error or a log.
"""

from __future__ import annotations

import hashlib
import io
import re
from collections.abc import Callable
from datetime import date
from operator import attrgetter
from typing import Any, BinaryIO, Literal, NamedTuple

from gateway.domain.card_data import (
    MAX_CARRY,
    masked_card_number,
    safe_cut,
    scrub_bytes,
    scrub_card_numbers,
)
from gateway.errors import InvalidInput

Indicator = Literal["CRDT", "DBIT"]
FORMATS = ("camt053", "camt054", "csv")

CAMT_NAMESPACE = re.compile(rb"urn:iso:std:iso:20022:tech:xsd:camt\.05([34])\.001\.(\d{2})")


class InvalidSettlementFile(InvalidInput):
    """A settlement file that cannot be imported; the message names the line or element."""

    type = "/problems/invalid-settlement-file"
    title = "Invalid settlement file"

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(scrub_card_numbers(message), **extra)


class SettlementLine(NamedTuple):
    """One money movement a settlement file reports, with the entry (batch) it belongs to.

    ``amount_minor`` is never negative; ``indicator`` (camt ``CdtDbtInd``) says which way the
    money moved on the account. ``reversal`` (camt ``RvslInd``) marks the undoing of an earlier
    entry in the opposite direction: see ``original_indicator``.

    An immutable value, made in C (a named tuple): a file of a hundred thousand lines makes a
    hundred thousand of them, and a frozen dataclass of these 31 fields takes ten times as long
    to make as the reader takes for the rest of a detail. ``line._replace(...)`` copies one.
    """

    source: str  # camt053 | camt054 | csv
    position: int  # 1-based, in file order
    location: str  # where in the file, for people: "Ntry[2]/TxDtls[3] (line 57)", "line 5"
    amount_minor: int
    currency: str
    indicator: Indicator
    reversal: bool = False
    status: str = "BOOK"  # Ntry/Sts: BOOK | PDNG | INFO
    booked_on: date | None = None
    value_on: date | None = None
    statement_id: str | None = None  # Stmt/Id or Ntfctn/Id
    account_iban: str | None = None
    entry_index: int | None = None
    entry_ref: str | None = None  # Ntry/AcctSvcrRef, else Ntry/NtryRef
    entry_amount_minor: int | None = None
    entry_indicator: Indicator | None = None
    entry_tx_count: int | None = None  # Ntry/NtryDtls/Btch/NbOfTxs, else the TxDtls counted
    end_to_end_id: str | None = None
    account_servicer_ref: str | None = None
    transaction_id: str | None = None
    instruction_id: str | None = None
    remittance: str | None = None
    creditor_reference: str | None = None
    gross_minor: int | None = None
    charges_minor: int | None = None
    charges_included: bool | None = None
    kind: str | None = None  # CSV "Type" (sale, refund, …)
    merchant_id: str | None = None
    terminal_id: str | None = None
    masked_pan: str | None = None
    pan_masked: bool = False  # True when a full PAN was read and masked

    @property
    def signed_minor(self) -> int:
        return self.amount_minor if self.indicator == "CRDT" else -self.amount_minor

    @property
    def original_indicator(self) -> Indicator:
        """The direction of the movement this line stands for (a reversal undoes the opposite)."""
        if not self.reversal:
            return self.indicator
        return "DBIT" if self.indicator == "CRDT" else "CRDT"

    def identity(self) -> str | None:
        """The bank's own identity of the movement, independent of the file; None without one."""
        servicer, end_to_end = self.account_servicer_ref, self.end_to_end_id
        transaction, instruction = self.transaction_id, self.instruction_id
        if servicer or end_to_end or transaction or instruction:
            return f"{servicer or ''}|{end_to_end or ''}|{transaction or ''}|{instruction or ''}"
        return self.entry_ref or None


# A line's texts that came from the file (codes such as currency and status are checked).
_FREE_TEXT = tuple(
    name
    for name, kind in SettlementLine.__annotations__.items()
    if "str" in str(kind) and name not in ("source", "currency", "indicator", "masked_pan")
)


_free_texts = attrgetter(*_FREE_TEXT)
# ``may_hold_card_number`` without its look-behind: the same answer (a run found from inside a
# longer one is in a run found from its start), twice as fast (the first digit is scanned in C).
find_digit_run = re.compile(r"[0-9](?:[ ._\-]?[0-9]){12,}").search
# Texts found clean that repeat on every line (an account's IBAN: digits, yet no card number),
# so they are not checked again; never one that held a card number. Bounded.
_CLEAN: set[str] = set()


def scrubbed(line: SettlementLine) -> SettlementLine:
    """``line`` with every card number in its texts masked and its card number column as
    first six/last four at most (``pan_masked`` says a full number was found)."""
    texts = [value for value in _free_texts(line) if value and value not in _CLEAN]
    if line.masked_pan is None and not find_digit_run("\n".join(texts)):
        return line  # no run of 13 digits in any text: nothing to mask (the usual line)
    changes: dict[str, Any] = {}
    for name in _FREE_TEXT:
        value = getattr(line, name)
        if value and value not in _CLEAN:
            clean = scrub_card_numbers(value)
            if clean != value:
                changes[name] = clean
            elif len(_CLEAN) < 1024 and len(value) <= 64 and find_digit_run(value):
                _CLEAN.add(value)
    card = masked_card_number(line.masked_pan)
    if card != line.masked_pan:
        changes["masked_pan"] = card
    if not changes:
        return line
    text_masked = any(name != "masked_pan" for name in changes)
    was_full = sum(c in "0123456789" for c in line.masked_pan or "") > 10
    return line._replace(**changes, pan_masked=line.pan_masked or text_masked or was_full)


def scrub_copy(source: BinaryIO, target: BinaryIO, chunk_size: int = 1 << 20) -> None:
    """Copy ``source`` to ``target`` with every card number masked, in bounded memory (each
    chunk is cut where no card number can be split: :func:`~gateway.domain.card_data.safe_cut`)."""
    carry = b""
    while data := source.read(chunk_size):
        block = carry + data
        cut = safe_cut(block) or (len(block) if len(block) >= MAX_CARRY else 0)
        target.write(_scrub_words(block[:cut]))
        carry = block[cut:]
    target.write(_scrub_words(carry))


# 13 digits with at most one separator between two: where a card number may be (no look-behind:
# a match found is widened to its word below, so it may start inside a longer run).
_RUN_BYTES = re.compile(rb"[0-9](?:[ ._\-]?[0-9]){12,}")
# A byte that is neither part of a card number nor next to one (as safe_cut's).
_NOT_WORD = re.compile(rb"[^0-9 ._\-A-Za-z\x80-\xff]")
# A block's stretches, found in C before any regular expression runs on its bytes: digits and
# single separators become "0", everything else (two separators in a row too) "2" or "1".
_CLASSES = bytes(48 if b in b"0123456789" else 49 if b in b" ._-" else 50 for b in range(256))
_LONE_SEPARATOR = bytes(48 if b == 49 else b for b in range(256))
_STRETCH = re.compile(rb"0000000000000+")


def _stretches(block: bytes) -> bytes:
    """``block`` with every byte that may belong to a run of 13 digits (each digit, a separator
    not beside another) as ``0``: a run of ``_RUN_BYTES`` is always inside 13 or more of them,
    so a stretch of fewer is skipped unread (an XML file's digits are mostly dates, amounts and
    short references, where the expression alone would try a match at every digit)."""
    return block.translate(_CLASSES).replace(b"11", b"22").translate(_LONE_SEPARATOR)


def _scrub_words(block: bytes) -> bytes:
    """``scrub_bytes(block)``, masking only the words that hold a run of 13 digits.

    A word (the bytes between two that are neither part of a card number nor next to one, as
    :func:`~gateway.domain.card_data.safe_cut` cuts) is masked as it would be in the whole
    block: card numbers, IBANs and UUIDs never span two words. Masking a megabyte block whole
    looks for IBANs and UUIDs over all of it, several times slower than this. Runs are looked
    for only inside the ``_stretches`` that may hold one.
    """
    stretches = _stretches(block)
    parts, done = [], 0
    for stretch in _STRETCH.finditer(stretches):
        if stretch.start() < done:
            continue  # inside the word masked last
        run = _RUN_BYTES.search(block, stretch.start(), stretch.end())
        if run is None:
            continue
        start = done + safe_cut(block[done : run.start()])
        after = _NOT_WORD.search(block, run.end())
        end = len(block) if after is None else after.start()
        parts += [block[done:start], scrub_bytes(block[start:end])]
        done = end
    if not parts:
        return block
    parts.append(block[done:])
    return b"".join(parts)


def detect_format(head: bytes) -> str:
    """``camt053``, ``camt054`` or ``csv`` from a file's first bytes (XML: the root namespace)."""
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not text.startswith(b"<"):
        return "csv"
    match = CAMT_NAMESPACE.search(head)
    if match is None:
        raise InvalidSettlementFile(
            "an XML file, but not ISO 20022 camt.053 or camt.054: expected a root namespace"
            " such as urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
        )
    return f"camt05{match.group(1).decode()}"


class _CountingRaw(io.RawIOBase):
    """A binary stream that reports how many bytes were read (for progress bars and hashes)."""

    def __init__(self, source: BinaryIO, on_read: Callable[[int], None]) -> None:
        self._source = source
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        if data:
            self._on_read(len(data))
        return len(data)


def counting(source: BinaryIO, on_read: Callable[[int], None] | None) -> BinaryIO:
    """``source``, buffered, calling ``on_read(n)`` for every n bytes read."""
    if on_read is None:
        return source
    return io.BufferedReader(_CountingRaw(source, on_read), 1 << 16)  # type: ignore[return-value]


def sha256_of(source: BinaryIO) -> tuple[str, int]:
    """The SHA-256 (hex) and size of a stream, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    while chunk := source.read(1 << 20):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


__all__ = [
    "FORMATS",
    "InvalidSettlementFile",
    "SettlementLine",
    "counting",
    "detect_format",
    "find_digit_run",
    "scrub_copy",
    "scrubbed",
    "sha256_of",
]
