"""A 20 000-transaction camt.053 streams through the parser in bounded memory.

Not a unit test: it writes a 2.5 MB file and parses it under tracemalloc, which takes seconds
(a minute on a loaded machine).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.adapters.settlement_files.camt import parse_camt
from tests.unit.test_camt_parser import NS53

pytestmark = pytest.mark.slow


def big_statement(count: int) -> Iterator[bytes]:
    """A camt.053 with one batch entry of ``count`` TxDtls of 1.00 EUR each."""
    yield (
        f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS53}"><BkToCstmrStmt>'
        "<GrpHdr><MsgId>BIG</MsgId><CreDtTm>2026-11-25T00:00:00Z</CreDtTm></GrpHdr><Stmt>"
        "<Id>BIG-1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct><Ntry>"
        f'<Amt Ccy="EUR">{count}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
        f"<BookgDt><Dt>2026-11-25</Dt></BookgDt><AcctSvcrRef>BIG</AcctSvcrRef><NtryDtls>"
        f"<Btch><NbOfTxs>{count}</NbOfTxs></Btch>"
    ).encode()
    for i in range(count):
        yield (
            f"<TxDtls><Refs><AcctSvcrRef>A{i}</AcctSvcrRef><EndToEndId>E{i}</EndToEndId></Refs>"
            f'<Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
            f"<RmtInf><Ustrd>payment number {i} of the day</Ustrd></RmtInf></TxDtls>\n"
        ).encode()
    yield b"</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>\n"


def test_a_large_file_streams_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big.xml"
    with path.open("wb") as f:
        f.writelines(big_statement(20_000))
    assert path.stat().st_size > 2_500_000
    tracemalloc.start()
    try:
        count = total = 0
        with path.open("rb") as f:
            for line in parse_camt(f):
                count += 1
                total += line.amount_minor
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (count, total) == (20_000, 2_000_000)
    assert peak < 5_000_000, f"peak {peak / 1e6:.1f} MB"
