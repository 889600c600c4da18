"""End-of-Day totals (BMP 60, PA00P015 13.08 §2.16 and chapter 13) and the driver reading them.

[EVEREST] github.com/EVerest/zvt at 05e973cfe97298f314d559dfdba4f2f8db097180 (Apache-2.0),
``zvt/data/1680761828.489701000_pt_ecr.blob``: the Status-Information a terminal in the field
sent after End-of-Day, decoded by that project's ``zvt/src/packets.rs`` test_status_information
as amount 958, trace 982, 04-06 08:17:06, receipts 233 to 234, Eurocard 2 payments 9.58.
``zvt/data/1681282621.302434000_ecr_pt.blob`` is the End-of-Day command with password 123456.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError
from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt import messages
from drivers.zvt.apdu import decode_apdu, decode_bmps, encode_apdu
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


# [EVEREST] 1680761828.489701000_pt_ecr.blob: 04 0F, BMP 27 00, BMP 04 9.58, BMP 0B 982,
# BMP 0D 04-06, BMP 0C 08:17:06, then BMP 60 as LLLVAR (F0 F5 F3: 53 bytes).
END_OF_DAY_STATUS = bytes.fromhex(
    "040f4d" "2700" "04000000000958" "0b000982" "0d0406" "0c081706"
    "60f0f5f3" "02330234"
    "00000000000000" "00000000000000"
    "02000000000958"
    "00000000000000" "00000000000000" "00000000000000" "00000000000000"
)  # fmt: skip


def test_a_terminals_end_of_day_status_information_from_the_field() -> None:
    apdu = decode_apdu(END_OF_DAY_STATUS)
    assert (apdu.cls, apdu.instr) == (0x04, 0x0F)
    fields = decode_bmps(apdu.data)
    assert (fields["result_code"], fields["amount_minor"], fields["trace_number"]) == (0, 958, 982)
    assert (fields["date"], fields["time"]) == ("04-06", "08:17:06")
    assert "undecoded" not in fields
    totals = batch_totals(fields)
    assert (totals.receipt_from, totals.receipt_to) == (233, 234)
    assert totals.by_card_type == (CardTypeTotal("Eurocard", 2, 958),)
    assert (totals.total_minor, totals.count, totals.saturated) == (958, 2, False)


def test_the_end_of_day_command_as_a_terminal_in_the_field_took_it() -> None:
    assert encode_apdu(messages.end_of_day("123456")) == bytes.fromhex("065003123456")  # [EVEREST]


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
