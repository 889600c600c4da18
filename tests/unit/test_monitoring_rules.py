"""The anomaly rules as plain values (gateway/domain/monitoring.py): thresholds reached and
not, windows, percentiles and opening hours, with Hypothesis where a property says more."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.config import load_config
from gateway.domain import monitoring as m
from gateway.domain.monitoring import Rule, Severity, Subject, Tally, Thresholds
from gateway.errors import InvalidInput
from tests.conftest import isolated_env

TILL = Subject("till", "7")
counts = st.integers(min_value=0, max_value=10_000)
amounts = st.integers(min_value=1, max_value=10**9)


@given(count=counts, threshold=counts)
def test_a_count_fires_exactly_from_its_threshold_and_never_when_off(
    count: int, threshold: int
) -> None:
    verdict = m.count_reached(Rule.VOIDS, TILL, count, threshold, 60)
    assert (verdict is not None) == (threshold > 0 and count >= threshold)
    if verdict:
        assert verdict.facts["count"] == count and verdict.facts["threshold"] == threshold
        assert verdict.severity == (
            Severity.CRITICAL if count >= 2 * threshold else Severity.WARNING
        )


@given(refunded=st.integers(0, 10**9), sold=st.integers(0, 10**9), n=st.integers(0, 20))
def test_the_refund_ratio_compares_in_whole_numbers(refunded: int, sold: int, n: int) -> None:
    t = Thresholds(refund_ratio_percent=30, refund_ratio_min_refunds=3)
    verdict = m.refund_ratio(TILL, Tally(n, refunded), Tally(5, sold), "EUR", t)
    assert (verdict is not None) == (n >= 3 and refunded * 100 >= 30 * sold)


def test_the_refund_ratio_at_and_below_its_threshold() -> None:
    t = Thresholds(refund_ratio_percent=30, refund_ratio_min_refunds=3)
    at = m.refund_ratio(TILL, Tally(3, 1200), Tally(4, 4000), "EUR", t)
    assert at is not None and at.facts["ratio_percent"] == 30
    assert at.facts["refunded"] == {"minor": 1200, "currency": "EUR"}
    assert m.refund_ratio(TILL, Tally(3, 1199), Tally(4, 4000), "EUR", t) is None
    assert m.refund_ratio(TILL, Tally(2, 4000), Tally(4, 4000), "EUR", t) is None  # too few
    nothing_sold = m.refund_ratio(TILL, Tally(3, 1), Tally(0, 0), "EUR", t)
    assert nothing_sold is not None and nothing_sold.severity == Severity.CRITICAL


@given(st.lists(amounts, min_size=1, max_size=200), st.integers(1, 100))
def test_a_percentile_is_a_value_with_enough_at_or_below_it(values: list[int], p: int) -> None:
    value = m.percentile(values, p)
    assert value in values
    at_or_below = sum(1 for v in values if v <= value)
    assert at_or_below * 100 >= p * len(values)
    assert sum(1 for v in values if v < value) * 100 < p * len(values)


@given(st.lists(amounts, min_size=1, max_size=200))
def test_the_usual_rank_is_the_median_and_the_95th_percentile(values: list[int]) -> None:
    ordered = sorted(values)
    assert ordered[m.usual_rank(len(values), "median")] == m.median(values)
    assert ordered[m.usual_rank(len(values), "p95")] == m.percentile(values, 95)


@given(st.lists(amounts, min_size=1, max_size=200))
def test_the_median_splits_the_values(values: list[int]) -> None:
    median = m.median(values)
    assert sum(1 for v in values if v <= median) * 2 >= len(values)
    assert sum(1 for v in values if v >= median) * 2 >= len(values)


@given(st.lists(amounts, min_size=0, max_size=60), amounts)
def test_a_large_ticket_needs_history_and_must_exceed_the_limit(
    history: list[int], amount: int
) -> None:
    t = Thresholds(large_ticket_factor=5, large_ticket_min_history=20)
    verdict = m.large_ticket(TILL, amount, history, "EUR", t)
    if len(history) < 20:
        assert verdict is None
    else:
        assert (verdict is not None) == (amount > 5 * m.percentile(history, 95))


moments = st.datetimes(
    min_value=datetime(1970, 1, 2), max_value=datetime(2999, 12, 31), timezones=st.just(UTC)
)


@given(moments, st.sampled_from([1, 7, 15, 60, 1440]))
def test_a_window_key_names_the_fixed_window_the_moment_is_in(at: datetime, minutes: int) -> None:
    start = datetime.strptime(m.window_key(at, minutes), "%Y-%m-%dT%H:%M").replace(tzinfo=UTC)
    assert start <= at < start + timedelta(minutes=minutes)
    assert m.window_key(start, minutes) == m.window_key(at, minutes)


day = st.sampled_from(m.DAYS)
spans = st.tuples(st.integers(0, 23), st.sampled_from([0, 15, 30, 45]), st.integers(1, 12 * 60))


@given(st.dictionaries(day, st.lists(spans, min_size=1, max_size=2), max_size=7))
def test_opening_hours_read_back_what_they_write(
    raw: dict[str, list[tuple[int, int, int]]],
) -> None:
    hours = {
        d: [[f"{h:02d}:{mi:02d}", _plus(h, mi, length)] for h, mi, length in items]
        for d, items in raw.items()
    }
    assert m.parse_opening_hours(m.format_opening_hours(hours)) == hours


def _plus(hour: int, minute: int, length: int) -> str:
    total = (hour * 60 + minute + length) % (24 * 60)
    return f"{total // 60:02d}:{total % 60:02d}"


def test_opening_hours_as_a_person_writes_them() -> None:
    hours = m.parse_opening_hours("mon-fri 08:00-20:00; sat 09:00-14:00, 15:00-18:00; sun closed")
    assert hours["wed"] == [["08:00", "20:00"]]
    assert hours["sat"] == [["09:00", "14:00"], ["15:00", "18:00"]]
    assert "sun" not in hours
    assert m.parse_opening_hours("fri-mon 22:00-02:00")["sun"] == [["22:00", "02:00"]]
    assert m.parse_opening_hours("") == {}
    for wrong in ("monday 08:00-20:00", "mon 8-20", "mon 25:00-26:00", "mon"):
        with pytest.raises(InvalidInput):
            m.parse_opening_hours(wrong)


def test_open_at_with_grace_and_past_midnight() -> None:
    hours = m.parse_opening_hours("mon-fri 08:00-20:00; sun 22:00-02:00")
    monday = datetime(2026, 11, 30)  # a Monday
    assert m.is_open(hours, monday.replace(hour=12))
    assert not m.is_open(hours, monday.replace(hour=20))
    assert m.is_open(hours, monday.replace(hour=20, minute=14), grace=15)
    assert not m.is_open(hours, monday.replace(hour=20, minute=15), grace=15)
    assert m.is_open(hours, monday.replace(hour=7, minute=45), grace=15)
    assert m.is_open(hours, monday.replace(hour=1, minute=30))  # Sunday night's span
    assert not m.is_open(hours, monday.replace(hour=2))


def test_outside_hours_only_for_a_store_with_hours() -> None:
    t = Thresholds()
    night = datetime(2026, 11, 30, 23, 0)
    assert m.outside_hours(TILL, None, night, "UTC", "payment", t) is None
    hours = m.parse_opening_hours("mon-fri 08:00-20:00")
    verdict = m.outside_hours(TILL, hours, night, "UTC", "payment", t)
    assert verdict is not None and verdict.facts["local_time"] == "2026-11-30T23:00"


def test_thresholds_are_checked_and_overridden_by_name() -> None:
    t = Thresholds().with_overrides({"voids_per_till": 9})
    assert t.voids_per_till == 9 and t.differences(Thresholds()) == {"voids_per_till": 9}
    for wrong in ({"voids_per_till": -1}, {"nope": 1}, {"large_ticket_statistic": "mean"}):
        with pytest.raises(InvalidInput):
            Thresholds().with_overrides(wrong)


def test_the_configured_defaults_are_the_rules_defaults() -> None:
    """config/default.toml's [monitoring] and the domain's defaults say the same."""
    settings = load_config(env=isolated_env(), overrides={"database": {"url": "sqlite://"}})
    assert Thresholds(**settings.monitoring.model_dump()) == Thresholds()
