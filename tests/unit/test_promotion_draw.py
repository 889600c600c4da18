"""The lucky draw: the HMAC roll against an independent replay, range boundaries, caps, budget,
rejection sampling, the prize frequencies over many draws, and refused tables and seeds."""

from __future__ import annotations

import hmac
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from gateway.domain.promotions import draw as draw_module
from gateway.domain.promotions.draw import (
    DrawTable,
    Prize,
    PrizeStock,
    draw,
    new_seed,
    roll,
)
from gateway.errors import InvalidInput

SEED = "00112233445566778899aabbccddeeff"


def replay_by_hand(seed: str, draw_key: str) -> int:
    """The module docstring's recipe, written again from scratch as an auditor would."""
    key = bytes.fromhex(seed)
    digest = hmac.digest(key, draw_key.encode("utf-8"), "sha256")
    limit = (2**64 // 1_000_000) * 1_000_000
    while True:
        for word in struct.unpack(">4Q", digest):
            if word < limit:
                return word % 1_000_000
        digest = hmac.digest(key, digest, "sha256")


def coffee(p: int = 50_000, **kw: int | None) -> Prize:
    return Prize("coffee", "Free coffee", p, **kw)  # type: ignore[arg-type]


# --- the roll ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("seed", "draw_key", "expected"),
    [
        # Pinned when the recipe was written; replay_by_hand recomputes them independently.
        ("00112233445566778899aabbccddeeff", "sale-1", 707913),
        ("000102030405060708090a0b0c0d0e0f", "sale-2", 398229),
        ("ffffffffffffffffffffffffffffffff", "Kaffee ☕ 42", 737452),
    ],
)
def test_roll_known_answers(seed: str, draw_key: str, expected: int) -> None:
    assert replay_by_hand(seed, draw_key) == expected
    assert roll(seed, draw_key) == expected


def test_roll_matches_the_recipe_for_many_keys() -> None:
    seed = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"
    for i in range(500):
        assert roll(seed, f"sale-{i}") == replay_by_hand(seed, f"sale-{i}")


def test_uppercase_seed_is_the_same_key() -> None:
    assert roll(SEED.upper(), "sale-1") == roll(SEED, "sale-1")


@given(st.text(min_size=1), st.binary(min_size=16, max_size=16))
def test_roll_is_always_in_range_and_replayable(draw_key: str, key: bytes) -> None:
    r = roll(key.hex(), draw_key)
    assert 0 <= r < 1_000_000
    assert r == roll(key.hex(), draw_key) == replay_by_hand(key.hex(), draw_key)


def test_new_seed_is_32_lowercase_hex_and_fresh() -> None:
    seeds = {new_seed() for _ in range(100)}
    assert len(seeds) == 100
    for seed in seeds:
        assert len(seed) == 32 and seed == seed.lower() and bytes.fromhex(seed)
        roll(seed, "usable")


@pytest.mark.parametrize(
    "seed",
    ["", "abc", SEED[:-1], SEED + "0", "g" * 32, " " + SEED[:-1], SEED[:16] + " " + SEED[17:]],
)
def test_bad_seeds_are_refused(seed: str) -> None:
    with pytest.raises(InvalidInput, match="32 hexadecimal"):
        roll(seed, "sale-1")


def test_empty_draw_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="draw key"):
        roll(SEED, "")


# --- rejection sampling ---------------------------------------------------------------------


def test_accept_limit_is_the_largest_multiple_of_a_million_below_2_64() -> None:
    limit = draw_module._ACCEPT_BELOW
    assert limit % 1_000_000 == 0
    assert limit <= 2**64 < limit + 1_000_000
    assert limit == 18_446_744_073_709_000_000


def test_rejected_words_are_skipped() -> None:
    limit = draw_module._ACCEPT_BELOW
    assert draw_module._roll_from_words([limit - 1]) == 999_999
    assert draw_module._roll_from_words([2**64 - 1, limit, 1_234_567]) == 234_567
    assert draw_module._roll_from_words([limit, limit + 5, 2**64 - 1]) is None
    assert draw_module._roll_from_words([]) is None


def test_words_are_big_endian_eight_byte_chunks() -> None:
    digest = bytes(range(32))
    assert draw_module._words(digest) == list(struct.unpack(">4Q", digest))


def test_all_words_rejected_continues_with_the_chained_digest(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_words = draw_module._words
    calls: list[bytes] = []

    def first_digest_all_rejected(digest: bytes) -> list[int]:
        calls.append(digest)
        return [2**64 - 1] * 4 if len(calls) == 1 else real_words(digest)

    monkeypatch.setattr(draw_module, "_words", first_digest_all_rejected)
    key = bytes.fromhex(SEED)
    first = hmac.digest(key, b"sale-1", "sha256")
    second = hmac.digest(key, first, "sha256")
    expected = next(w for w in struct.unpack(">4Q", second) if w < draw_module._ACCEPT_BELOW)
    assert roll(SEED, "sale-1") == expected % 1_000_000
    assert calls == [first, second]


# --- ranges, caps and budget ----------------------------------------------------------------


def test_roll_at_the_last_number_of_a_range_wins_that_prize() -> None:
    r = roll(SEED, "sale-1")  # 707913
    table = DrawTable((coffee(r + 1), Prize("muffin", "Muffin", 1000)))
    result = draw(table, SEED, "sale-1")
    assert (result.outcome, result.prize) == ("won", table.prizes[0])
    assert result.explanation == f"roll {r} fell in 'Free coffee' (0–{r}); won"


def test_roll_at_the_first_number_of_the_next_range_wins_the_next_prize() -> None:
    r = roll(SEED, "sale-1")
    table = DrawTable((coffee(r), Prize("muffin", "Muffin", 1)))
    result = draw(table, SEED, "sale-1")
    assert (result.outcome, result.prize) == ("won", table.prizes[1])
    assert result.explanation == f"roll {r} fell in 'Muffin' ({r}–{r}); won"


def test_roll_just_past_every_prize_is_no_prize() -> None:
    r = roll(SEED, "sale-1")
    result = draw(DrawTable((coffee(r),)), SEED, "sale-1")
    assert (result.outcome, result.prize, result.roll) == ("no_prize", None, r)
    assert result.explanation == f"roll {r} fell outside every prize (prizes cover 0–{r - 1})"


def test_empty_table_never_gives_a_prize() -> None:
    result = draw(DrawTable(()), SEED, "sale-1")
    assert result.outcome == "no_prize"
    assert "no prizes" in result.explanation


CERTAIN = 1_000_000  # a prize that every roll lands on


def test_daily_cap_reached_gives_capped_and_no_prize() -> None:
    table = DrawTable((coffee(CERTAIN, daily_cap=20),))
    assert draw(table, SEED, "k", PrizeStock(won_today={"coffee": 19})).outcome == "won"
    result = draw(table, SEED, "k", PrizeStock(won_today={"coffee": 20}))
    assert (result.outcome, result.prize) == ("capped", None)
    assert result.explanation.endswith("but today's cap of 20 is reached: no prize")
    assert "'Free coffee' (0–999999)" in result.explanation


def test_a_cap_of_zero_never_lets_the_prize_be_won() -> None:
    table = DrawTable((coffee(CERTAIN, daily_cap=0),))
    assert draw(table, SEED, "k").outcome == "capped"


def test_prize_worth_more_than_the_budget_left_gives_budget() -> None:
    table = DrawTable((coffee(CERTAIN, value_minor=300),), budget_minor=1000)
    assert draw(table, SEED, "k", PrizeStock(budget_used_minor=700)).outcome == "won"
    result = draw(table, SEED, "k", PrizeStock(budget_used_minor=701))
    assert (result.outcome, result.prize) == ("budget", None)
    assert "300 minor units is more than the 299 left in the budget: no prize" in (
        result.explanation
    )


def test_overspent_budget_counts_as_nothing_left() -> None:
    table = DrawTable((coffee(CERTAIN, value_minor=1),), budget_minor=10)
    result = draw(table, SEED, "k", PrizeStock(budget_used_minor=50))
    assert result.outcome == "budget"
    assert "the 0 left" in result.explanation


def test_free_prize_and_no_budget_are_never_limited() -> None:
    used = PrizeStock(budget_used_minor=10**9)
    assert draw(DrawTable((coffee(CERTAIN),), budget_minor=0), SEED, "k", used).outcome == "won"
    assert draw(DrawTable((coffee(CERTAIN, value_minor=10**6),)), SEED, "k", used).outcome == "won"


def test_cap_is_checked_before_budget() -> None:
    table = DrawTable((coffee(CERTAIN, value_minor=500, daily_cap=1),), budget_minor=100)
    assert draw(table, SEED, "k", PrizeStock(won_today={"coffee": 1})).outcome == "capped"


def test_capped_prize_does_not_hand_its_odds_to_the_others() -> None:
    table = DrawTable((coffee(500_000, daily_cap=0), Prize("muffin", "Muffin", 500_000)))
    outcomes = [draw(table, SEED, f"sale-{i}").outcome for i in range(400)]
    assert 150 < outcomes.count("capped") < 250
    assert outcomes.count("capped") + outcomes.count("won") == 400


def test_same_inputs_replay_the_same_result() -> None:
    table = DrawTable((coffee(), Prize("muffin", "Muffin", 100_000, value_minor=250)), 10_000)
    stock = PrizeStock(budget_used_minor=100, won_today={"coffee": 3})
    first = [draw(table, SEED, f"sale-{i}", stock) for i in range(200)]
    again = [draw(table, SEED, f"sale-{i}", stock) for i in range(200)]
    assert first == again


def test_stock_changes_the_outcome_but_never_the_roll() -> None:
    table = DrawTable((coffee(CERTAIN, daily_cap=1),))
    fresh = draw(table, SEED, "k")
    capped = draw(table, SEED, "k", PrizeStock(won_today={"coffee": 1}))
    assert fresh.roll == capped.roll
    assert (fresh.outcome, capped.outcome) == ("won", "capped")


def test_default_stock_is_empty_and_read_only() -> None:
    stock = PrizeStock()
    assert stock.budget_used_minor == 0 and dict(stock.won_today) == {}
    with pytest.raises(TypeError):
        stock.won_today["coffee"] = 1  # type: ignore[index]


# --- frequencies ----------------------------------------------------------------------------


def test_prize_frequencies_match_their_probabilities_over_20000_draws() -> None:
    table = DrawTable(
        (
            Prize("coffee", "Free coffee", 50_000),
            Prize("muffin", "Muffin", 100_000),
            Prize("voucher", "5 EUR voucher", 250_000),
        )
    )
    n = 20_000
    counts = {"coffee": 0, "muffin": 0, "voucher": 0, None: 0}
    for i in range(n):
        result = draw(table, SEED, f"sale-{i}")
        counts[result.prize.id if result.prize else None] += 1
    expected_p = {"coffee": 0.05, "muffin": 0.10, "voucher": 0.25, None: 0.60}
    for prize_id, p in expected_p.items():
        sigma = (p * (1 - p) / n) ** 0.5
        assert abs(counts[prize_id] / n - p) < 5 * sigma, (prize_id, counts[prize_id])
    observed = [counts[k] for k in expected_p]
    chi2 = stats.chisquare(observed, [p * n for p in expected_p.values()])
    assert chi2.pvalue > 0.001, (observed, chi2)


# --- refused tables -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prizes", "budget", "message"),
    [
        ((coffee(), coffee()), None, "unique"),
        ((coffee(0),), None, "1..1000000"),
        ((coffee(-5),), None, "1..1000000"),
        ((coffee(1_000_001),), None, "1..1000000"),
        ((coffee(True),), None, "1..1000000"),  # type: ignore[arg-type]
        ((coffee(600_000), Prize("m", "Muffin", 400_001)), None, "add up to 1000001"),
        ((coffee(value_minor=-1),), None, "value"),
        ((coffee(daily_cap=-1),), None, "daily cap"),
        ((coffee(),), -1, "budget"),
    ],
)
def test_bad_tables_are_refused(
    prizes: tuple[Prize, ...], budget: int | None, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        DrawTable(prizes, budget_minor=budget)


def test_probabilities_may_add_up_to_exactly_one_million() -> None:
    table = DrawTable((coffee(600_000), Prize("m", "Muffin", 400_000)))
    assert table.ranges()[-1][1:] == (600_000, 999_999)
