"""The experiment checks a bank can trust: sample-ratio mismatch and the mSPRT, against scipy,
a published example, and a simulation of a manager who looks every day."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from gateway.domain.promotions.experiments import VariantFigures, compare_all
from gateway.domain.promotions.sequential import (
    SRM_ALPHA,
    TAU_EFFECT,
    Difference,
    log_mixture_ratio,
    mean_difference,
    proportion_difference,
    sample_ratio,
    sequential_test,
)
from gateway.errors import InvalidInput

# --- sample ratio mismatch -------------------------------------------------------------------


def test_srm_reproduces_the_published_example() -> None:
    """Kohavi, Tang and Xu, *Trustworthy Online Controlled Experiments* (2020), ch. 21: a 50/50
    test with 821,588 users in control and 815,482 in treatment has p = 1.8e-6."""
    out = sample_ratio(["control", "B"], [821_588, 815_482], [1, 1])
    assert out.expected == (818_535.0, 818_535.0)
    assert out.p_value == pytest.approx(1.8e-6, rel=0.02)
    assert out.mismatch


def test_srm_against_scipy_with_unequal_weights_and_a_holdout() -> None:
    observed, weights = [120, 4_410, 4_470], [1000, 4500, 4500]  # holdout 10 %, 1:1
    out = sample_ratio(["holdout", "A", "B"], observed, weights)
    expected = [9000 * w / 10_000 for w in weights]
    reference = stats.chisquare(observed, f_exp=expected)
    assert out.chi2 == pytest.approx(float(reference.statistic))
    assert out.p_value == pytest.approx(float(reference.pvalue))
    assert out.mismatch  # 120 where 900 were due


def test_a_fair_split_is_not_a_mismatch_and_empty_or_single_arms_are_not_tested() -> None:
    assert not sample_ratio(["A", "B"], [5_020, 4_980], [1, 1]).mismatch
    assert sample_ratio(["A", "B"], [0, 0], [1, 1]).p_value == 1.0
    assert sample_ratio(["A", "x"], [10, 3], [1, 0]).p_value == 1.0  # x has no weight
    with pytest.raises(InvalidInput):
        sample_ratio(["A"], [1, 2], [1, 1])


# --- the mixture SPRT ------------------------------------------------------------------------


@given(
    st.floats(-5, 5, allow_nan=False),
    st.floats(0.01, 4, allow_nan=False),
    st.floats(0.01, 4, allow_nan=False),
)
def test_mixture_ratio_is_the_ratio_of_two_normal_densities(d: float, v: float, t2: float) -> None:
    """Λ = N(d; 0, V + τ²) / N(d; 0, V): the marginal under the mixture over the null."""
    expected = stats.norm.logpdf(d, 0, math.sqrt(v + t2)) - stats.norm.logpdf(d, 0, math.sqrt(v))
    assert log_mixture_ratio(d, v, t2) == pytest.approx(expected, abs=1e-9)


@given(
    st.floats(-3, 3, allow_nan=False),
    st.floats(0.001, 1, allow_nan=False),
    st.floats(0.1, 10, allow_nan=False),
)
def test_interval_holds_exactly_the_differences_the_test_would_not_reject(
    d: float, v: float, unit: float
) -> None:
    result = sequential_test("m", Difference(d, v, unit), 0.05)
    tau2 = TAU_EFFECT**2 * unit
    for edge in (result.low, result.high):  # Λ(d − edge) = 1/α exactly on the bounds
        assert log_mixture_ratio(d - edge, v, tau2) == pytest.approx(math.log(20), abs=1e-6)
    assert result.low < d < result.high
    assert result.significant == (result.low > 0 or result.high < 0)


def test_always_valid_interval_is_wider_than_one_fixed_look() -> None:
    diff = mean_difference(1000, 2_100_000, 4_900_000_000, 1000, 2_000_000, 4_500_000_000)
    assert diff is not None
    result = sequential_test("average ticket", diff, 0.05)
    fixed = stats.norm.ppf(0.975) * math.sqrt(diff.variance)
    assert result.high - result.difference > fixed


def test_exact_differences_and_missing_data() -> None:
    certain = sequential_test("m", mean_difference(3, 30, 300, 3, 60, 1200), 0.05)
    assert (certain.difference, certain.low, certain.high, certain.p_value) == (-10, -10, -10, 0)
    assert sequential_test("m", mean_difference(3, 30, 300, 3, 30, 300), 0.05).p_value == 1.0
    assert mean_difference(1, 5, 25, 10, 50, 300) is None
    assert proportion_difference(0, 0, 3, 10) is None
    nothing = sequential_test("m", None, 0.05)
    assert nothing.p_value == 1.0 and math.isinf(nothing.low) and not nothing.significant
    all_or_nothing = proportion_difference(40, 40, 0, 40)  # pooled variance: not "exact"
    assert all_or_nothing is not None and all_or_nothing.variance > 0
    assert sequential_test("m", all_or_nothing, 0.05).significant


def test_a_manager_who_looks_every_day_is_wrong_at_most_alpha_of_the_time() -> None:
    """Simulation under "no difference": 400 experiments of 2 × 2000 customers, looked at
    after every 50 per group. Acting on the first fixed-horizon p < 0.05 is wrong far more
    often than 5 %; acting on the mSPRT's p < 0.05 stays below it (Johari et al. 2022, §3)."""
    rng = np.random.default_rng(20261206)
    experiments, n, step, rate = 400, 2000, 50, 0.2
    a = rng.random((experiments, n)) < rate
    b = rng.random((experiments, n)) < rate
    looks = range(step, n + 1, step)
    ever_fixed = np.zeros(experiments, dtype=bool)
    ever_sequential = np.zeros(experiments, dtype=bool)
    ca, cb = np.cumsum(a, axis=1), np.cumsum(b, axis=1)
    for k in looks:
        for i in range(experiments):
            xa, xb = int(ca[i, k - 1]), int(cb[i, k - 1])
            diff = proportion_difference(xb, k, xa, k)
            assert diff is not None
            if diff.variance == 0:
                continue
            z = diff.estimate / math.sqrt(diff.variance)
            ever_fixed[i] |= math.erfc(abs(z) / math.sqrt(2)) < 0.05
            ever_sequential[i] |= sequential_test("c", diff, 0.05).significant
    assert ever_fixed.mean() > 0.15  # peeking inflates the error several times
    assert ever_sequential.mean() <= 0.05


# --- every metric in the verdict -------------------------------------------------------------


def figures(name: str, **kw: int) -> VariantFigures:
    base = dict(
        customers=400, eligible=1000, redemptions=81, purchases=900,
        ticket_sum_minor=1_962_000, ticket_sumsq_minor=4_400_000_000, new_customers=50,
        retained_30d=40, retention_base=300, cost_minor=0, purchases_sumsq=2_500,
        spend_sumsq_minor=11_000_000_000,
    )  # fmt: skip
    return VariantFigures(name, **{**base, **kw})


def test_compare_all_tests_growth_activity_and_volume_and_judges_sequentially() -> None:
    control = figures("control")
    treatment = figures(
        "B", customers=420, redemptions=124, purchases=950, ticket_sum_minor=2_194_500,
        ticket_sumsq_minor=5_300_000_000, new_customers=90, purchases_sumsq=2_700,
        spend_sumsq_minor=13_000_000_000, cost_minor=41_250,
    )  # fmt: skip
    judged = compare_all(control, treatment, "EUR")
    assert [t.metric for t in judged.tests] == [
        "conversion", "30-day retention", "average ticket", "new customers",
        "purchases per customer", "spend per customer",
    ]  # fmt: skip
    growth = judged.tests[3]
    assert (growth.control, growth.treatment) == (50 / 400, 90 / 420)
    assert [s.metric for s in judged.sequential] == [t.metric for t in judged.tests]
    conversion = judged.sequential[0]
    # Fixed horizon p = 0.002 here; the always-valid p is larger: the price of peeking.
    assert conversion.p_value > judged.tests[0].p_value
    assert "New customers:" in judged.verdict and judged.verdict.endswith("It cost 412.50 EUR.")
    assert SRM_ALPHA == 0.001
