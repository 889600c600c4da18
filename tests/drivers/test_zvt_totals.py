"""End-of-Day totals (BMP 60, PA00P015 13.08 §2.16 and chapter 13) and the driver reading them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError
from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.totals import (
    CARD_TYPES,
    CardTypeTotal,
    batch_totals,
    decode_individual_totals,
    encode_individual_totals,
)
from tests.drivers.test_zvt_terminal import connect

# Receipts 0001 to 0003; girocard 2 payments 12.50, VISA 1 payment 9.99; the other types 0.
VECTOR = bytes.fromhex(
    "0001 0003"
    "02 000000001250"
    "00 000000000000" "00 000000000000" "00 000000000000"
    "01 000000000999"
    "00 000000000000" "00 000000000000"
)  # fmt: skip


def test_individual_totals_from_the_manuals_layout() -> None:
    first, last, by_type = decode_individual_totals(VECTOR)
    assert (first, last) == (1, 3)
    assert by_type == (CardTypeTotal("girocard", 2, 1250), CardTypeTotal("VISA", 1, 999))
    totals = batch_totals({"amount_minor": 2249, "individual_totals": VECTOR.hex().upper()})
    assert (totals.total_minor, totals.count, totals.saturated) == (2249, 3, False)


def test_without_individual_totals_only_the_total_is_known() -> None:
    totals = batch_totals({"amount_minor": 500})
    assert (totals.total_minor, totals.count, totals.by_card_type) == (500, None, ())


def test_cut_off_totals_are_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="needs 53 bytes"):
        decode_individual_totals(VECTOR[:20])


@given(
    st.dictionaries(
        st.sampled_from(CARD_TYPES),
        st.tuples(st.integers(0, 255), st.integers(0, 999_999_999_999)),
    ),
    st.integers(0, 9999),
    st.integers(0, 9999),
)
def test_encode_and_decode_agree(counts: dict[str, tuple[int, int]], first: int, last: int) -> None:
    decoded = decode_individual_totals(encode_individual_totals(first, last, counts))
    expected = tuple(
        CardTypeTotal(name, *counts[name])
        for name in CARD_TYPES
        if name in counts and any(counts[name])
    )
    assert decoded == (first, last, expected)


@pytest.fixture
def sim() -> Iterator[ZvtSimulator]:
    simulator = ZvtSimulator(115200)
    simulator.card_delay = simulator.pin_delay = simulator.online_delay = 0.02
    with simulator:
        yield simulator


def test_end_of_day_reports_the_open_batch_and_closes_it(sim: ZvtSimulator) -> None:
    terminal = connect(sim)
    for amount in (1000, 250, 700):
        assert terminal.charge(amount).approved
    assert terminal.reverse(3).approved  # reversed in the open batch: not in it any more
    result = terminal.end_of_day()
    assert result.approved and result.totals is not None
    assert (result.totals.total_minor, result.totals.count) == (1250, 2)
    assert result.totals.by_card_type == (CardTypeTotal("girocard", 2, 1250),)
    assert "Kassenschnitt erfolgreich" in result.receipt_text
    again = terminal.end_of_day()
    assert again.totals is not None and (again.totals.total_minor, again.totals.count) == (0, 0)
    assert not terminal.reverse(1).approved  # after the close, only a refund gives money back
