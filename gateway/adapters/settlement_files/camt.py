"""Streaming, defused parser for ISO 20022 camt.053 (statement) and camt.054 (notification).

Any version ``camt.05[34].001.NN`` is read (the elements used here kept their names and places
from .001.02 to .001.13). The file is parsed with lxml's ``iterparse``, hardened as defusedxml
hardens the standard library's parser: a document type declaration (and so any entity, internal
subset or external DTD) is refused before the first element is read, entities are never
substituted, no DTD is loaded and nothing is fetched from the network. It is streamed: each
``TxDtls`` and ``Ntry`` is turned into lines as soon as it ends and is then cleared, so memory
stays flat however large the file is. A ``TxDtls`` of the usual shape (each element read met
once, plain amounts in a known currency, the entry's direction) is read in one pass over its
children, or from its serialisation once a detail of its shape was read (a batch's details
from one serialisation of their parent, read ahead: ``_plain_transaction``,
:mod:`~gateway.adapters.settlement_files.camt_details`); any other
by the general reading (``_transaction``), which ``tests/unit/test_camt_plain_reader.py`` holds
the quick one equal to. Lines come out with their card numbers masked.

| element path (under ``Stmt`` / ``Ntfctn``)           | SettlementLine field                  |
|-----------------------------------------------------|---------------------------------------|
| ``Id``, ``Acct/Id/IBAN`` (else ``Acct/Id/Othr/Id``) | statement_id, account_iban            |
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

The entry is what moved on the account: the statement's sums and checks use ``Ntry/Amt`` and
``Ntry/CdtDbtInd``; each ``TxDtls`` is a line of the breakdown used for matching, as written.
What contradicts the entry, and every other flaw in the bank's content, is reported to a
:class:`~gateway.adapters.settlement_files.findings.FileReport` (see its module for the codes).

- A ``TxDtls`` without an amount (allowed in .02) takes its entry's, if it is the entry's only
  one. Several without amounts cannot be split: the entry becomes one batch line whose
  remittance lists the details' references, and is flagged ``details-not-split``.
- Amounts are read as ``xs:decimal`` allows (``01.00``, ``.13``, ``200000``, ``79255.00`` JPY):
  exact in the currency's minor unit is accepted; a non-zero digit beyond it is refused.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, BinaryIO, TypeAlias

from lxml import etree

from gateway.adapters.settlement_files import (
    CAMT_NAMESPACE,
    Indicator,
    InvalidSettlementFile,
    SettlementLine,
    counting,
    scrubbed,
)
from gateway.adapters.settlement_files.camt_details import (
    UNKNOWN,
    Amount,
    Charges,
    DetailShapes,
    Tags,
    plain_elements,
)
from gateway.adapters.settlement_files.findings import (
    FileReport,
    SettlementWarning,
    StatementReport,
)
from gateway.adapters.settlement_files.statement_checks import (
    Balance,
    EntryTotals,
    Summary,
    check_balances,
    check_summary,
)
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import currency as iso_currency
from gateway.errors import InvalidMoney

Element: TypeAlias = etree._Element  # the parsed element's type, for annotations

ROOTS = {"BkToCstmrStmt": ("camt053", "Stmt"), "BkToCstmrDbtCdtNtfctn": ("camt054", "Ntfctn")}
# The elements whose start and end reach Python; all else is read from their subtrees.
_EVENT_TAGS = tuple(
    f"{{*}}{tag}"
    for tag in ("Document", *ROOTS, "Stmt", "Ntfctn", "Ntry", "NtryDtls", "Btch", "TxDtls")
)
_SUMMARY = {  # TxsSummry element (under the summary) -> key of Summary.values
    ("TtlNtries", "NbOfNtries"): "TtlNtries/NbOfNtries",
    ("TtlNtries", "Sum"): "TtlNtries/Sum",
    ("TtlCdtNtries", "NbOfNtries"): "TtlCdtNtries/NbOfNtries",
    ("TtlCdtNtries", "Sum"): "TtlCdtNtries/Sum",
    ("TtlDbtNtries", "NbOfNtries"): "TtlDbtNtries/NbOfNtries",
    ("TtlDbtNtries", "Sum"): "TtlDbtNtries/Sum",
}


def parse_camt(
    source: BinaryIO,
    on_read: Callable[[int], None] | None = None,
    report: FileReport | None = None,
) -> Iterator[SettlementLine]:
    """Yield the lines of a camt.053/054 file, streaming, their card numbers masked
    (:func:`~gateway.adapters.settlement_files.scrubbed`); a fault raises InvalidSettlementFile.

    Statements and flaws of the bank's content go to ``report`` as they are found.
    """
    reader = _Reader(report if report is not None else FileReport())
    events = etree.iterparse(
        _LineEnds(counting(source, on_read)),
        events=("start", "end"),
        tag=_EVENT_TAGS,  # only these reach Python; the rest is read in C, from the subtree
        resolve_entities=False,  # an entity reference stays a reference: nothing expands
        load_dtd=False,
        no_network=True,
        huge_tree=False,  # libxml2's limits on depth and text size stay on
        remove_pis=True,
        remove_comments=True,
        remove_blank_text=True,  # whitespace between elements: every text read is stripped
    )
    try:
        for event, element in events:
            if event != "start":
                lines = reader.end(element)
                if type(lines) is SettlementLine:  # a detail's, as the quick path reads it
                    yield lines
                else:
                    yield from lines  # type: ignore[misc]
            elif element.tag == reader.tx_tag:  # a detail's start only counts it
                reader.tx_index += 1
            else:
                reader.start(element)
        if not reader.tags_seen and events.root is not None:
            reader.first(events.root)  # a root without any element read here: refused
    except etree.XMLSyntaxError as exc:
        line, column = exc.position
        if "amplification" in (exc.msg or "") or "entity reference loop" in (exc.msg or ""):
            raise InvalidSettlementFile(  # libxml2 stopped an entity bomb in the DTD itself
                f"refused: entity expansion at line {line}: {exc.msg}; settlement files may not"
                " contain DTDs or entities"
            ) from None
        raise InvalidSettlementFile(
            f"not well-formed XML at line {line}, column {column}: {exc.msg}"
        ) from None
    if not reader.tags_seen:
        raise InvalidSettlementFile("the file is empty")


class _LineEnds:
    """The stream with CR LF and lone CR turned into LF, as XML 1.0 §2.11 normalises them.

    libxml2 counts only LF when it numbers lines, so a file with CR-only line ends (old Mac
    exports) would report every element on line 1. Safe on ASCII-compatible encodings (a CR
    byte is never part of a UTF-8 sequence); a UTF-16 stream (BOM or NUL bytes) is left as is.
    """

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.after_cr = raw, False
        self.wide: bool | None = None  # known from the first read

    def read(self, size: int = -1) -> bytes:
        chunk: bytes = self.raw.read(size)
        if self.wide is None and chunk:
            self.wide = chunk[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in chunk[:4]
        if self.wide or not chunk:
            return chunk
        if self.after_cr and chunk[:1] == b"\n":
            chunk = chunk[1:] or self.raw.read(size)  # never an empty read before the end
        self.after_cr = chunk[-1:] == b"\r"
        if b"\r" not in chunk:  # the usual file: one scan in C, no copy
            return chunk
        return chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")


def _refuse_doctype(root: Any) -> None:
    """Refuse any document type declaration, as defusedxml's ``forbid_dtd`` does.

    The root's start event comes before any content is read: a DTD's entities are declared
    (never expanded, ``resolve_entities=False``) but never reach the reader.
    """
    info = root.getroottree().docinfo
    if info.doctype or info.internalDTD is not None or info.externalDTD is not None:
        raise InvalidSettlementFile(
            f"refused: a document type declaration ({info.doctype or 'DTD'}) at line "
            f"{root.sourceline}; settlement files may not contain DTDs or entities"
        )


def minor_units(text: str | None, currency_code: str) -> int:
    """An ``ActiveOrHistoricCurrencyAndAmount`` as exact minor units (ValueError otherwise).

    Any ``xs:decimal`` spelling is read (``01.00``, ``.13``, ``200000``); digits beyond the
    currency's minor unit must be zeros (``79255.00`` JPY is 79255), else it is an error.
    """
    exponent = _EXPONENTS.get(currency_code)
    if exponent is None:
        exponent = iso_currency(currency_code).exponent
        if len(_EXPONENTS) < 512:
            _EXPONENTS[currency_code] = exponent
    whole, _, frac = (text or "").strip().partition(".")
    if not (whole or frac) or not _digits(whole) or not _digits(frac) or "." in frac:
        raise ValueError(f"{text!r} is not a decimal number such as 12.34")
    kept, beyond = frac[:exponent], frac[exponent:]
    if beyond.strip("0"):
        raise ValueError(
            f"{text!r} has non-zero digits beyond the {exponent} decimal places of {currency_code}"
        )
    return int(whole or "0") * 10**exponent + int(kept.ljust(exponent, "0") or "0")


_EXPONENTS: dict[str, int] = {}  # currency code as written -> ISO 4217 minor unit


def _digits(text: str) -> bool:
    """Empty, or ASCII digits only (``str.isdigit`` alone takes ``²`` and other scripts)."""
    return not text or (text.isascii() and text.isdigit())


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

    @property
    def signed(self) -> int:
        return self.amount_minor if self.indicator == "CRDT" else -self.amount_minor


class _Reader:
    """A state machine over the events of ``_EVENT_TAGS``: the statement, the entry being read,
    counters; what lies between those elements is read from their subtrees."""

    plain = True  # read details of the usual shape in one pass (off: every one as in general)

    def __init__(self, report: FileReport) -> None:
        self.report = report
        self.ns = ""
        self.tags: Tags | None = None
        self.tx_tag = ""  # TxDtls in the root's namespace, known from the root
        self.shapes = DetailShapes()
        # A detail's line's fields from its statement and entry, and whether their texts are
        # clean (``_head``): known until the next event other than a detail's end.
        self.head: tuple[tuple[Any, ...], bool] | None = None
        self.paths: dict[str, tuple[str, ...]] = {}
        self.local: dict[str, str] = {}  # "{ns}Ntry" -> "Ntry"
        self.source = ""
        self.container = ""
        self.root: Element | None = None
        self.tags_seen = False
        self.statement: StatementReport | None = None
        self.statement_element: Element | None = None
        self.statement_day: date | None = None
        self.balances: list[Balance] = []
        self.summary: Summary | None = None
        self.totals = EntryTotals()
        self.entry_index = 0
        self.tx_index = 0
        self.position = 0
        self.entry: _Entry | None = None
        self.details: Element | None = None  # the NtryDtls whose path is details_path
        self.details_path = ""
        self.tx_count: int | None = None
        self.tx_count_line: int | None = None
        self.amountless: list[SettlementLine] = []
        self.detail_sums: dict[str, int] = {}
        self.turned: tuple[str, int | None] | None = None  # a lone detail's other direction

    # -- events ---------------------------------------------------------------------------

    def _tag(self, element: Element) -> str:
        """The element's local name (any namespace, as the paths in the module table)."""
        tag = element.tag
        local = self.local.get(tag)
        if local is None:
            local = self.local[tag] = str(tag).rpartition("}")[2]
        return local

    def first(self, root: Element) -> None:
        """The document's root, met at the first event: no DTD, a camt ``Document``."""
        _refuse_doctype(root)
        self._root(root)

    def start(self, element: Element) -> None:
        self.head = None  # what a line takes from its statement and entry may change below
        if not self.tags_seen:
            self.first(element.getroottree().getroot())
        tag = self._tag(element)
        if tag == "TxDtls":
            self.tx_index += 1
            return
        parent = element.getparent()
        parent_tag = "" if parent is None else self._tag(parent)
        if tag == "NtryDtls":
            if parent_tag == "Ntry" and self.entry is None:
                self.entry = self._read_entry(parent)
            self.details, self.details_path = element, self._path_of(element)
        elif tag == "Ntry":
            if parent_tag == self.container:
                if parent is self.statement_element:
                    self._statement_fields(until=element)
                self.entry_index += 1
                self.tx_index = 0
                self.entry, self.tx_count, self.details = None, None, None
                self.amountless, self.detail_sums, self.turned = [], {}, None
        elif tag in ROOTS and parent is self.root:
            self._check_messages(until=element)
            self.source, self.container = ROOTS[tag]
        elif tag == self.container and parent is not None and parent.getparent() is self.root:
            self.statement_element = element
            self._start_statement()

    def end(self, element: Element) -> SettlementLine | Iterator[SettlementLine]:
        """The lines an element's end gives: a detail of the usual shape's line itself (no
        generator for each), any other element's as ``_end`` reads them."""
        if self.plain and element.tag == self.tx_tag:
            parent = self.details
            if parent is not None and element.getparent() is parent:
                line = self._plain_transaction(element)
                if line is not None:
                    self.position += 1
                    if self.statement is not None:
                        self.statement.lines += 1
                    element.clear()
                    parent.remove(element)
                    return line
        self.head = None  # what a line takes from its statement and entry may change below
        return self._end(element)

    def _end(self, element: Element) -> Iterator[SettlementLine]:
        tag = self._tag(element)
        parent = element.getparent()
        if tag == "TxDtls":
            if parent is not None and parent is self.details:
                base = f"{self.details_path}/TxDtls[{self.tx_index}]"
                yield from self._counted(self._transaction(element, base))
                self._drop(element, parent)
            elif parent is not None and self._tag(parent) == "NtryDtls":
                yield from self._counted(self._transaction(element, self._path_of(element)))
                self._drop(element, parent)
            return
        parent_tag = "" if parent is None else self._tag(parent)
        if tag == "Btch" and parent_tag == "NtryDtls":
            self.tx_count = self._count(element, "NbOfTxs")
            self.tx_count_line = _line_of(self._find(element, "NbOfTxs"))
            self._drop(element, parent)  # read: the details after it are then the first child
        elif tag == "Ntry" and parent_tag == self.container:
            yield from self._counted(self._end_entry(element))
            self._drop(element, parent)
        elif tag == self.container and self.statement is not None:
            if element is self.statement_element:
                self._statement_fields()
            self._end_statement(self.statement, element)
            self._drop(element, parent)
        elif tag == "Document" and parent is None:
            self._check_messages()

    # -- structure ------------------------------------------------------------------------

    def _root(self, element: Element) -> None:
        self.tags_seen = True
        ns, _, tag = str(element.tag)[1:].rpartition("}")
        if tag != "Document" or not CAMT_NAMESPACE.fullmatch(ns.encode()):
            raise InvalidSettlementFile(
                f"root element is {element.tag!r} (line {element.sourceline}): expected Document"
                " in namespace urn:iso:std:iso:20022:tech:xsd:camt.053.001.NN or camt.054.001.NN"
            )
        self.ns, self.root = ns, element
        self.tags = Tags(ns)
        self.tx_tag = self.tags.TxDtls
        self.shapes = DetailShapes()
        self.paths = {}  # "Refs/EndToEndId" -> its namespaced steps (ns is known from here)

    def _check_messages(self, until: Element | None = None) -> None:
        """Each element under the root (before ``until``) is a camt message (``BkToCstmrStmt``,
        …). The parser reads ahead of the events: what follows is checked at its turn."""
        for child in self.root if self.root is not None else ():
            if child is until:
                return
            tag = self._tag(child) if isinstance(child.tag, str) else None
            if tag is not None and tag not in ROOTS:
                raise InvalidSettlementFile(
                    f"Document/{tag}: expected BkToCstmrStmt (camt.053) or"
                    " BkToCstmrDbtCdtNtfctn (camt.054)"
                )

    def _drop(self, element: Element, parent: Element | None) -> None:
        element.clear()
        if parent is not None:
            parent.remove(element)

    def _path_of(self, element: Element, through: str | None = None) -> str:
        """``Document/BkToCstmrStmt/Stmt[1]/Ntry[2]/…``: the element's path, numbered as read;
        ``through="Ntry"`` ends it at the first ``Ntry``."""
        tags = [self._tag(e) for e in element.iterancestors()][::-1]
        tags.append(self._tag(element))
        if through is not None and through in tags:
            tags = tags[: tags.index(through) + 1]
        parts = []
        for tag in tags:
            if tag == "Ntry":
                tag = f"Ntry[{self.entry_index}]"
            elif tag == "TxDtls":
                tag = f"TxDtls[{self.tx_index}]"
            elif tag == self.container and self.statement is not None:
                tag = f"{tag}[{self.statement.position}]"
            parts.append(tag)
        return "/".join(parts)

    def _warn(
        self,
        code: str,
        path: str,
        line: int | None,
        expected: str | None,
        found: str | None,
        message: str,
    ) -> None:
        position = self.statement.position if self.statement is not None else None
        self.report.warn(SettlementWarning(code, path, line, expected, found, message, position))

    # -- statements -----------------------------------------------------------------------

    def _start_statement(self) -> None:
        self.statement = StatementReport(position=len(self.report.statements) + 1)
        self.report.statements.append(self.statement)
        self.statement_day, self.balances, self.summary = None, [], None
        self.totals, self.entry_index = EntryTotals(), 0

    def _statement_fields(self, until: Element | None = None) -> None:
        """The statement's elements other than its entries (``Id``, ``Acct``, ``Bal``, …) before
        ``until`` (the parser reads ahead of the events), in document order; each is then
        removed, so memory stays flat."""
        statement, element = self.statement, self.statement_element
        if statement is None or element is None:
            return
        for child in list(element):
            if child is until:
                return
            tag = self._tag(child) if isinstance(child.tag, str) else ""
            if tag == "Ntry":
                continue
            if tag == "Id":
                statement.statement_id = _stripped(child.text)
            elif tag == "CreDtTm" and self.statement_day is None:
                self.statement_day = self._day_of(child.text)
            elif tag == "FrToDt":
                for end in child.iterchildren(f"{{{self.ns}}}ToDtTm"):
                    self.statement_day = self._day_of(end.text) or self.statement_day
            elif tag == "Acct":
                statement.account = statement.account or self._account(child)
            elif tag == "Bal":
                self._balance(child)
            elif tag == "TxsSummry":
                self._summary(child)
            self._drop(child, element)

    def _account(self, acct: Element) -> str | None:
        """``Acct/Id/IBAN`` or ``Acct/Id/Othr/Id``: the first that says something."""
        iban, other = f"{{{self.ns}}}IBAN", f"{{{self.ns}}}Othr"
        for ident in acct.iterchildren(f"{{{self.ns}}}Id"):
            for child in ident.iterchildren(iban, other):
                if child.tag == iban and _stripped(child.text):
                    return _stripped(child.text)
                for inner in child.iterchildren(f"{{{self.ns}}}Id") if child.tag == other else ():
                    if _stripped(inner.text):
                        return _stripped(inner.text)
        return None

    def _balance(self, bal: Element) -> None:
        path, line = self._path_of(bal), _line_of(bal)
        code = self._text(bal, "Tp/CdOrPrtry/Cd") or self._text(bal, "Tp/CdOrPrtry/Prtry") or ""
        amount = self._find(bal, "Amt")
        try:
            value = Decimal((amount.text or "").strip()) if amount is not None else None
        except InvalidOperation:
            value = None
        if amount is None or value is None:
            self._warn(
                "balance-missing",
                f"{path}/Amt",
                line,
                "an amount",
                None,
                f"the {code or 'untyped'} balance has no readable amount",
            )
            return
        if self._text(bal, "CdtDbtInd") == "DBIT":
            value = -value
        where = f"{path}[{code}]"
        self.balances.append(Balance(code, value, amount.get("Ccy") or "", where, line))

    def _summary(self, element: Element) -> None:
        summary = Summary(self._path_of(element))
        for (group, leaf), key in _SUMMARY.items():
            found = self._find(element, f"{group}/{leaf}")
            if found is not None and _stripped(found.text):
                summary.values[key] = (str(_stripped(found.text)), _line_of(found))
        net = self._find(element, "TtlNtries/TtlNetNtry/Amt")
        direction = self._text(element, "TtlNtries/TtlNetNtry/CdtDbtInd")
        if net is None:  # .02: TtlNetNtryAmt beside CdtDbtInd
            net = self._find(element, "TtlNtries/TtlNetNtryAmt")
            direction = self._text(element, "TtlNtries/CdtDbtInd")
        if net is not None and _stripped(net.text):
            found_net = f"{_stripped(net.text)} {direction or 'CRDT'}"
            summary.values["TtlNtries/TtlNet"] = (found_net, _line_of(net))
        self.summary = summary

    def _end_statement(self, statement: StatementReport, element: Element) -> None:
        base = self._path_of(element)
        check_balances(statement, self.balances, base, self.source == "camt053", self._warn)
        check_summary(self.summary, self.totals, self._warn)
        self.statement = None

    # -- entries and transactions ---------------------------------------------------------

    def _read_entry(self, ntry: Element) -> _Entry:
        base = self._path_of(ntry, through="Ntry")
        amount, currency = self._amount(ntry, "Amt", base, required=True)
        assert amount is not None
        status = self._status(ntry, base)
        value_on = self._date(ntry, "ValDt", base)
        booked_on = self._date(ntry, "BookgDt", base)
        if booked_on is None and status == "BOOK":
            booked_on = value_on or self.statement_day
            self._warn(
                "booking-date-missing",
                f"{base}/BookgDt",
                _line_of(ntry),
                "a booking date",
                None,
                f"a booked entry without BookgDt: booked on {booked_on or 'no day'}"
                f" ({'its value date' if value_on else 'the statement date'})",
            )
        return _Entry(
            index=self.entry_index,
            base=base,
            amount_minor=amount,
            currency=currency,
            indicator=self._indicator(ntry, base),
            reversal=_stripped(self._text(ntry, "RvslInd")) in ("true", "1"),
            status=status,
            booked_on=booked_on,
            value_on=value_on,
            ref=self._text(ntry, "AcctSvcrRef") or self._text(ntry, "NtryRef"),
            charges=self._charges(ntry, base),
        )

    def _transaction(self, tx: Element, base: str) -> Iterator[SettlementLine]:
        entry = self.entry
        if entry is None:  # a TxDtls outside an Ntry of this message
            return
        kids = _Children(tx, self)
        amount, currency = self._amount(kids, "Amt", base)
        if amount is None:
            amount, currency = self._amount(kids, "AmtDtls/TxAmt/Amt", base)
        currency = currency or entry.currency
        gross, gross_currency = self._amount(kids, "AmtDtls/InstdAmt/Amt", base, strict=False)
        charges, included = self._charges(tx, base, kids)
        ref = kids.under("Refs")
        line = self._line(
            amount_minor=amount or 0,
            currency=currency,
            indicator=self._detail_indicator(kids, base, entry),
            gross_minor=gross if gross_currency == currency else None,
            end_to_end_id=ref("EndToEndId"),
            account_servicer_ref=ref("AcctSvcrRef"),
            transaction_id=ref("TxId"),
            instruction_id=ref("InstrId"),
            remittance=self._remittance(tx),
            creditor_reference=kids.text("RmtInf/Strd/CdtrRefInf/Ref"),
            charges_minor=charges,
            charges_included=included,
            location=f"{base} (line {tx.sourceline})",
        )
        if amount is None:  # numbered when it is known what to do with it, at the entry's end
            self.amountless.append(line)
            return
        signed = amount if line.indicator == "CRDT" else -amount
        self.detail_sums[currency] = self.detail_sums.get(currency, 0) + signed
        yield line

    def _plain_transaction(self, tx: Element) -> SettlementLine | None:
        """``_transaction`` for a detail of the usual shape: its texts from its serialisation if
        its shape is known, else from one walk over its elements (whose shape is then learnt).

        None for any other shape (a tag met twice where one is read, an amount that is not
        plain digits in a known currency, a missing amount, a direction not the entry's, a
        ``Strd`` or ``AmtDtls`` beside several of its kind): ``_transaction`` reads that one.
        Nothing is changed before the line is known, so the general reading starts afresh.
        """
        entry, t = self.entry, self.tags
        if entry is None or t is None:
            return None
        line = self.shapes.read(tx, self._plain_line, entry)
        if line is not UNKNOWN:
            return line  # type: ignore[no-any-return]
        elements = plain_elements(tx, t)
        if elements is None:
            return None
        line = self._plain_line(tx, entry, *elements.texts())
        if line is not None:
            self.shapes.learn(tx, elements)
        return line

    def _plain_line(  # the fields of DetailTexts, passed as a match's groups
        self,
        tx: Element,
        entry: _Entry,
        text: str | None,
        currency: str | None,
        direction: str | None,
        has_gross: bool,
        gross_text: str | None,
        gross_currency: str | None,
        charge_texts: Charges | None,
        e2e: str | None,
        servicer: str | None,
        transaction: str | None,
        instruction: str | None,
        remittances: tuple[str | None, ...] | None,
        creditor: str | None,
    ) -> SettlementLine | None:
        """The line of a detail of the usual shape from its texts, the fields of
        :class:`~gateway.adapters.settlement_files.camt_details.DetailTexts` (None: not plain
        after all)."""
        exponent = _EXPONENTS.get(currency)  # type: ignore[arg-type]
        if exponent is None or not text or currency is None:
            return None
        whole, _, frac = text.partition(".")  # _plain_minor's usual case, inline
        if whole and len(frac) == exponent and (digits := whole + frac).isdigit():
            minor = int(digits) if digits.isascii() else None
        else:
            minor = _plain_minor(text, exponent)
        if minor is None:
            return None
        if direction is not None and direction != entry.indicator:
            if (direction.strip() or entry.indicator) != entry.indicator:
                return None
        gross = None
        if has_gross:
            if gross_currency != currency:
                exponent = _EXPONENTS.get(gross_currency)  # type: ignore[arg-type]
            if exponent is None or not gross_text:
                return None
            whole, _, frac = gross_text.partition(".")
            if whole and len(frac) == exponent and (digits := whole + frac).isdigit():
                gross = int(digits) if digits.isascii() else None
            else:
                gross = _plain_minor(gross_text, exponent)
            if gross is None:
                return None
            if gross_currency != currency:
                gross = None
        charges = included = None
        if charge_texts is not None:
            found = _PLAIN_CHARGES.get(charge_texts) or _plain_charges(*charge_texts)
            if found is None:
                return None
            charges, included = found
        if e2e is not None:
            e2e = e2e.strip() or None
        if servicer is not None:
            servicer = servicer.strip() or None
        if transaction is not None:
            transaction = transaction.strip() or None
        if instruction is not None:
            instruction = instruction.strip() or None
        remittance = None
        if remittances is not None:
            if len(remittances) == 1:
                remittance = remittances[0]
                if remittance is not None:
                    remittance = remittance.strip() or None
            else:
                remittance = " ".join(filter(None, [r.strip() for r in remittances if r])) or None
        if creditor is not None:
            creditor = creditor.strip() or None
        statement = self.statement
        if self.head is None:  # the first detail since an event other than a detail's
            self.head = self._head(statement, entry)
        head, clean = self.head
        signed = minor if entry.indicator == "CRDT" else -minor
        sums = self.detail_sums
        sums[currency] = sums.get(currency, 0) + signed
        location = f"{self.details_path}/TxDtls[{self.tx_index}] (line {tx.sourceline})"
        line: SettlementLine = _new_line(
            SettlementLine,
            (self.source, self.position + 1, location, minor, currency, *head, e2e, servicer,
             transaction, instruction, remittance, creditor, gross, charges, included,
             None, None, None, None, False),
        )  # fmt: skip
        if not clean:
            return scrubbed(line)
        if (  # a card number needs 13 digits: texts shorter than that are not looked into
            (e2e is not None and len(e2e) > 12)
            or (servicer is not None and len(servicer) > 12)
            or (transaction is not None and len(transaction) > 12)
            or (instruction is not None and len(instruction) > 12)
            or (remittance is not None and len(remittance) > 12)
            or (creditor is not None and len(creditor) > 12)
        ) and _digit_run(
            f"{e2e}\n{servicer}\n{transaction}\n{instruction}\n{remittance}\n{creditor}"
        ):
            return scrubbed(line)
        return line

    def _head(
        self, statement: StatementReport | None, entry: _Entry
    ) -> tuple[tuple[Any, ...], bool]:
        """The fields a detail's line takes from its statement and entry, in the order of
        SettlementLine's (``indicator`` … ``entry_tx_count``), and whether their texts (the
        details' path too) hold no card number, known once per entry: ``scrubbed`` masks each
        text alone, so then it changes a line only if the detail's own texts may hold one."""
        statement_id = statement.statement_id if statement else None
        account = statement.account if statement else None
        head = (
            entry.indicator, entry.reversal, entry.status, entry.booked_on, entry.value_on,
            statement_id, account, entry.index, entry.ref, entry.amount_minor, entry.indicator,
            self.tx_count,
        )  # fmt: skip
        texts = (statement_id, account, entry.ref, entry.status, self.details_path)
        return head, all(scrub_card_numbers(t) == t for t in texts if t)

    def _detail_indicator(self, tx: _Children, base: str, entry: _Entry) -> Indicator:
        """The detail's own direction; one that is not its entry's is flagged at the entry's end.

        Only a lone detail must go the entry's way: a batch nets credits and debits (a refund
        in a day's payout), and its details are checked by their sum.
        """
        value = tx.text("CdtDbtInd")
        if value is None or value == entry.indicator:
            return entry.indicator
        where = (f"{base}/CdtDbtInd", _line_of(tx.find("CdtDbtInd")))
        if value not in ("CRDT", "DBIT"):
            self._warn(
                "detail-direction-differs",
                *where,
                entry.indicator,
                value,
                f"the detail's CdtDbtInd {value!r} is neither CRDT nor DBIT: the entry's"
                f" {entry.indicator} is used",
            )
            return entry.indicator
        if self.tx_index == 1:
            self.turned = where
        return "DBIT" if value == "DBIT" else "CRDT"

    def _end_entry(self, ntry: Element) -> Iterator[SettlementLine]:
        if self.entry is None:
            self.entry = self._read_entry(ntry)
        entry = self.entry
        if self.turned is not None and self.tx_index == 1:
            found = "DBIT" if entry.indicator == "CRDT" else "CRDT"
            self._warn(
                "detail-direction-differs",
                *self.turned,
                entry.indicator,
                found,
                f"the entry's only detail says {found}, the entry {entry.indicator}: the"
                " entry is booked, the detail kept as written for matching",
            )
        if self.amountless:
            yield from self._unsplit(entry, ntry)
        elif self.tx_index == 0:
            charges, included = entry.charges
            yield self._line(
                amount_minor=entry.amount_minor,
                currency=entry.currency,
                indicator=entry.indicator,
                charges_minor=charges,
                charges_included=included,
                location=f"{entry.base} (line {ntry.sourceline})",
            )
        elif self.detail_sums != {entry.currency: entry.signed} and not (
            self.turned is not None and self.detail_sums == {entry.currency: -entry.signed}
        ):  # a lone detail that only goes the other way is flagged once, above
            self._warn(
                "details-sum-differs",
                f"{entry.base}/NtryDtls",
                _line_of(ntry),
                _signed_text(entry.signed, entry.currency),
                _sums_text(self.detail_sums),
                f"the {self.tx_index} details add up to {_sums_text(self.detail_sums)},"
                f" the entry is {_signed_text(entry.signed, entry.currency)}: the"
                " entry is booked",
            )
        if self.tx_count is not None and self.tx_index and self.tx_count != self.tx_index:
            self._warn(
                "batch-count-differs",
                f"{entry.base}/NtryDtls/Btch/NbOfTxs",
                self.tx_count_line,
                str(self.tx_index),
                str(self.tx_count),
                f"Btch/NbOfTxs says {self.tx_count}, the entry has {self.tx_index} TxDtls",
            )
        self._book(entry)
        self.entry, self.amountless = None, []

    def _unsplit(self, entry: _Entry, ntry: Element) -> Iterator[SettlementLine]:
        """Details without amounts: a lone one takes its entry's; several make one batch line."""
        held = self.amountless
        if len(held) == 1 and self.tx_index == 1:
            yield held[0]._replace(
                amount_minor=entry.amount_minor,
                currency=entry.currency,
                indicator=entry.indicator,
                position=self.position + 1,
            )
            return
        rest = entry.signed - self.detail_sums.get(entry.currency, 0)
        if set(self.detail_sums) - {entry.currency}:
            rest = entry.signed
        refs = [ref for line in held for ref in _refs(line)]
        self._warn(
            "details-not-split",
            f"{entry.base}/NtryDtls",
            _line_of(ntry),
            f"an Amt in each of {self.tx_index} TxDtls",
            f"{len(held)} without",
            f"{len(held)} of {self.tx_index} details carry no amount: one line of"
            f" {_signed_text(rest, entry.currency)} for them, their references kept"
            " for matching",
        )
        yield held[0]._replace(
            position=self.position + 1,
            amount_minor=abs(rest),
            currency=entry.currency,
            indicator="CRDT" if rest >= 0 else "DBIT",
            end_to_end_id=None,
            account_servicer_ref=None,
            transaction_id=None,
            instruction_id=None,
            creditor_reference=None,
            remittance=" ".join(dict.fromkeys(refs)) or None,
            entry_tx_count=self.tx_count or len(held),
            location=f"{entry.base}/NtryDtls: {len(held)} TxDtls from {held[0].location}",
        )

    def _book(self, entry: _Entry) -> None:
        statement = self.statement
        if statement is None:
            return
        statement.entries += 1
        self.totals.add(entry.currency, entry.indicator, entry.amount_minor)
        if entry.status == "BOOK":
            statement.book(entry.currency, entry.indicator, entry.amount_minor, entry.booked_on)
        else:
            statement.pending += 1

    def _counted(self, lines: Iterator[SettlementLine]) -> Iterator[SettlementLine]:
        for line in lines:
            self.position += 1
            if self.statement is not None:
                self.statement.lines += 1
            yield scrubbed(line)

    def _line(self, **fields: Any) -> SettlementLine:
        """A line of the current entry, numbered as the next one the file yields."""
        entry = self.entry
        assert entry is not None
        statement = self.statement
        fields.setdefault("entry_tx_count", self.tx_count)
        return SettlementLine(
            source=self.source,
            position=self.position + 1,
            reversal=entry.reversal,
            status=entry.status,
            booked_on=entry.booked_on,
            value_on=entry.value_on,
            statement_id=statement.statement_id if statement else None,
            account_iban=statement.account if statement else None,
            entry_index=entry.index,
            entry_ref=entry.ref,
            entry_amount_minor=entry.amount_minor,
            entry_indicator=entry.indicator,
            **fields,
        )

    # -- element values -------------------------------------------------------------------

    def _find(self, parent: Element, path: str) -> Element | None:
        """``parent.find(path)`` for a plain child path, on lxml's C child iterator.

        lxml's ``find`` runs ElementPath in Python; this one is several times faster and gives
        the same element: the first in document order along the steps.
        """
        return _first(parent, self.steps(path), 0)

    def steps(self, path: str) -> tuple[str, ...]:
        """``"Refs/TxId"`` as namespaced tags."""
        steps = self.paths.get(path)
        if steps is None:
            steps = self.paths[path] = tuple(f"{{{self.ns}}}{part}" for part in path.split("/"))
        return steps

    def _text(self, parent: Element, path: str) -> str | None:
        element = self._find(parent, path)
        return None if element is None else _stripped(element.text)

    def _amount(
        self,
        parent: Element | _Children,
        path: str,
        base: str,
        required: bool = False,
        strict: bool = True,
    ) -> tuple[int | None, str]:
        """An ``ActiveOrHistoricCurrencyAndAmount``: exact minor units of ``@Ccy``.

        ``strict=False`` (an amount only shown, never booked) gives None for a faulty one.
        """
        element = parent.find(path) if isinstance(parent, _Children) else self._find(parent, path)
        if element is None:
            if required:
                raise InvalidSettlementFile(f"{base}/{path} is missing")
            return None, ""
        currency = (element.get("Ccy") or "").strip().upper()
        text = (element.text or "").strip()
        if text.startswith("-") and strict:
            raise InvalidSettlementFile(
                f"{base}/{path} (line {element.sourceline}): amounts are never negative; see"
                " CdtDbtInd"
            )
        try:
            return minor_units(text, currency), currency
        except (ValueError, InvalidMoney) as exc:
            if not strict:
                return None, ""
            where = f"{base}/{path} (line {element.sourceline})"
            raise InvalidSettlementFile(f"{where}: {exc}") from None

    def _indicator(self, ntry: Element, base: str) -> Indicator:
        value = self._text(ntry, "CdtDbtInd")
        if value not in ("CRDT", "DBIT"):
            raise InvalidSettlementFile(f"{base}/CdtDbtInd is {value!r}: expected CRDT or DBIT")
        return "CRDT" if value == "CRDT" else "DBIT"

    def _status(self, ntry: Element, base: str) -> str:
        status = (
            self._text(ntry, "Sts/Cd") or self._text(ntry, "Sts/Prtry") or self._text(ntry, "Sts")
        )
        if status:
            return status[:8]
        assumed = "BOOK" if self._find(ntry, "BookgDt") is not None else "PDNG"
        self._warn(
            "status-missing",
            f"{base}/Sts",
            _line_of(ntry),
            "BOOK, PDNG or INFO",
            None,
            f"the entry has no Sts: taken as {assumed}, since it"
            f" {'has' if assumed == 'BOOK' else 'has no'} booking date",
        )
        return assumed

    def _date(self, parent: Element, tag: str, base: str) -> date | None:
        """``DateAndDateTime2Choice``: ``Dt`` (a date) or ``DtTm`` (its date as written)."""
        element = self._find(parent, f"{tag}/Dt")
        if element is None:
            element = self._find(parent, f"{tag}/DtTm")
        text = None if element is None else _stripped(element.text)
        if text is None:
            return None
        day = self._day_of(text)
        if day is None:
            self._warn(
                "date-invalid",
                f"{base}/{tag}",
                _line_of(element),
                "YYYY-MM-DD",
                text,
                f"{text!r} is not an ISO 8601 date or date-time",
            )
        return day

    @staticmethod
    def _day_of(text: str | None) -> date | None:
        text = _stripped(text)
        if not text:
            return None
        try:
            if len(text) == 10:
                return date.fromisoformat(text)
            return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
        except ValueError:
            return None

    def _charges(
        self, parent: Element, base: str, kids: _Children | None = None
    ) -> tuple[int | None, bool | None]:
        """``Chrgs``: the total if given, else the sum of ``Rcrd/Amt`` (.03+) or ``Amt`` (.02).

        Every amount is read (a faulty one is refused even beside a total)."""
        tag = f"{{{self.ns}}}Chrgs"
        if kids is not None and tag not in kids.twice:
            only = kids.first.get(tag)
            records = [] if only is None else [only]
        else:
            records = list(parent.iterchildren(tag))
        if not records:
            return None, None
        first = _Children(records[0], self)
        total, _ = self._amount(first, "TtlChrgsAndTaxAmt", f"{base}/Chrgs")
        amounts = [self._amount(first, "Amt", f"{base}/Chrgs")[0]]
        amounts += [self._amount(r, "Amt", f"{base}/Chrgs")[0] for r in records[1:]]
        amounts += [
            self._amount(r, "Amt", f"{base}/Chrgs/Rcrd")[0]
            for r in records[0].iterchildren(f"{{{self.ns}}}Rcrd")
        ]
        if total is None:
            total = sum(a for a in amounts if a is not None)
        included = first.text("Rcrd/ChrgInclInd")
        return total, None if included is None else included == "true"

    def _remittance(self, tx: Element) -> str | None:
        rmt, ustrd = f"{{{self.ns}}}RmtInf", f"{{{self.ns}}}Ustrd"
        parts = [_stripped(u.text) for r in tx.iterchildren(rmt) for u in r.iterchildren(ustrd)]
        text = " ".join(p for p in parts if p)
        return text or None

    def _count(self, parent: Element, tag: str) -> int | None:
        text = self._text(parent, tag)
        if text is None or not text.isdigit():
            return None
        return int(text)


class _Children:
    """An element's children by tag, read once: ``find`` and ``text`` as the reader's, for the
    many paths read from one ``TxDtls`` (a tag met twice is looked up along the element)."""

    __slots__ = ("element", "first", "reader", "twice")

    def __init__(self, element: Element | None, reader: _Reader) -> None:
        self.element, self.reader = element, reader
        self.first: dict[object, Element] = {}
        self.twice: set[object] = set()
        for child in () if element is None else element:
            if child.tag in self.first:
                self.twice.add(child.tag)
            else:
                self.first[child.tag] = child

    def find(self, path: str) -> Element | None:
        steps = self.reader.paths.get(path) or self.reader.steps(path)
        if steps[0] in self.twice:
            return _first(self.element, steps, 0)
        child = self.first.get(steps[0])
        if child is None or len(steps) == 1:
            return child
        return _first(child, steps, 1)

    def text(self, path: str) -> str | None:
        element = self.find(path)
        return None if element is None else _stripped(element.text)

    def under(self, tag: str) -> Callable[[str], str | None]:
        """``text`` of one-step paths below the child ``tag`` (``Refs``), read once."""
        steps = self.reader.steps(tag)
        if steps[0] in self.twice:  # the first of the children that has the step
            return lambda step: self.text(f"{tag}/{step}")
        return _Children(self.first.get(steps[0]), self.reader).text


# What a detail's amounts and charges came to, by their texts as written: a day's amounts and
# fees repeat (in a currency once met, the same text always reads the same). Bounded.
_PLAIN_AMOUNTS: dict[Amount | None, tuple[int, str]] = {}
_PLAIN_CHARGES: dict[object, tuple[int | None, bool | None]] = {}


def _remember(cache: dict[Any, Any], key: object, value: object) -> None:
    if len(cache) >= 4096:
        cache.clear()
    cache[key] = value


def _plain_amount(text: str | None, currency: str | None) -> tuple[int, str] | None:
    """``minor_units`` of an amount written as digits with at most the currency's decimals in
    a currency already met, as written (``12.30``, ``79255`` JPY); None for any other spelling
    (a key of ``_EXPONENTS`` is stripped and upper case, so one found is ``Ccy`` as read)."""
    exponent = _EXPONENTS.get(currency)  # type: ignore[arg-type]
    if exponent is None or text is None:
        return None
    whole, _, frac = text.strip().partition(".")
    digits = whole + frac.ljust(exponent, "0")
    if not whole or len(frac) > exponent or not digits.isdigit() or not digits.isascii():
        return None
    found = int(digits), currency
    _remember(_PLAIN_AMOUNTS, (text, currency), found)
    return found  # type: ignore[return-value]


def _plain_minor(text: str | None, exponent: int) -> int | None:
    """``minor_units`` of an amount written as digits with at most ``exponent`` decimals, as
    written (``12.30``, ``12.3``, ``79255`` JPY); None for any other spelling."""
    if not text:
        return None
    whole, _, frac = text.partition(".")
    if len(frac) != exponent:
        if len(frac) > exponent:
            return None
        frac = frac.ljust(exponent, "0")
    digits = whole + frac
    if not whole or not digits.isdigit() or not digits.isascii():
        return None
    return int(digits)


# ``find_digit_run`` for a line's few short texts: tried only where a run of digits starts (the
# same answer: a run found inside a longer one is in the run found from its start), so a long
# reference of fewer than 13 digits is not tried again from each of its digits; possessive, as
# giving back a separator or a digit never lets a run match.
_digit_run = re.compile(r"(?<![0-9])[0-9](?:[ ._\-]?+[0-9]){12,}+").search
_new_line = tuple.__new__  # a SettlementLine from a tuple of all its fields, in their order


def _plain_charges(
    total: Amount | None, amount: Amount | None, record: Amount | None, flag: str | None
) -> tuple[int | None, bool | None] | None:
    """``_charges`` of a detail's only ``Chrgs`` of the usual shape, from its texts: the total
    if given, else the amount and the record's amount added (None: one is not plain)."""
    amounts: list[int | None] = []
    for written in (total, amount, record):
        if written is not None:
            if (found := _plain_amount(*written)) is None:
                return None
            amounts.append(found[0])
        else:
            amounts.append(None)
    ttl = amounts[0]
    if ttl is None:
        ttl = sum(a for a in amounts[1:] if a is not None)
    included = _stripped(flag)
    charges = ttl, None if included is None else included == "true"
    _remember(_PLAIN_CHARGES, (total, amount, record, flag), charges)
    return charges


def _first(node: Element, steps: tuple[str, ...], at: int) -> Element | None:
    for child in node.iterchildren(steps[at]):
        if at == len(steps) - 1:
            return child
        found = _first(child, steps, at + 1)
        if found is not None:
            return found
    return None


def _stripped(text: str | None) -> str | None:
    if text is None:
        return None
    return text.strip() or None


def _line_of(element: Element | None) -> int | None:
    line = None if element is None else element.sourceline
    return int(line) if line else None


def _refs(line: SettlementLine) -> list[str]:
    fields = (
        line.end_to_end_id,
        line.account_servicer_ref,
        line.transaction_id,
        line.instruction_id,
        line.creditor_reference,
        line.remittance,
    )
    return [value for value in fields if value]


def _signed_text(minor: int, currency: str) -> str:
    amount = Decimal(abs(minor)).scaleb(-iso_currency(currency).exponent)
    return f"{amount} {currency} {'DBIT' if minor < 0 else 'CRDT'}"


def _sums_text(sums: dict[str, int]) -> str:
    return " + ".join(_signed_text(v, c) for c, v in sorted(sums.items())) or "nothing"
