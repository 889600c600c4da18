"""A settlement file copied with its card numbers masked, in pieces of any size: the same bytes
as masking it whole (no card number is split between two pieces and missed)."""

from __future__ import annotations

import io

from hypothesis import given
from hypothesis import strategies as st

from gateway.adapters.card_scan import scan_folder_file
from gateway.adapters.settlement_files import scrub_copy
from gateway.domain.card_data import scrub_bytes

LINES = [
    b"<Ustrd>card 4111 1111 1111 1111 paid</Ustrd>\n",
    b"<Ustrd>Karte 5500.0000.0000.0004</Ustrd><IBAN>DE89370400440532013000</IBAN>\n",
    b"<TxId>4111111111111111</TxId><Amt>12.50</Amt><Dt>2026-11-25</Dt>\n",
    "<Nm>Müller 4111_1111_1111_1111 für</Nm>\n".encode(),
    b"20261125000123456789012 4222222222222;",
]


@given(
    lines=st.lists(st.sampled_from(LINES), min_size=1, max_size=12),
    chunk=st.integers(1, 64),
)
def test_a_copy_in_pieces_is_masked_as_the_whole(lines: list[bytes], chunk: int) -> None:
    data = b"".join(lines)
    out = io.BytesIO()
    scrub_copy(io.BytesIO(data), out, chunk_size=chunk)
    assert out.getvalue() == scrub_bytes(data)
    assert b"4111 1111 1111 1111" not in out.getvalue()
    assert b"DE89370400440532013000" in out.getvalue() or b"DE89" not in data


def test_a_file_is_scanned_across_its_pieces(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "f"
    path.write_bytes(b"x" * 10 + b"<a>card 4111 1111 1111 1111</a>" * 3)
    hits = list(scan_folder_file(path))
    assert [hit.row for hit in hits] == ["byte 18", "byte 49", "byte 80"]
    assert all("4111 11** **** 1111" in hit.sample for hit in hits)


WORDS = [
    b"4111111111111111",
    b"4111 1111 1111 1111",
    b"5500.0000.0000.0004",
    b"DE89370400440532013000",
    b"DE89 3704 0044 0532 0130 00",
    b"RF18539007547034",
    b"00000000-0000-0000-0000-000000000001",
    b"1234567890123",
    b"A4111111111111111",
    b"4111111111111111x",
    b"20261125000123456789012",
    b"2026-11-25",
    "Müller".encode(),
    b"\xe44111111111111111",
    b"-",
    b".",
    b" ",
    b"_",
    b"x",
    b"7",
    b"4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1",
    b"4-1.1_1 1 1 1 1 1 1 1 1 1 1 1 1",
    b"4111  1111 1111 1111",
    b"4111 .1111 1111 1111",
    b"411111111111 1111   4111111111111111",
    b"00000000000",
    b"              ",
]
GAPS = [b"", b"<", b">", b"\n", b";", b"/", b"\t", b" "]


@given(st.lists(st.tuples(st.sampled_from(WORDS), st.sampled_from(GAPS)), max_size=16))
def test_masking_word_by_word_is_masking_the_whole(pieces: list[tuple[bytes, bytes]]) -> None:
    from gateway.adapters.settlement_files import _scrub_words

    data = b"".join(word + gap for word, gap in pieces)
    assert _scrub_words(data) == scrub_bytes(data)


@given(st.binary(max_size=200) | st.lists(st.sampled_from(b"0123456789 ._-x<\n\xe4")).map(bytes))
def test_masking_any_bytes_word_by_word_is_masking_the_whole(data: bytes) -> None:
    """Any bytes, digits and separators mostly: the stretches looked at first miss no run."""
    from gateway.adapters.settlement_files import _scrub_words

    assert _scrub_words(data) == scrub_bytes(data)


def test_a_copy_masks_a_card_number_the_stretches_find(tmp_path: object) -> None:
    """Card numbers whose digits stand alone, beside indentation and long references."""
    data = (
        b"<a>\n" + b" " * 16 + b"<b>4 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1</b>\n"
        b"<c>20261125000123456789012</c><d>K00000000000 5500-0000-0000-0004</d>\n"
    )
    out = io.BytesIO()
    scrub_copy(io.BytesIO(data), out)
    assert b"4 1 1 1 1 1 * * * * * * 1 1 1 1" in out.getvalue()
    assert b"5500-00**-****-0004" in out.getvalue()
    assert b"20261125000123456789012" in out.getvalue()
    assert out.getvalue() == scrub_bytes(data)


@given(st.text(alphabet="0123456789 ._-x\n", max_size=60))
def test_the_quick_look_for_a_run_answers_as_the_domain_rule(text: str) -> None:
    from gateway.adapters.settlement_files import find_digit_run
    from gateway.domain.card_data import may_hold_card_number

    assert (find_digit_run(text) is not None) == may_hold_card_number(text)
