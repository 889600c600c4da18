"""The camt reader's quick path for details of the usual shape gives what the general one gives.

``_Reader.plain`` reads a ``TxDtls`` of the usual shape in one pass over its children and hands
every other one to the general reading (``_transaction``). Both readings are run here over every
camt fixture, over a statement as the sandbox bank writes it, and over copies of each with one
detail edited in every way listed below (an element removed or doubled, each amount, currency,
direction and reference spelled otherwise): the lines, the warnings, the statements and the
error, if any, must be the same.
"""

from __future__ import annotations

import copy
import io
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree

from gateway.adapters.settlement_files import InvalidSettlementFile, camt, camt_details
from gateway.adapters.settlement_files.camt import _Reader, parse_camt
from gateway.adapters.settlement_files.findings import FileReport

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "settlement"
AMOUNTS = ["", " 12.30 ", "12.3", "12.", ".5", "01.00", "1.005", "1.000", "-1.00", "1,00",
           "١٢", "12.300", "abc", "200000", "1.2.3"]  # fmt: skip
CURRENCIES = ["eur", " EUR ", "", "JPY", "BHD", "ABC", None]
DIRECTIONS = ["DBIT", "CRDT", "", " CRDT ", "X"]
TEXTS = ["4111 1111 1111 1111", "  ", "x" * 70, "ref 1", "R&D <1>", "a\rb"]


def outcome(data: bytes, plain: bool) -> tuple[Any, ...]:
    report = FileReport()
    _Reader.plain = plain
    try:
        lines = list(parse_camt(io.BytesIO(data), report=report))
    except InvalidSettlementFile as exc:
        return ("refused", str(exc), report.warnings, report.statements)
    finally:
        _Reader.plain = True
    return (lines, report.warnings, report.statements, report.counts)


def sandbox_statement(details: int = 3) -> bytes:
    from sandbox_bank.camt import camt053
    from sandbox_bank.settlement import SettlementBatch, SettlementLine

    day = date(2026, 11, 25)
    lines = tuple(
        SettlementLine("payment", f"K{i:011d}", f"pay_{i}", None, None, day, 1_000 + i, 15,
                       "EUR", f"card 4111111111111111 payment {i}" if i == 1 else f"bill {i}")
        for i in range(details)
    )  # fmt: skip
    created = datetime(2026, 11, 25, 12, tzinfo=UTC)
    iban = "DE89370400440532013000"
    batch = SettlementBatch("stl_t", "KASSA-DEMO-0001", "Kassa Demo", iban, day, "EUR", created, 0,
                            lines)  # fmt: skip
    return camt053(batch).encode()


def sources() -> list[tuple[str, bytes]]:
    files = sorted(FIXTURES.glob("*.xml")) + sorted((FIXTURES / "corpus").glob("*.xml"))
    return [(f.name, f.read_bytes()) for f in files] + [("sandbox", sandbox_statement())]


def edits(data: bytes, only: str = "", which: int = 0) -> Iterator[tuple[str, bytes]]:
    """Copies of ``data`` with its first detail (``which=-1``: its last) edited in one way each
    (``only``: the edits of elements whose path holds it). The last one is read after the
    others taught the reader their shape (``DetailShapes``): its edits test the shape's match."""
    tree = etree.parse(io.BytesIO(data), etree.XMLParser(resolve_entities=False, no_network=True))
    details = tree.xpath("//*[local-name()='TxDtls']")
    if not details or (which and len(details) == 1):
        return
    ns = tree.getroot().nsmap.get(None, "")

    def variant(name: str, change: Any) -> tuple[str, bytes]:
        copied = copy.deepcopy(tree)
        tx = copied.xpath("//*[local-name()='TxDtls']")[which]
        change(tx)
        return name, etree.tostring(copied, xml_declaration=True, encoding="UTF-8")

    first = details[which]
    for element in first.iter():
        if not isinstance(element.tag, str) or element is first:
            continue
        path = []
        node = element
        while node is not first:
            path.insert(0, node.getparent().index(node))
            node = node.getparent()
        tags = [etree.QName(e).localname for e in element.iterancestors()][::-1]
        where, tag = (
            "/".join([*tags, etree.QName(element).localname]),
            etree.QName(element).localname,
        )
        if only not in where:
            continue
        find = _at(path)
        yield variant(f"{where} removed", lambda tx, f=find: f(tx).getparent().remove(f(tx)))
        yield variant(f"{where} doubled", lambda tx, f=find: f(tx).addnext(copy.deepcopy(f(tx))))
        other = "9.99" if tag.endswith("Amt") else "DBIT" if tag == "CdtDbtInd" else "other"
        yield variant(f"{where} doubled as {other}", lambda tx, f=find, v=other: _twin(f(tx), v))
        if tag.endswith("Amt"):
            for text in AMOUNTS:
                yield variant(f"{where} = {text!r}", lambda tx, f=find, v=text: _set(f(tx), v))
            for code in CURRENCIES:
                yield variant(f"{where} Ccy {code!r}", lambda tx, f=find, c=code: _ccy(f(tx), c))
        elif tag in ("CdtDbtInd", "ChrgInclInd"):
            for text in [*DIRECTIONS, "true", "false"]:
                yield variant(f"{where} = {text!r}", lambda tx, f=find, v=text: _set(f(tx), v))
        elif len(element) == 0:
            for text in TEXTS:
                yield variant(f"{where} = {text!r}", lambda tx, f=find, v=text: _set(f(tx), v))
    if only:
        return
    structured = etree.fromstring(
        f"<RmtInf xmlns='{ns}'><Strd><CdtrRefInf><Ref>RF18539007547034</Ref></CdtrRefInf>"
        "</Strd><Ustrd> a </Ustrd><Ustrd/></RmtInf>"
    )
    yield variant("RmtInf with Strd appended", lambda tx: tx.append(copy.deepcopy(structured)))
    yield variant("emptied", lambda tx: tx.clear())
    totals = first.xpath("*[local-name()='Chrgs']/*[local-name()='TtlChrgsAndTaxAmt']")
    if totals:  # the charges then add up from their records: their edits again
        for total in totals:
            total.getparent().remove(total)
        untotalled = etree.tostring(tree, xml_declaration=True, encoding="UTF-8")
        for name, edited in edits(untotalled, only="TxDtls/Chrgs/", which=which):
            yield f"without TtlChrgsAndTaxAmt, {name}", edited


def _at(path: list[int]) -> Any:
    def find(tx: Any) -> Any:
        for index in path:
            tx = tx[index]
        return tx

    return find


def card_numbers(data: bytes) -> Iterator[tuple[str, bytes]]:
    """Copies with a card number in a text every line of an entry or statement takes."""
    for tag in (b"Id", b"AcctSvcrRef", b"NtryRef", b"IBAN"):
        start = b"<" + tag + b">"
        if start in data:
            marked = data.replace(start, start + b"4111 1111 1111 1111 ", 1)
            yield f"card number in the first {tag.decode()}", marked


def _twin(element: Any, text: str) -> None:
    """A copy of ``element`` after it, each of its texts another."""
    twin = copy.deepcopy(element)
    for leaf in twin.iter():
        if len(leaf) == 0:
            tag = etree.QName(leaf).localname
            leaf.text = "9.99" if tag.endswith("Amt") else "DBIT" if tag == "CdtDbtInd" else text
    element.addnext(twin)


def _set(element: Any, text: str) -> None:
    element.text = text


def _ccy(element: Any, code: str | None) -> None:
    if code is None:
        element.attrib.pop("Ccy", None)
    else:
        element.set("Ccy", code)


CASES = [
    (f"{name}: {what}", data)
    for name, raw in sources()
    for what, data in [
        ("as is", raw),
        *edits(raw),
        *((f"last detail: {name}", edited) for name, edited in edits(raw, which=-1)),
        *card_numbers(raw),
    ]
] + [  # a detail in the middle of a batch, met when the details after it were read ahead
    (f"sandbox, 6 details, the fourth: {name}", edited)
    for name, edited in edits(sandbox_statement(6), which=3)
]


def test_the_cases_are_many_and_varied() -> None:
    assert len(CASES) > 1000
    refused = sum(outcome(data, plain=False)[0] == "refused" for _, data in CASES[::7])
    assert 0 < refused < len(CASES[::7]) / 2


@pytest.mark.parametrize(("name", "data"), CASES, ids=[name for name, _ in CASES])
def test_the_quick_path_reads_as_the_general(name: str, data: bytes) -> None:
    assert outcome(data, plain=True) == outcome(data, plain=False)


def test_the_usual_detail_takes_the_quick_path(monkeypatch: pytest.MonkeyPatch) -> None:
    general: list[object] = []
    read = _Reader._transaction
    monkeypatch.setattr(_Reader, "_transaction", lambda *a: general.append(a) or read(*a))
    lines, *_ = outcome(sandbox_statement(), plain=True)
    assert len(lines) == 3
    assert general == []


def test_details_of_a_shape_met_are_read_from_their_serialisation(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    walked: list[object] = []
    walk = camt.plain_elements
    monkeypatch.setattr(camt, "plain_elements", lambda *a: walked.append(a) or walk(*a))
    lines, *_ = outcome(sandbox_statement(), plain=True)
    assert len(lines) == 3
    assert len(walked) == 1  # the first detail: its shape then reads the others


def test_a_reference_not_read_leaves_the_shape_learnable(monkeypatch: pytest.MonkeyPatch) -> None:
    """``Refs/Prtry`` (.08: a proprietary reference, with children) is no text a line takes: its
    details are still read from their shape, and as the general reading reads them."""
    prtry = b"<Prtry><Tp>BANK</Tp><Ref>R &amp; 1</Ref></Prtry></Refs>"
    data = sandbox_statement().replace(b"</Refs>", prtry)
    assert data.count(b"<Prtry>") == 3
    walked: list[object] = []
    walk = camt.plain_elements
    monkeypatch.setattr(camt, "plain_elements", lambda *a: walked.append(a) or walk(*a))
    assert outcome(data, plain=True) == outcome(data, plain=False)
    assert len(walked) == 1


def test_a_text_where_the_shape_had_none_is_walked_and_read_alike() -> None:
    """A shape takes a text only where the detail it was learnt from had one: a later detail
    with text between its elements (mixed content) is walked, and reads as the general way."""
    data = sandbox_statement()
    last = data.rindex(b"<Refs>")
    data = data[:last] + b"<Refs>note " + data[last + len(b"<Refs>") :]
    assert outcome(data, plain=True) == outcome(data, plain=False)


def test_a_batch_is_serialised_once_for_the_details_read_ahead(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """After the first detail taught its shape, the batch's details are matched in their
    parent's serialisation; only the last, still open to the parser then, is serialised alone."""
    serialised: list[str] = []
    tostring = camt_details._tostring

    def counted(element: Any, **options: Any) -> Any:
        serialised.append(etree.QName(element).localname)
        return tostring(element, **options)

    monkeypatch.setattr(camt_details, "_tostring", counted)
    data = sandbox_statement(6)
    assert outcome(data, plain=True) == outcome(data, plain=False)
    assert serialised == ["NtryDtls", "TxDtls"]


NS = b"urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
NAMESPACED = [
    ("a detail declaring the default namespace again",
     lambda d: d.replace(b"<TxDtls>", b'<TxDtls xmlns="' + NS + b'">', 3)),
    ("a detail declaring another prefix",
     lambda d: d.replace(b"<TxDtls>", b'<TxDtls xmlns:x="urn:x">', 4)),
    ("details declaring another default namespace for their references",
     lambda d: d.replace(b"<Refs>", b'<Refs xmlns="urn:x">')),
    ("a prefixed document", lambda d: _prefixed(d, b"c")),
    ("a prefixed document whose details rebind the prefix",
     lambda d: _prefixed(d, b"c").replace(b"<c:NtryDtls>", b'<c:NtryDtls xmlns:p="urn:x">')),
    ("a second entry whose details' children are in another namespace",
     lambda d: _rebound_entry(d)),
    ("details holding elements the reader follows (Btch, Ntry, TxDtls, Stmt)",
     lambda d: _nested(d)),
]  # fmt: skip


def _nested(data: bytes) -> bytes:
    """The fourth to sixth details each with an element the reader acts on when it ends, inside
    their remittance: read ahead before that element's end is met."""
    nested = [b"<Btch><NbOfTxs>9</NbOfTxs></Btch>", b"<NtryDtls><TxDtls><Amt Ccy='EUR'>1.00</Amt>"
              b"</TxDtls></NtryDtls>", b"<Stmt><Id>x</Id></Stmt>"]  # fmt: skip
    parts = data.split(b"</RmtInf>")
    for at, element in zip((3, 4, 5), nested, strict=True):
        parts[at] = element + parts[at]
    return b"</RmtInf>".join(parts)


def _rebound_entry(data: bytes) -> bytes:
    """Details ``k:TxDtls`` with children ``c:Amt``…, both prefixes bound to camt, and a copy of
    the entry after it whose ``NtryDtls`` binds ``c`` to another namespace: the same text, other
    elements (a shape learnt in the first entry must not read the second's details)."""
    text = _prefixed(data, b"c").replace(b'xmlns:c="', b'xmlns:k="' + NS + b'" xmlns:c="', 1)
    for tag in (b"NtryDtls", b"TxDtls"):
        text = text.replace(b"<c:" + tag + b">", b"<k:" + tag + b">")
        text = text.replace(b"</c:" + tag + b">", b"</k:" + tag + b">")
    start, end = text.index(b"<c:Ntry>"), text.index(b"</c:Ntry>") + len(b"</c:Ntry>")
    other = text[start:end].replace(b"<k:NtryDtls>", b'<k:NtryDtls xmlns:c="urn:x">')
    return text[:end] + other + text[end:]


def _prefixed(data: bytes, prefix: bytes) -> bytes:
    """``data`` with every element under ``prefix``, bound to the camt namespace."""
    text = re.sub(rb"<(/?)([A-Za-z])", rb"<\1" + prefix + rb":\2", data)
    return text.replace(b'xmlns="' + NS + b'"', b"xmlns:" + prefix + b'="' + NS + b'"')


@pytest.mark.parametrize(("name", "change"), NAMESPACED, ids=[n for n, _ in NAMESPACED])
def test_details_read_ahead_read_as_the_general_whatever_their_namespaces(
    name: str, change: Any
) -> None:
    data = change(sandbox_statement(6))
    assert data != sandbox_statement(6)
    assert outcome(data, plain=True) == outcome(data, plain=False)
