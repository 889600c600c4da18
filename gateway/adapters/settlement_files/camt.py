"""Streaming, defused parser for ISO 20022 camt.053 (statement) and camt.054 (notification).

Any version ``camt.05[34].001.NN`` is read (the elements used here kept their names and places
from .001.02 to .001.13). The file is parsed with ``defusedxml`` (DTDs, entities and external
references refused) and streamed: each ``TxDtls`` and ``Ntry`` is turned into lines as soon as
it ends and is then cleared, so memory stays flat however large the file is.

| element path (under ``Stmt`` / ``Ntfctn``)           | SettlementLine field                  |
|-----------------------------------------------------|---------------------------------------|
| ``Id``, ``Acct/Id/IBAN``                            | statement_id, account_iban            |
| ``Ntry/Amt`` + ``@Ccy``, ``Ntry/CdtDbtInd``         | entry_amount_minor, entry_indicator   |
| ``Ntry/RvslInd``                                    | reversal (undoes the opposite movement) |
| ``Ntry/Sts`` (.02–.06) or ``Ntry/Sts/Cd`` (.07+)    | status: BOOK, PDNG, INFO              |
| ``Ntry/BookgDt/{Dt,DtTm}``, ``Ntry/ValDt/{Dt,DtTm}`` | booked_on, value_on                   |
| ``Ntry/AcctSvcrRef``, else ``Ntry/NtryRef``          | entry_ref                             |
| ``Ntry/NtryDtls/Btch/NbOfTxs``                      | entry_tx_count                        |
| ``TxDtls/Amt`` (.03+) or ``TxDtls/AmtDtls/TxAmt/Amt`` | amount_minor, currency              |
| ``TxDtls/CdtDbtInd`` (else the entry's)             | indicator                             |
| ``TxDtls/AmtDtls/InstdAmt/Amt``                     | gross_minor                           |
| ``TxDtls/Refs/{EndToEndId,AcctSvcrRef,TxId,InstrId}`` | end_to_end_id, account_servicer_ref, … |
| ``TxDtls/RmtInf/Ustrd``, ``…/Strd/CdtrRefInf/Ref``   | remittance, creditor_reference        |
| ``Chrgs/TtlChrgsAndTaxAmt`` or ``Chrgs/Rcrd/Amt`` (.03+), ``Chrgs/Amt`` (.02) | charges_minor |
| ``Chrgs/Rcrd/ChrgInclInd``                          | charges_included                      |

A ``TxDtls`` without an amount (allowed in .02) takes its entry's, if it is the entry's only one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any, BinaryIO
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import DefusedXMLParser, ParseError, iterparse

from gateway.adapters.settlement_files import (
    CAMT_NAMESPACE,
    Indicator,
    InvalidSettlementFile,
    SettlementLine,
    counting,
)
from gateway.domain.money import Money
from gateway.errors import InvalidMoney

ROOTS = {"BkToCstmrStmt": ("camt053", "Stmt"), "BkToCstmrDbtCdtNtfctn": ("camt054", "Ntfctn")}
_LINE = "kassa-line"  # attribute stamped on each element: the source line it starts on


class _LineParser(DefusedXMLParser):  # type: ignore[misc]
    """defusedxml's parser, refusing DTDs too, stamping each element with its source line."""

    def __init__(self) -> None:
        super().__init__(forbid_dtd=True, forbid_entities=True, forbid_external=True)

    def _start(self, tag: str, attr_list: Any) -> Element:
        element: Element = super()._start(tag, attr_list)
        element.set(_LINE, str(self.parser.CurrentLineNumber))
        return element


def parse_camt(
    source: BinaryIO, on_read: Callable[[int], None] | None = None
) -> Iterator[SettlementLine]:
    """Yield the lines of a camt.053/054 file, streaming; a fault raises InvalidSettlementFile."""
    reader = _Reader()
    events = iterparse(counting(source, on_read), ("start", "end"), parser=_LineParser())
    try:
        for event, element in events:
            if event == "start":
                reader.start(element)
            else:
                yield from reader.end(element)
    except ParseError as exc:
        line, column = exc.position
        raise InvalidSettlementFile(
            f"not well-formed XML at line {line}, column {column}: {exc}"
        ) from None
    except DefusedXmlException as exc:
        raise InvalidSettlementFile(
            f"refused: {exc}; settlement files may not contain DTDs or entities"
        ) from None
    if not reader.tags_seen:
        raise InvalidSettlementFile("the file is empty")


@dataclass(frozen=True, slots=True)
class _Entry:
    """The key fields of one ``Ntry``, read before its ``NtryDtls``."""

    index: int
    base: str
    amount_minor: int
    currency: str
    indicator: Indicator
    reversal: bool
    status: str
    booked_on: date | None
    value_on: date | None
    ref: str | None
    charges: tuple[int | None, bool | None]


class _Reader:
    """A state machine over iterparse events: paths, counters, and the entry being read."""

    def __init__(self) -> None:
        self.ns = ""
        self.source = ""
        self.container = ""
        self.tags: list[str] = []
        self.elements: list[Element] = []
        self.tags_seen = False
        self.statement_id: str | None = None
        self.iban: str | None = None
        self.entry_index = 0
        self.tx_index = 0
        self.position = 0
        self.entry: _Entry | None = None
        self.tx_count: int | None = None
        self.held: SettlementLine | None = None

    # -- events ---------------------------------------------------------------------------

    def start(self, element: Element) -> None:
        tag = element.tag.rpartition("}")[2]
        if not self.tags:
            self._root(element)
        self.tags.append(tag)
        self.elements.append(element)
        if tag == "Ntry" and self._parent_is(self.container):
            self.entry_index += 1
            self.tx_index = 0
            self.entry, self.tx_count, self.held = None, None, None
        elif tag == "TxDtls":
            self.tx_index += 1
        elif tag == "NtryDtls" and self.entry is None and self._parent_is("Ntry"):
            self.entry = self._read_entry(self.elements[-2])
        elif len(self.tags) == 2:
            self._message(tag)

    def end(self, element: Element) -> Iterator[SettlementLine]:
        tag, parent = self.tags[-1], self.tags[-2] if len(self.tags) > 1 else ""
        if tag == "Id" and parent == self.container:
            self.statement_id = _stripped(element.text)
        elif tag == "IBAN" and self.tags[-4:-1] == [self.container, "Acct", "Id"]:
            self.iban = _stripped(element.text)
        elif tag == "Btch" and parent == "NtryDtls":
            self.tx_count = self._count(element, "NbOfTxs")
        elif tag == "TxDtls" and parent == "NtryDtls":
            yield from self._transaction(element)
            self._drop(element)
        elif tag == "Ntry" and parent == self.container:
            yield from self._end_entry(element)
            self._drop(element)
        elif tag == self.container:
            self._drop(element)
            self.statement_id = self.iban = None
        self.tags.pop()
        self.elements.pop()

    # -- structure ------------------------------------------------------------------------

    def _root(self, element: Element) -> None:
        self.tags_seen = True
        ns, _, tag = element.tag[1:].rpartition("}")
        if tag != "Document" or not CAMT_NAMESPACE.fullmatch(ns.encode()):
            raise InvalidSettlementFile(
                f"root element is {element.tag!r} (line {element.get(_LINE)}): expected Document"
                " in namespace urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN or camt.054.001.NN"
            )
        self.ns = ns

    def _message(self, tag: str) -> None:
        if tag not in ROOTS:
            raise InvalidSettlementFile(
                f"Document/{tag}: expected BkToCstmrStmt (camt.053) or BkToCstmrDbtCdtNtfctn"
                " (camt.054)"
            )
        self.source, self.container = ROOTS[tag]

    def _parent_is(self, tag: str) -> bool:
        return len(self.tags) > 1 and self.tags[-2] == tag

    def _drop(self, element: Element) -> None:
        element.clear()
        if len(self.elements) > 1:
            self.elements[-2].remove(element)

    def _path(self, depth: int | None = None) -> str:
        parts = []
        for tag in self.tags[:depth]:
            if tag == "Ntry":
                tag = f"Ntry[{self.entry_index}]"
            elif tag == "TxDtls":
                tag = f"TxDtls[{self.tx_index}]"
            parts.append(tag)
        return "/".join(parts)

    # -- entries and transactions ---------------------------------------------------------

    def _read_entry(self, ntry: Element) -> _Entry:
        base = self._path(self.tags.index("Ntry") + 1)
        amount, currency = self._amount(ntry, "Amt", base, required=True)
        assert amount is not None
        return _Entry(
            index=self.entry_index,
            base=base,
            amount_minor=amount,
            currency=currency,
            indicator=self._indicator(ntry, base, required=True) or "CRDT",
            reversal=_stripped(self._text(ntry, "RvslInd")) in ("true", "1"),
            status=self._status(ntry, base),
            booked_on=self._date(ntry, "BookgDt", base),
            value_on=self._date(ntry, "ValDt", base),
            ref=self._text(ntry, "AcctSvcrRef") or self._text(ntry, "NtryRef"),
            charges=self._charges(ntry, base),
        )

    def _transaction(self, tx: Element) -> Iterator[SettlementLine]:
        if self.entry is None:  # a TxDtls outside an Ntry of this message
            return
        base = self._path()
        amount, currency = self._amount(tx, "Amt", base)
        if amount is None:
            amount, currency = self._amount(tx, "AmtDtls/TxAmt/Amt", base)
        charges, included = self._charges(tx, base)
        line = self._line(
            amount_minor=amount if amount is not None else -1,
            currency=currency or self.entry.currency,
            indicator=self._indicator(tx, base) or self.entry.indicator,
            gross_minor=self._amount(tx, "AmtDtls/InstdAmt/Amt", base)[0],
            end_to_end_id=self._text(tx, "Refs/EndToEndId"),
            account_servicer_ref=self._text(tx, "Refs/AcctSvcrRef"),
            transaction_id=self._text(tx, "Refs/TxId"),
            instruction_id=self._text(tx, "Refs/InstrId"),
            remittance=self._remittance(tx),
            creditor_reference=self._text(tx, "RmtInf/Strd/CdtrRefInf/Ref"),
            charges_minor=charges,
            charges_included=included,
            location=f"{base} (line {tx.get(_LINE)})",
        )
        if self.held is not None:
            raise InvalidSettlementFile(
                f"{self.held.location}: TxDtls has no Amt, and its entry"
                " has more than one TxDtls to take it from"
            )
        if amount is None:
            self.held = line
            return
        yield line

    def _end_entry(self, ntry: Element) -> Iterator[SettlementLine]:
        if self.entry is None:
            self.entry = self._read_entry(ntry)
        entry = self.entry
        if self.held is not None:
            yield replace(self.held, amount_minor=entry.amount_minor, currency=entry.currency)
        elif self.tx_index == 0:
            charges, included = entry.charges
            yield self._line(
                amount_minor=entry.amount_minor,
                currency=entry.currency,
                indicator=entry.indicator,
                charges_minor=charges,
                charges_included=included,
                location=f"{entry.base} (line {ntry.get(_LINE)})",
            )
        self.entry, self.held = None, None

    def _line(self, **fields: Any) -> SettlementLine:
        entry = self.entry
        assert entry is not None
        self.position += 1
        return SettlementLine(
            source=self.source,
            position=self.position,
            reversal=entry.reversal,
            status=entry.status,
            booked_on=entry.booked_on,
            value_on=entry.value_on,
            statement_id=self.statement_id,
            account_iban=self.iban,
            entry_index=entry.index,
            entry_ref=entry.ref,
            entry_amount_minor=entry.amount_minor,
            entry_indicator=entry.indicator,
            entry_tx_count=self.tx_count,
            **fields,
        )

    # -- element values -------------------------------------------------------------------

    def _find(self, parent: Element, path: str) -> Element | None:
        return parent.find("/".join(f"{{{self.ns}}}{part}" for part in path.split("/")))

    def _text(self, parent: Element, path: str) -> str | None:
        element = self._find(parent, path)
        return None if element is None else _stripped(element.text)

    def _amount(
        self, parent: Element, path: str, base: str, required: bool = False
    ) -> tuple[int | None, str]:
        """An ``ActiveOrHistoricCurrencyAndAmount``: exact minor units of ``@Ccy``."""
        element = self._find(parent, path)
        if element is None:
            if required:
                raise InvalidSettlementFile(f"{base}/{path} is missing")
            return None, ""
        where = f"{base}/{path} (line {element.get(_LINE)})"
        currency = element.get("Ccy") or ""
        try:
            money = Money.parse(element.text or "", currency)
        except InvalidMoney as exc:
            raise InvalidSettlementFile(f"{where}: {exc}") from None
        if money.minor < 0:
            raise InvalidSettlementFile(f"{where}: amounts are never negative; see CdtDbtInd")
        return money.minor, money.currency

    def _indicator(self, parent: Element, base: str, required: bool = False) -> Indicator | None:
        value = self._text(parent, "CdtDbtInd")
        if value is None and not required:
            return None
        if value not in ("CRDT", "DBIT"):
            raise InvalidSettlementFile(f"{base}/CdtDbtInd is {value!r}: expected CRDT or DBIT")
        return "CRDT" if value == "CRDT" else "DBIT"

    def _status(self, ntry: Element, base: str) -> str:
        status = (
            self._text(ntry, "Sts/Cd") or self._text(ntry, "Sts/Prtry") or self._text(ntry, "Sts")
        )
        if not status:
            raise InvalidSettlementFile(f"{base}/Sts is missing: expected BOOK, PDNG or INFO")
        return status

    def _date(self, parent: Element, tag: str, base: str) -> date | None:
        """``DateAndDateTime2Choice``: ``Dt`` (a date) or ``DtTm`` (its date as written)."""
        day, moment = self._text(parent, f"{tag}/Dt"), self._text(parent, f"{tag}/DtTm")
        try:
            if day:
                return date.fromisoformat(day)
            if moment:
                return datetime.fromisoformat(moment).date()
        except ValueError:
            raise InvalidSettlementFile(
                f"{base}/{tag}: {day or moment!r} is not an ISO 8601 date or date-time"
            ) from None
        return None

    def _charges(self, parent: Element, base: str) -> tuple[int | None, bool | None]:
        """``Chrgs``: the total if given, else the sum of ``Rcrd/Amt`` (.03+) or ``Amt`` (.02)."""
        records = parent.findall(f"{{{self.ns}}}Chrgs")
        if not records:
            return None, None
        total, _ = self._amount(records[0], "TtlChrgsAndTaxAmt", f"{base}/Chrgs")
        amounts = [self._amount(r, "Amt", f"{base}/Chrgs")[0] for r in records] + [
            self._amount(r, "Amt", f"{base}/Chrgs/Rcrd")[0]
            for r in records[0].findall(f"{{{self.ns}}}Rcrd")
        ]
        if total is None:
            total = sum(a for a in amounts if a is not None)
        included = self._text(records[0], "Rcrd/ChrgInclInd")
        return total, None if included is None else included == "true"

    def _remittance(self, tx: Element) -> str | None:
        parts = [_stripped(u.text) for u in tx.iterfind(f"{{{self.ns}}}RmtInf/{{{self.ns}}}Ustrd")]
        text = " ".join(p for p in parts if p)
        return text or None

    def _count(self, parent: Element, tag: str) -> int | None:
        text = self._text(parent, tag)
        if text is None:
            return None
        if not text.isdigit():
            raise InvalidSettlementFile(f"{self._path()}/{tag} is {text!r}: expected a number")
        return int(text)


def _stripped(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip() or None
