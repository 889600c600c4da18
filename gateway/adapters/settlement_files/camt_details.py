"""The texts of a camt ``TxDtls`` of the usual shape, for the reader's quick path.

:func:`plain_elements` walks a detail's children once and finds the elements the quick path
reads (each read element met once where one is read); :class:`DetailTexts` are their texts as
written, which ``camt._Reader`` turns into a line. Walking the elements from Python costs as
much as lxml's whole parse, so :class:`DetailShapes` learns the serialised shape of a detail
walked (its tags in order, a place for each text read) as a regular expression: a later detail
serialised in C (``etree.tostring``) that matches it has the same elements, and its texts are
the groups. Anything the expression does not take (another tag, a text with an escaped
character, an attribute more, a text where the shape learnt had none) is walked again.

| text of (under ``TxDtls``)                   | DetailTexts field                         |
|----------------------------------------------|-------------------------------------------|
| ``Amt``, its ``@Ccy``                         | amount, currency                          |
| ``CdtDbtInd``                                 | direction                                 |
| ``AmtDtls/InstdAmt/Amt``, its ``@Ccy``         | gross, gross_currency                     |
| ``Chrgs/{TtlChrgsAndTaxAmt,Amt,Rcrd/Amt,Rcrd/ChrgInclInd}`` | charges                     |
| ``Refs/{EndToEndId,AcctSvcrRef,TxId,InstrId}`` | end_to_end_id, … (as the line's)         |
| each ``RmtInf/Ustrd``                         | remittance                                |
| ``RmtInf/Strd/CdtrRefInf/Ref`` (the first)    | creditor                                  |
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable
from typing import Any, NamedTuple, TypeAlias

from lxml import etree

Element: TypeAlias = etree._Element
Amount: TypeAlias = tuple[str | None, str | None]  # (text, @Ccy) as written
# Chrgs: TtlChrgsAndTaxAmt, Amt (.02), Rcrd/Amt (None: not there), Rcrd/ChrgInclInd.
Charges: TypeAlias = tuple[Amount | None, Amount | None, Amount | None, str | None]


class Tags:
    """The namespaced tags the quick path compares, made once per file."""

    def __init__(self, ns: str) -> None:
        for name in (
            "Amt", "CdtDbtInd", "Refs", "AmtDtls", "Chrgs", "RmtInf", "InstdAmt",
            "TtlChrgsAndTaxAmt", "Rcrd", "ChrgInclInd", "Ustrd", "Strd", "CdtrRefInf", "Ref",
            "EndToEndId", "AcctSvcrRef", "TxId", "InstrId", "TxDtls",
        ):  # fmt: skip
            setattr(self, name, f"{{{ns}}}{name}")

    def __getattr__(self, name: str) -> str:  # for mypy: the names set above
        raise AttributeError(name)


class DetailTexts(NamedTuple):
    """A detail's texts as written (not stripped), None where an element has none: flat, the
    arguments of the reader's line in their order (a known shape's groups are passed as them,
    no tuple made; a walked detail's are made as this tuple)."""

    amount: str | None
    currency: str | None  # Amt/@Ccy
    direction: str | None  # also None without CdtDbtInd
    has_gross: bool  # AmtDtls/InstdAmt/Amt is there
    gross: str | None
    gross_currency: str | None
    charges: Charges | None  # None without Chrgs
    end_to_end_id: str | None
    account_servicer_ref: str | None
    transaction_id: str | None
    instruction_id: str | None
    remittance: tuple[str | None, ...] | None  # None without RmtInf
    creditor: str | None


class DetailElements(NamedTuple):
    """The elements whose texts make :class:`DetailTexts`."""

    amount: Element
    direction: Element | None
    gross: Element | None
    charges: tuple[Element | None, Element | None, Element | None, Element | None] | None
    refs: tuple[Element | None, Element | None, Element | None, Element | None]
    remittance: tuple[Element, ...] | None
    creditor: Element | None

    def texts(self) -> DetailTexts:
        charges = None
        e2e, servicer, transaction, instruction = self.refs
        if self.charges is not None:
            total, amount, record, flag = self.charges
            charges = (_pair(total), _pair(amount), _pair(record), _text(flag))
        return DetailTexts(
            *_amount(self.amount),
            _text(self.direction),
            self.gross is not None,
            *_amount(self.gross),
            charges,  # type: ignore[arg-type]
            _text(e2e),
            _text(servicer),
            _text(transaction),
            _text(instruction),
            None if self.remittance is None else tuple(e.text for e in self.remittance),
            _text(self.creditor),
        )

    def read(self) -> list[Element]:
        """Every element whose text (or ``@Ccy``) is read."""
        found = [self.amount, self.direction, self.gross, *self.refs, self.creditor]
        found += [*(self.charges or ()), *(self.remittance or ())]
        return [e for e in found if e is not None]


def _pair(element: Element | None) -> Amount | None:
    return None if element is None else (element.text, element.get("Ccy"))


def _amount(element: Element | None) -> Amount:
    return (None, None) if element is None else (element.text, element.get("Ccy"))


def _text(element: Element | None) -> str | None:
    return None if element is None else element.text


def plain_elements(tx: Element, t: Tags) -> DetailElements | None:
    """The elements read from a detail of the usual shape; None for any other shape (a tag met
    twice where one is read, no ``Amt``, an ``InstdAmt`` without or twice, a ``Chrgs`` element
    twice, a ``Refs`` child twice)."""
    amt = ind = refs = amt_dtls = chrgs = rmt = None
    for child in tx:
        tag = child.tag
        if tag == t.Amt:
            if amt is not None:
                return None
            amt = child
        elif tag == t.CdtDbtInd:
            if ind is not None:
                return None
            ind = child
        elif tag == t.Refs:
            if refs is not None:
                return None
            refs = child
        elif tag == t.AmtDtls:
            if amt_dtls is not None:
                return None
            amt_dtls = child
        elif tag == t.Chrgs:
            if chrgs is not None:
                return None
            chrgs = child
        elif tag == t.RmtInf:
            if rmt is not None:
                return None
            rmt = child
    if amt is None:
        return None
    gross = None
    if amt_dtls is not None:
        for instructed in amt_dtls.iterchildren(t.InstdAmt):
            if gross is not None:
                return None  # several InstdAmt
            gross = next(instructed.iterchildren(t.Amt), None)
            if gross is None:
                return None  # without an amount (the general reading looks at the next)
    charges = None
    if chrgs is not None:
        charges = _charges(chrgs, t)
        if charges is None:
            return None
    ids: dict[object, Element] = {}
    for child in () if refs is None else refs:
        if child.tag in ids:
            return None
        ids[child.tag] = child
    ustrd = creditor = None
    if rmt is not None:
        ustrd = tuple(rmt.iterchildren(t.Ustrd))
        creditor = next(rmt.iterfind(f"{t.Strd}/{t.CdtrRefInf}/{t.Ref}"), None)
    e2e, servicer, transaction, instruction = (
        ids.get(tag) for tag in (t.EndToEndId, t.AcctSvcrRef, t.TxId, t.InstrId)
    )
    return DetailElements(
        amt, ind, gross, charges, (e2e, servicer, transaction, instruction), ustrd, creditor
    )


def _charges(
    chrgs: Element, t: Tags
) -> tuple[Element | None, Element | None, Element | None, Element | None] | None:
    """A detail's only ``Chrgs``: its total, its amount (.02), its record's first amount and
    flag; None when one of the first three is there twice."""
    total = amount = record = None
    for child in chrgs:
        tag = child.tag
        if tag == t.TtlChrgsAndTaxAmt:
            if total is not None:
                return None
            total = child
        elif tag == t.Amt:
            if amount is not None:
                return None
            amount = child
        elif tag == t.Rcrd:
            if record is not None:
                return None
            record = child
    record_amt = flag = None
    if record is not None:
        record_amt = next(record.iterchildren(t.Amt), None)
        flag = next(record.iterchildren(t.ChrgInclInd), None)
    return total, amount, record_amt, flag


_tostring = etree.tostring
# A serialised element's pieces: a start tag (name, attributes, "/" if empty), an end tag, text.
_TOKEN = re.compile(r'<(/?)([^\s/>]+)((?:\s[^\s=]+="[^"]*")*)(/?)>|([^<]+)')
_ATTRIBUTE = re.compile(r'\s([^\s=]+)="([^"]*)"')
_READ_TEXT = "([^<&]*)"  # a text read: none with an escaped character (&amp;, &#13;, …)


class _Shape:
    """One serialised shape: its expression, and how its groups are handed on as the
    :class:`DetailTexts` fields, in their order (``pass_on(groups, make, tx, context)`` calls
    ``make(tx, context, *texts)``: no tuple of the texts is made).

    ``inner`` is the same expression for the detail as its parent's serialisation writes it:
    without the namespace declarations ``etree.tostring`` copies onto a detail serialised
    alone, so only for a parent whose namespaces in scope (``nsmap``) are ``scope``, those of
    the detail learnt."""

    __slots__ = ("expression", "inner", "pass_on", "scope")

    def __init__(
        self,
        expression: re.Pattern[str],
        inner: re.Pattern[str],
        scope: dict[str | None, str],
        pass_on: Callable[..., Any],
    ):
        self.expression, self.inner, self.scope, self.pass_on = expression, inner, scope, pass_on


UNKNOWN = object()  # DetailShapes.read: the detail is of no shape learnt


class DetailShapes:
    """The shapes of details walked in one file, most recently matched first (a few: a file's
    details are written from one template, an optional element or two apart).

    Serialising costs lxml as much for one detail as for a dozen, so the details of a batch
    are read ahead: at a detail that is its parent's first child, the parent is serialised once
    and each complete detail from there on (one with a next sibling: the parser has read past
    its end) is matched in turn where the last ended, until one matches no shape. Their texts
    are kept (a few dozen: what the parser has read ahead) and handed on at each detail's own
    end, so it is read in its turn as if serialised alone."""

    LIMIT = 8

    def __init__(self) -> None:
        self.shapes: list[_Shape] = []
        self.ahead: deque[tuple[Element, _Shape, tuple[str | None, ...]]] = deque()

    def read(self, tx: Element, make: Callable[..., Any], context: Any) -> Any:
        """``make(tx, context, *texts)`` with the :class:`DetailTexts` fields of a detail of a known
        shape, from its serialisation; else ``UNKNOWN``."""
        ahead = self.ahead
        if ahead:
            node, shape, groups = ahead.popleft()
            if node is tx:
                return shape.pass_on(groups, make, tx, context)
            ahead.clear()  # read otherwise than in its turn: what was read ahead is dropped
        shapes = self.shapes
        if not shapes:
            return UNKNOWN
        if tx.getprevious() is None and tx.getnext() is not None and self._read_ahead(tx):
            node, shape, groups = ahead.popleft()
            return shape.pass_on(groups, make, tx, context)
        text = _tostring(tx, encoding=str, with_tail=False)
        found = shapes[0].expression.fullmatch(text)
        if found is not None:
            return shapes[0].pass_on(found.groups(), make, tx, context)
        for index, shape in enumerate(shapes[1:], 1):
            found = shape.expression.fullmatch(text)
            if found is not None:
                shapes.insert(0, shapes.pop(index))
                return shape.pass_on(found.groups(), make, tx, context)
        return UNKNOWN

    def _read_ahead(self, tx: Element) -> bool:
        """Match ``tx`` and the complete details after it in their parent's serialisation
        (``tx`` is its first child); whether ``tx`` matched."""
        parent = tx.getparent()
        scope = None if parent is None else parent.nsmap
        shapes = [shape for shape in self.shapes if shape.scope == scope]
        if not shapes:
            return False
        text = _tostring(parent, encoding=str, with_tail=False)  # type: ignore[arg-type]
        # The parent's start tag ends at its first ">" (one in an attribute's value is written
        # &gt;); a text before the first child is matched by no shape.
        at = text.find(">") + 1
        ahead, node, tag = self.ahead, tx, tx.tag
        while (after := node.getnext()) is not None:
            for shape in shapes:
                found = shape.inner.match(text, at)
                if found is not None:
                    break
            else:
                break
            ahead.append((node, shape, found.groups()))
            at = found.end()
            if after.tag != tag:
                break
            node = after
        return bool(ahead)

    def learn(self, tx: Element, elements: DetailElements) -> None:
        """Remember the shape of ``tx``, walked into ``elements`` (if there is room, and if each
        element read is a leaf)."""
        if len(self.shapes) >= self.LIMIT:
            return
        shape = _shape_of(tx, elements)
        if shape is not None:
            self.shapes.insert(0, shape)


def _shape_of(tx: Element, elements: DetailElements) -> _Shape | None:
    read = {id(e): e for e in elements.read()}
    if any(len(e) for e in read.values()):
        return None  # a text before a child: not the whole content
    nodes = iter(tx.iter(etree.Element))
    groups: dict[int, tuple[int, int | None]] = {}  # id(element) -> text group, Ccy group
    parts: list[str] = []
    inner_top = ""
    count = 0
    open_read: str | None = None  # the name of a read leaf whose end tag is still to come
    for end, name, attributes, empty, _ in _TOKEN.findall(
        etree.tostring(tx, encoding=str, with_tail=False)
    ):
        if not name:  # a text: a read leaf's in its group, any other where the shape has one
            if open_read is None:
                parts.append("[^<]*")
            continue
        if end:
            if open_read is not None:
                if open_read != name:
                    return None
                open_read = None
            else:
                parts.append(f"</{re.escape(name)}>")
            continue
        node = next(nodes, None)
        if node is None or etree.QName(node).localname != name.rpartition(":")[2]:
            return None  # the serialisation is not the tree as walked
        pattern, ccy, declared = [f"<{re.escape(name)}"], None, []
        for attribute, value in _ATTRIBUTE.findall(attributes):
            if id(node) in read and attribute == "Ccy":
                count += 1
                ccy = count
                pattern.append(' Ccy="([^"&<]*)"')
            elif attribute.startswith("xmlns"):  # a namespace: as in the shape learnt
                declared.append(len(pattern))
                pattern.append(re.escape(f' {attribute}="{value}"'))
            else:
                pattern.append(f' {re.escape(attribute)}="[^"]*"')
        if not parts:  # the detail's start tag; inside its parent, without the namespaces
            kept = [part for at, part in enumerate(pattern) if at not in declared]
            inner_top = "".join(kept) + ("/>" if empty else ">")
        if id(node) in read:
            count += 1
            groups[id(node)] = (count, ccy)
            end_tag = f"</{re.escape(name)}>"
            if empty:
                parts.append("".join(pattern) + f"(?:/>|>{_READ_TEXT}{end_tag})")
            else:
                parts.append("".join(pattern) + f">{_READ_TEXT}{end_tag}")
                open_read = name
            continue
        parts.append("".join(pattern) + ("/>" if empty else ">"))
    if open_read is not None or next(nodes, None) is not None:
        return None
    return _Shape(
        re.compile("".join(parts)),
        re.compile(inner_top + "".join(parts[1:])),
        dict(tx.nsmap),
        _passer(elements, groups),
    )


def _passer(
    elements: DetailElements, groups: dict[int, tuple[int, int | None]]
) -> Callable[..., Any]:
    """How a match's groups (1-based, as ``groups``) are handed on as the detail's texts: one
    call, made once per shape, of group indices only (the file's tags are never written in)."""

    def text(element: Element | None) -> str:
        return "None" if element is None else f"g[{groups[id(element)][0] - 1}]"

    def amount(element: Element | None) -> str:
        if element is None:
            return "None, None"
        at, ccy = groups[id(element)]
        return f"g[{at - 1}], {'None' if ccy is None else f'g[{ccy - 1}]'}"

    def pair(element: Element | None) -> str:
        return "None" if element is None else f"({amount(element)})"

    charges = "None"
    if elements.charges is not None:
        total, other, record, flag = elements.charges
        charges = f"({pair(total)}, {pair(other)}, {pair(record)}, {text(flag)})"
    refs = "".join(f"{text(e)}, " for e in elements.refs)
    remittance = "None"
    if elements.remittance is not None:
        remittance = "(" + "".join(f"{text(e)}, " for e in elements.remittance) + ")"
    gross = elements.gross is not None
    source = (
        f"lambda g, make, tx, context: make(tx, context, {amount(elements.amount)},"
        f" {text(elements.direction)}, {gross}, {amount(elements.gross)}, {charges}, {refs}"
        f"{remittance}, {text(elements.creditor)})"
    )
    made: Callable[..., Any] = eval(source, {})  # noqa: S307
    return made
