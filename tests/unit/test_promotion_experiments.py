"""A/B experiments: stable hash assignment (checked in another process), the tests against
published worked examples, exact aggregates, and the manager's verdict."""

from __future__ import annotations

import hashlib
import math
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from gateway.domain.promotions.experiments import (
    HOLDOUT,
    Experiment,
    TestResult,
    Variant,
    VariantFigures,
    assign,
    bucket,
    compare,
    two_proportion_z,
    welch_t,
)
from gateway.errors import InvalidInput

# --- assignment -----------------------------------------------------------------------------


def bucket_by_hand(experiment_id: str, customer_key: str) -> int:
    digest = hashlib.sha256((experiment_id + "\x1f" + customer_key).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % 10_000


@pytest.mark.parametrize(
    ("experiment_id", "customer_key", "expected"),
    [
        # Pinned when the recipe was written; bucket_by_hand recomputes them from hashlib.
        ("exp-1", "cust-1", 8391),
        ("summer-promo", "wallet:abc", 9660),
        ("x", "", 2121),
    ],
)
def test_bucket_known_answers(experiment_id: str, customer_key: str, expected: int) -> None:
    assert bucket_by_hand(experiment_id, customer_key) == expected
    assert bucket(experiment_id, customer_key) == expected


def test_the_separator_keeps_id_and_key_apart() -> None:
    assert bucket("ab", "c") == bucket_by_hand("ab", "c")
    assert bucket("ab", "c") != bucket("a", "bc")


def test_buckets_are_laid_out_holdout_first_then_variants_in_order() -> None:
    experiment = Experiment("exp-1", (Variant("A", 1), Variant("B", 1)), holdout_bp=1000)
    assert experiment.bucket_counts() == [4500, 4500]
    for i in range(2000):
        b = bucket("exp-1", f"c{i}")
        expected = HOLDOUT if b < 1000 else "A" if b < 5500 else "B"
        assert assign(experiment, f"c{i}") == expected


def test_bucket_counts_split_by_largest_remainder() -> None:
    experiment = Experiment("e", (Variant("A", 1), Variant("B", 1), Variant("C", 1)))
    assert experiment.bucket_counts() == [3334, 3333, 3333]
    assert sum(Experiment("e", (Variant("A", 7), Variant("B", 3)), 333).bucket_counts()) == 9667


@pytest.mark.slow
def test_shares_over_100000_customers_are_within_one_percent_of_the_weights() -> None:
    experiment = Experiment(
        "checkout-banner", (Variant("A", 1), Variant("B", 2), Variant("C", 1)), holdout_bp=1000
    )
    n = 100_000
    counts = Counter(assign(experiment, f"customer-{i}") for i in range(n))
    expected = {HOLDOUT: 0.10, "A": 0.225, "B": 0.45, "C": 0.225}
    for name, share in expected.items():
        assert abs(counts[name] / n - share) < 0.01, (name, counts[name])


def test_a_single_variant_with_no_holdout_takes_everyone() -> None:
    experiment = Experiment("solo", (Variant("only", 5),))
    assert {assign(experiment, f"c{i}") for i in range(500)} == {"only"}


@given(
    st.text(min_size=1),
    st.text(),
    st.lists(st.integers(1, 1000), min_size=1, max_size=6),
    st.integers(0, 9999),
)
def test_assign_always_gives_a_known_name(
    experiment_id: str, customer_key: str, weights: list[int], holdout_bp: int
) -> None:
    variants = tuple(Variant(f"v{i}", w) for i, w in enumerate(weights))
    experiment = Experiment(experiment_id, variants, holdout_bp)
    assert 0 <= bucket(experiment_id, customer_key) < 10_000
    assert assign(experiment, customer_key) in {HOLDOUT, *(v.name for v in variants)}
    assert sum(experiment.bucket_counts()) == 10_000 - holdout_bp


@pytest.mark.parametrize(
    ("variants", "holdout_bp", "message"),
    [
        ((), 0, "at least one variant"),
        ((Variant("A", 1), Variant("A", 2)), 0, "unique"),
        ((Variant(HOLDOUT, 1),), 0, "unique and not 'holdout'"),
        ((Variant("A", 0),), 0, "weight > 0"),
        ((Variant("A", -1),), 0, "weight > 0"),
        ((Variant("A", 1),), -1, "0..9999"),
        ((Variant("A", 1),), 10_000, "0..9999"),
    ],
)
def test_bad_experiments_are_refused(
    variants: tuple[Variant, ...], holdout_bp: int, message: str
) -> None:
    with pytest.raises(InvalidInput, match=message):
        Experiment("exp", variants, holdout_bp)


def test_experiment_needs_an_id() -> None:
    with pytest.raises(InvalidInput, match="id"):
        Experiment("", (Variant("A", 1),))


# --- two-proportion z-test ------------------------------------------------------------------


def z_by_formula(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """The textbook pooled formula in floats, with scipy's normal tail, as a cross-check."""
    p1, p2, p = x1 / n1, x2 / n2, (x1 + x2) / (n1 + n2)
    z = (p1 - p2) / math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2))
    return z, 2 * stats.norm.sf(abs(z))


def test_z_hives_example_from_illowsky_and_dean() -> None:
    # Illowsky & Dean, "Collaborative Statistics", Connexions module m17043 "Comparing Two
    # Independent Population Proportions" (http://cnx.org/content/m17043/latest/), example:
    # 20 of 200 adults on medication A and 12 of 200 on medication B still had hives;
    # pooled proportion 0.08, two-sided "p-value = 0.1404". z = 1.47 is hand-computed.
    z, p = two_proportion_z(20, 200, 12, 200)
    assert round(p, 4) == 0.1404
    assert round(z, 2) == 1.47
    assert (z, p) == pytest.approx(z_by_formula(20, 200, 12, 200), rel=1e-12)


def test_z_smokers_tax_poll_from_penn_state() -> None:
    # Data of the Penn State STAT 414/415 example (onlinecourses.science.psu.edu/stat414,
    # node 268): Time, 18 April 1994, 351 of 605 non-smokers and 41 of 195 smokers favour the
    # cigarette tax. z = 8.99 is hand-computed with the pooled formula (the page itself could
    # not be consulted offline); the p-value is below 1e-18.
    z, p = two_proportion_z(351, 605, 41, 195)
    assert round(z, 2) == 8.99
    assert p < 1e-18
    assert (z, p) == pytest.approx(z_by_formula(351, 605, 41, 195), rel=1e-9)


def test_z_worked_answer_with_printed_digits() -> None:
    # A worked answer on wizedu.com ("what is the test statistic and pvalue of the data?",
    # question 363496): 9 of 31 against 8 of 30, pooled SE 0.1148271,
    # "Z-Stat 0.20601333", "P-value 0.8368".
    z, p = two_proportion_z(9, 31, 8, 30)
    assert z == pytest.approx(0.20601333, abs=1e-8)
    assert round(p, 4) == 0.8368


def test_z_sign_follows_the_first_proportion() -> None:
    z, p = two_proportion_z(12, 200, 20, 200)
    assert z < 0
    assert (-z, p) == pytest.approx(two_proportion_z(20, 200, 12, 200))


@pytest.mark.parametrize(
    "args",
    [(0, 0, 5, 10), (5, 10, 0, 0), (0, 10, 0, 20), (10, 10, 20, 20), (0, 0, 0, 0)],
)
def test_z_with_nothing_to_test_is_neutral(args: tuple[int, int, int, int]) -> None:
    assert two_proportion_z(*args) == (0.0, 1.0)


def test_z_refuses_more_successes_than_trials() -> None:
    with pytest.raises(InvalidInput, match="successes"):
        two_proportion_z(11, 10, 1, 10)


# --- Welch's t-test -------------------------------------------------------------------------


def aggregates(values: list[int]) -> tuple[int, int, int]:
    return len(values), sum(values), sum(v * v for v in values)


def test_welch_clickhouse_documentation_example() -> None:
    # ClickHouse docs, aggregate function welchTTest, "Basic Welch's t-test"
    # (https://clickhouse.com/docs/sql-reference/aggregate-functions/reference/welchttest):
    # samples (20.3, 22.1, 21.9) and (18.9, 20.3, 19) give (2.7988719532211235,
    # 0.051807360348581945). Values are in tenths here; t, df and p do not depend on scale.
    t, df, p = welch_t(*aggregates([203, 221, 219]), *aggregates([189, 203, 190]))
    assert t == pytest.approx(2.7988719532211235, rel=1e-12)
    assert p == pytest.approx(0.051807360348581945, rel=1e-9)
    assert df == pytest.approx(3.7999, abs=1e-4)  # hand-computed Welch–Satterthwaite


def test_welch_r_output_from_statscodes() -> None:
    # statscodes.com, "Welch's two sample t-tests in R": t.test(data_x, data_y) with
    # data_x = c(5.1, 2.0, 4.1, 6.2, 7.1, 8.3), data_y = c(1.5, 6.4, 3.3, 5.8, 4.8, 7.2, 5.6,
    # 4.5) prints "t = 0.51703, df = 9.48, p-value = 0.617".
    x = [51, 20, 41, 62, 71, 83]
    y = [15, 64, 33, 58, 48, 72, 56, 45]
    t, df, p = welch_t(*aggregates(x), *aggregates(y))
    assert (round(t, 5), round(df, 2), round(p, 3)) == (0.51703, 9.48, 0.617)


def test_welch_r_output_from_washu_math3200_lecture() -> None:
    # Math 3200 lecture 35 notes (notenextra.trance-0.com/Math3200/Lecture_35), R output of
    # t.test(x1, x2) for x1 = 20.0 12.4 23.6 19.5 33.5 11.7 13.6 18.2 11.8 21.8 and
    # x2 = 16.8 21.7 31.5 22.1 23.8 17.1 20.0 17.1: "t = -0.9594, df = 15.873, p-value = 0.3517".
    x1 = [200, 124, 236, 195, 335, 117, 136, 182, 118, 218]
    x2 = [168, 217, 315, 221, 238, 171, 200, 171]
    t, df, p = welch_t(*aggregates(x1), *aggregates(x2))
    assert (round(t, 4), round(df, 3), round(p, 4)) == (-0.9594, 15.873, 0.3517)


def test_welch_agrees_with_scipy_on_raw_samples() -> None:
    a = [1250, 980, 2210, 1730, 415, 3999, 1005, 870, 2250, 1300, 1800]
    b = [1100, 1190, 1240, 1010, 1330, 990, 1205]
    t, df, p = welch_t(*aggregates(a), *aggregates(b))
    reference = stats.ttest_ind(a, b, equal_var=False)
    assert (t, df, p) == pytest.approx((reference.statistic, reference.df, reference.pvalue))


def test_welch_is_exact_where_floats_would_cancel() -> None:
    # Shifting every value by 10**15 changes neither the spread nor t; in floats the sums of
    # squares (~1e31) would lose every digit of the variance.
    small = ([1, 2, 3, 4, 6], [2, 4, 4, 5, 7, 9])
    shift = 10**15
    big = ([v + shift for v in small[0]], [v + shift for v in small[1]])
    expected = welch_t(*aggregates(small[0]), *aggregates(small[1]))
    assert welch_t(*aggregates(big[0]), *aggregates(big[1])) == pytest.approx(expected)
    assert expected[2] < 1.0


@pytest.mark.parametrize(
    ("a", "b"),
    [([100], [100, 200, 300]), ([], []), ([4, 4], [4, 4, 4])],
)
def test_welch_undefined_cases_are_neutral(a: list[int], b: list[int]) -> None:
    assert welch_t(*aggregates(a), *aggregates(b)) == (0.0, 0.0, 1.0)


def test_welch_with_no_spread_and_different_means_is_certain() -> None:
    """Every ticket is 5 in one group and 7 in the other: no sampling chance is left."""
    assert welch_t(*aggregates([5, 5, 5]), *aggregates([7, 7])) == (-math.inf, 3.0, 0.0)
    assert welch_t(*aggregates([7, 7]), *aggregates([5, 5, 5])) == (math.inf, 3.0, 0.0)


def test_welch_with_one_constant_group_still_tests() -> None:
    t, df, p = welch_t(*aggregates([10, 10, 10]), *aggregates([1, 5, 9, 3]))
    assert t > 0 and df == pytest.approx(3.0) and 0 < p < 1


def test_welch_refuses_impossible_aggregates() -> None:
    with pytest.raises(InvalidInput, match="inconsistent"):
        welch_t(3, 30, 10, 3, 30, 400)  # sum of squares below sum**2 / n


# --- figures and the verdict ----------------------------------------------------------------


def figures(name: str, **kw: int) -> VariantFigures:
    base = dict(
        customers=400, eligible=1000, redemptions=81, purchases=900,
        ticket_sum_minor=1_962_000, ticket_sumsq_minor=4_400_000_000, new_customers=50,
        retained_30d=40, retention_base=300, cost_minor=0,
    )  # fmt: skip
    return VariantFigures(name, **{**base, **kw})


CONTROL = figures("control")
TREATMENT = figures(
    "B", customers=420, redemptions=124, purchases=950, ticket_sum_minor=2_194_500,
    ticket_sumsq_minor=5_300_000_000, retained_30d=55, retention_base=310, cost_minor=41_250,
)  # fmt: skip


def test_figures_rates_and_rounded_average_ticket() -> None:
    assert TREATMENT.conversion == pytest.approx(0.124)
    assert TREATMENT.average_ticket_minor == 2310
    assert TREATMENT.purchases_per_customer == pytest.approx(950 / 420)
    assert TREATMENT.retention == pytest.approx(55 / 310)
    assert figures("x", purchases=2, ticket_sum_minor=5).average_ticket_minor == 3  # 2.5 up
    assert figures("x", purchases=3, ticket_sum_minor=7).average_ticket_minor == 2  # 2.33
    nothing = ("customers", "eligible", "redemptions", "purchases", "ticket_sum_minor",
               "ticket_sumsq_minor", "retained_30d", "retention_base")  # fmt: skip
    empty = figures("x", **dict.fromkeys(nothing, 0))
    assert (empty.conversion, empty.average_ticket_minor) == (0.0, 0)
    assert (empty.purchases_per_customer, empty.retention) == (0.0, 0.0)


@pytest.mark.parametrize(
    "kw",
    [{"eligible": -1}, {"redemptions": 1001}, {"retained_30d": 301}, {"cost_minor": 1.5}],
)
def test_impossible_figures_are_refused(kw: dict[str, int]) -> None:
    with pytest.raises(InvalidInput):
        figures("x", **kw)


def test_compare_runs_the_three_tests() -> None:
    results, _ = compare(CONTROL, TREATMENT, "EUR")
    assert [(r.metric, r.test) for r in results] == [
        ("conversion", "two-proportion z-test"),
        ("30-day retention", "two-proportion z-test"),
        ("average ticket", "Welch's t-test"),
    ]
    conversion = results[0]
    z, p = two_proportion_z(124, 1000, 81, 1000)
    assert conversion == TestResult("conversion", "two-proportion z-test", 0.081, 0.124, z, p, True)
    assert conversion.statistic > 0  # the treatment converts more
    assert results[2].control == 2180.0 and results[2].treatment == 2310.0


def test_verdict_in_plain_words() -> None:
    _, verdict = compare(CONTROL, TREATMENT, "EUR")
    assert verdict.startswith(
        "Variant B converts 12.4 % of eligible sales against 8.1 % for control (+4.3 points); "
        "the difference is statistically significant (p = 0.002)."
    )
    assert "30-day retention 17.7 % against 13.3 % (+4.4 points): no significant difference" in (
        verdict
    )
    assert "Average ticket 23.10 EUR against 21.80 EUR:" in verdict
    assert verdict.endswith("It cost 412.50 EUR.")


def test_verdict_says_when_a_difference_may_be_chance() -> None:
    similar = figures("B", redemptions=85, cost_minor=1000)
    results, verdict = compare(CONTROL, similar, "EUR")
    assert not results[0].significant
    assert "the difference is not statistically significant (p = 0." in verdict
    assert "Average ticket 21.80 EUR against 21.80 EUR: no significant difference (p = 1.000)" in (
        verdict
    )


def test_retention_is_skipped_without_a_base() -> None:
    results, verdict = compare(CONTROL, figures("B", retained_30d=0, retention_base=0), "EUR")
    assert [r.metric for r in results] == ["conversion", "average ticket"]
    assert "retention" not in verdict


def test_not_enough_data_yet() -> None:
    small = figures("control", eligible=12, redemptions=1)
    results, verdict = compare(small, TREATMENT, "EUR")
    assert verdict == (
        "Not enough data yet: a fair comparison needs at least 30 eligible sales in each group "
        "(control has 12). It cost 412.50 EUR."
    )
    assert len(results) == 3  # the figures are still computed, just not judged


def test_not_enough_data_names_both_groups_and_honours_min_sample() -> None:
    _, verdict = compare(CONTROL, TREATMENT, "EUR", min_sample=2000)
    assert "(control has 1000 and B has 1000)" in verdict


def test_money_uses_the_currency_exponent() -> None:
    _, verdict = compare(CONTROL, TREATMENT, "JPY")
    assert "Average ticket 2310 JPY against 2180 JPY" in verdict
    assert verdict.endswith("It cost 41250 JPY.")


def test_alpha_decides_significance() -> None:
    strict, _ = compare(CONTROL, TREATMENT, "EUR", alpha=0.001)
    assert not strict[0].significant  # p = 0.0015
