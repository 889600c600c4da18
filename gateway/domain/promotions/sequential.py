"""Experiment checks a bank can trust: a sample-ratio-mismatch test and a sequential test whose
verdict stays valid however often the page is looked at.

**Sample ratio mismatch (SRM).** Customers are split by the configured weights (holdout and
variants' buckets). When the observed counts are too far from that split for chance, the
assignment or the logging is broken and no comparison can be trusted: Pearson's chi-square
goodness-of-fit test against the expected shares, flagged below p = 0.001 (Fabijan et al.,
"Diagnosing Sample Ratio Mismatch in Online Controlled Experiments", KDD 2019; Kohavi, Tang and
Xu, *Trustworthy Online Controlled Experiments*, 2020, ch. 21).

**Repeated looks.** A fixed-horizon p-value read every day and acted on when it first dips below
0.05 rejects far more than 5 % of the time. Kassa uses the mixture sequential probability ratio
test (mSPRT) of Johari, Koomen, Pekelis and Walsh, "Always Valid Inference: Continuous
Monitoring of A/B Tests", *Operations Research* 70(3), 2022, with a normal mixture (Robbins,
1970). For an estimated difference ``d`` with variance ``V`` and a mixing variance ``τ²``:

    Λ = sqrt(V / (V + τ²)) · exp(τ² d² / (2 V (V + τ²)))

is the likelihood ratio of N(0, V + τ²) to N(0, V) at ``d``; it is a martingale under "no
difference", so by Ville's inequality P(Λ ever ≥ 1/α) ≤ α. The always-valid p-value is
``min(1, 1/Λ)`` and the always-valid (1 − α) interval is

    d ± sqrt(V (V + τ²) / τ² · (2 ln(1/α) + ln((V + τ²) / V)))

``τ`` is set to a tenth of the metric's per-observation standard deviation (``TAU_EFFECT``): the
test is most sensitive to effects of about that size and still finds larger ones sooner.
The price of looking at any time is a wider interval than a single fixed-horizon look.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

from scipy import stats

from gateway.errors import InvalidInput

SRM_ALPHA = 0.001
TAU_EFFECT = 0.1


@dataclass(frozen=True, slots=True)
class SampleRatio:
    """Observed against expected counts per arm, and whether the split is broken."""

    names: tuple[str, ...]
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    p_value: float

    @property
    def mismatch(self) -> bool:
        return self.p_value < SRM_ALPHA


def sample_ratio(names: list[str], observed: list[int], weights: list[int]) -> SampleRatio:
    """Pearson's chi-square of ``observed`` counts against shares proportional to ``weights``.

    Arms with zero weight are left out (nobody should be there); with fewer than two arms or
    no observation there is nothing to test and the p-value is 1.
    """
    if not len(names) == len(observed) == len(weights):
        raise InvalidInput("one observed count and one weight per arm")
    if any(w < 0 for w in weights) or any(n < 0 for n in observed):
        raise InvalidInput("counts and weights cannot be negative")
    arms = [(a, n, w) for a, n, w in zip(names, observed, weights, strict=True) if w > 0]
    total, weight = sum(n for _, n, _ in arms), sum(w for _, _, w in arms)
    expected = tuple(total * w / weight for _, _, w in arms) if weight else ()
    if len(arms) < 2 or total == 0:
        return SampleRatio(tuple(a for a, _, _ in arms), tuple(n for _, n, _ in arms),
                           expected, 0.0, 1.0)  # fmt: skip
    result = stats.chisquare([n for _, n, _ in arms], f_exp=list(expected))
    return SampleRatio(
        tuple(a for a, _, _ in arms),
        tuple(n for _, n, _ in arms),
        expected,
        float(result.statistic),
        float(result.pvalue),
    )


@dataclass(frozen=True, slots=True)
class Difference:
    """Treatment minus control, the variance of that estimate, and the per-observation
    variance that sizes the mixture (``τ² = (TAU_EFFECT)² · unit_variance``)."""

    estimate: float
    variance: float
    unit_variance: float


def proportion_difference(x_t: int, n_t: int, x_c: int, n_c: int) -> Difference | None:
    """``x_t/n_t − x_c/n_c`` with the pooled variance (the variance under "no difference",
    as in the pooled z-test, so 100 % against 0 % is not mistaken for certainty without
    spread); None when a group is empty."""
    for x, n in ((x_t, n_t), (x_c, n_c)):
        if not 0 <= x <= n:
            raise InvalidInput(f"a proportion needs 0 ≤ successes ≤ trials, got {x} of {n}")
    if n_t == 0 or n_c == 0:
        return None
    pooled = Fraction(x_t + x_c, n_t + n_c)
    unit = pooled * (1 - pooled)
    estimate = Fraction(x_t, n_t) - Fraction(x_c, n_c)
    return Difference(float(estimate), float(unit * (Fraction(1, n_t) + Fraction(1, n_c))),
                      float(unit))  # fmt: skip


def mean_difference(
    n_t: int, sum_t: int, sumsq_t: int, n_c: int, sum_c: int, sumsq_c: int
) -> Difference | None:
    """Difference of means from counts, sums and sums of squares (sample variances, exact);
    None with fewer than two values in a group."""
    for n, total, sumsq in ((n_t, sum_t, sumsq_t), (n_c, sum_c, sumsq_c)):
        if n < 0 or n * sumsq < total * total:
            raise InvalidInput(
                f"inconsistent aggregates: n={n}, sum={total}, sum of squares={sumsq}"
            )
    if n_t < 2 or n_c < 2:
        return None
    mean_t, mean_c = Fraction(sum_t, n_t), Fraction(sum_c, n_c)
    var_t = (sumsq_t - sum_t * mean_t) / (n_t - 1)
    var_c = (sumsq_c - sum_c * mean_c) / (n_c - 1)
    return Difference(
        float(mean_t - mean_c), float(var_t / n_t + var_c / n_c), float((var_t + var_c) / 2)
    )


@dataclass(frozen=True, slots=True)
class SequentialResult:
    """One metric's always-valid verdict: the difference, its interval and p-value."""

    metric: str
    difference: float
    low: float
    high: float
    p_value: float
    significant: bool


def log_mixture_ratio(estimate: float, variance: float, tau2: float) -> float:
    """ln Λ of the normal-mixture SPRT (see the module docstring)."""
    if variance <= 0 or tau2 <= 0:
        raise InvalidInput("the mSPRT needs a positive variance and mixing variance")
    return 0.5 * math.log(variance / (variance + tau2)) + (
        tau2 * estimate * estimate / (2 * variance * (variance + tau2))
    )


def sequential_test(metric: str, difference: Difference | None, alpha: float) -> SequentialResult:
    """The mSPRT on one difference: p = min(1, 1/Λ), interval as in the module docstring.

    Without data there is nothing to decide yet: p = 1 and an unbounded interval. With no
    spread at all the difference is exact: a point interval, p = 0 unless it is zero."""
    if not 0 < alpha < 1:
        raise InvalidInput("alpha must be between 0 and 1")
    if difference is None:
        return SequentialResult(metric, 0.0, -math.inf, math.inf, 1.0, False)
    if difference.variance <= 0 or difference.unit_variance <= 0:
        # No spread in either group: the difference is known exactly, not estimated.
        d = difference.estimate
        return SequentialResult(metric, d, d, d, 0.0 if d else 1.0, d != 0)
    d, v = difference.estimate, difference.variance
    tau2 = TAU_EFFECT**2 * difference.unit_variance
    p = min(1.0, math.exp(-log_mixture_ratio(d, v, tau2)))
    half = math.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + math.log((v + tau2) / v)))
    return SequentialResult(metric, d, d - half, d + half, p, p < alpha)
