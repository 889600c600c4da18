"""The partitioned run (the job table's pipeline, in one process) gives exactly the pure
engine's verdicts on random days with every fault kind, for any number of partitions."""

from __future__ import annotations

import random
from datetime import timedelta

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.reconciliation import reconcile
from gateway.domain.reconciliation.columnar import lines_frame, payments_frame, refunds_frame
from gateway.domain.reconciliation.partitions import part_keys, reconcile_in_parts
from tests.unit.test_reconciliation_columnar import DAY, FAULTS, FEES, random_day


def both(day: dict[str, list], as_of, parts: int, window: int = 3):  # type: ignore[no-untyped-def,type-arg]
    kw = {"fees": FEES, "as_of": as_of, "window_days": window, "decisions": day["decisions"]}
    pure = reconcile(day["payments"], day["refunds"], day["lines"], **kw)
    frames = (
        payments_frame(day["payments"]),
        refunds_frame(day["refunds"]),
        lines_frame(day["lines"]),
    )
    return pure, reconcile_in_parts(*frames, parts=parts, **kw)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 40),
    st.lists(st.sampled_from(FAULTS), max_size=12),
    st.integers(0, 20),
    st.integers(0, 4),
    st.integers(1, 7),
)
def test_partitions_give_exactly_the_pure_verdicts(
    seed: int, n: int, faults: list[str], late: int, window: int, parts: int
) -> None:
    day = random_day(random.Random(seed), n, faults)
    pure, split = both(day, DAY + timedelta(days=late), parts, window)
    assert tuple(split.results()) == pure.results
    assert split.days == pure.days
    assert split.unused_decisions == pure.unused_decisions


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_alone_in_parts(fault: str) -> None:
    rng = random.Random(f"parts-{fault}")
    for _ in range(20):
        day = random_day(rng, rng.randrange(1, 15), [fault] * rng.randrange(1, 4))
        pure, split = both(day, DAY + timedelta(days=10), rng.randrange(1, 6))
        assert tuple(split.results()) == pure.results


@pytest.mark.parametrize("seed", range(12))
def test_faults_together_in_parts(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(30):
        n = rng.randrange(1, 12)
        day = random_day(rng, n, rng.choices(FAULTS, k=rng.randrange(2, 2 * n + 3)))
        pure, split = both(
            day, DAY + timedelta(days=rng.randrange(8)), rng.randrange(1, 8), rng.randrange(4)
        )
        assert tuple(split.results()) == pure.results
        assert split.days == pure.days


def test_every_key_is_in_exactly_one_partition() -> None:
    """A plain day: each pair is found by one partition, and the parts together find all."""
    day = random_day(random.Random(5), 300, [])
    frames = (payments_frame(day["payments"]), refunds_frame(day["refunds"]))
    lines = lines_frame(day["lines"])
    found = [part_keys(*frames, lines, k, 4) for k in range(4)]
    ids = pl.concat([f.candidates["id"] for f in found])
    assert ids.len() == ids.n_unique() == 300
    assert all(f.candidates.height > 0 for f in found)  # the hash spreads them
    assert all(f.ruled_out.len() == 0 for f in found)
