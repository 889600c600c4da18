"""A/B experiments on promotions: who gets which variant, and whether a variant did better.

Assignment is a pure function of the experiment id and the customer key, so a customer sees the
same variant on every till, in every process and after every restart (Python's ``hash()`` is
salted per process and is never used). A customer's *bucket* is

    int.from_bytes(SHA-256(f"{experiment_id}\\x1f{customer_key}" as UTF-8)[:8], "big") % 10_000

Because 2**64 is not a multiple of 10_000, buckets below 2**64 % 10_000 = 1616 are chosen once
more in 2**64 // 10_000 (≈ 1.8e15) tries: a relative bias under 1e-15, far below what any
experiment can see. Buckets ``[0, holdout_bp)`` are held out (no promotion); the rest are split
among the variants in order, in proportion to their weights, by largest remainder.

The statistics are the usual two-sided tests, computed from figures a database can sum:

| metric           | figures                                     | test                         |
|------------------|---------------------------------------------|------------------------------|
| conversion       | redemptions / eligible sales                | two-proportion z (pooled)    |
| 30-day retention | retained_30d / retention_base               | two-proportion z (pooled)    |
| average ticket   | count, sum and sum of squares of the totals | Welch's t (unequal variance) |
| new customers    | new_customers / customers (growth)          | two-proportion z (pooled)    |
| purchases/customer | customers, purchases, Σ purchases²        | Welch's t (activity)         |
| spend/customer   | customers, Σ totals, Σ (spend per customer)² | Welch's t (volume)          |

Those are fixed-horizon tests, right only when read once at a size chosen in advance; the
verdict a manager acts on (:func:`compare_all`) is the mSPRT of ``sequential.py``, valid
however often the results are looked at.

Floats are used for rates and test statistics only; money stays integer minor units.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from fractions import Fraction

from scipy import stats

from gateway.domain.money import Money, allocate_minor
from gateway.domain.promotions.sequential import (
    Difference,
    SequentialResult,
    mean_difference,
    proportion_difference,
    sequential_test,
)
from gateway.errors import InvalidInput

HOLDOUT = "holdout"
BUCKETS = 10_000


@dataclass(frozen=True, slots=True)
class Variant:
    """One arm of an experiment; ``weight`` sizes its share of the buckets not held out."""

    name: str
    weight: int


@dataclass(frozen=True, slots=True)
class Experiment:
    """Variants in bucket order, and the share held out of all of them, in basis points."""

    id: str
    variants: tuple[Variant, ...]
    holdout_bp: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "variants", tuple(self.variants))
        if not isinstance(self.id, str) or not self.id:
            raise InvalidInput("an experiment needs a non-empty id")
        if not self.variants:
            raise InvalidInput(f"experiment {self.id!r} needs at least one variant")
        names = [variant.name for variant in self.variants]
        if len(set(names)) != len(names) or HOLDOUT in names:
            raise InvalidInput(
                f"experiment {self.id!r}: variant names must be unique and not {HOLDOUT!r}, "
                f"got {names}"
            )
        for variant in self.variants:
            w = variant.weight
            if isinstance(w, bool) or not isinstance(w, int) or w <= 0:
                raise InvalidInput(
                    f"experiment {self.id!r}: variant {variant.name!r} needs a whole weight > 0"
                )
        h = self.holdout_bp
        if isinstance(h, bool) or not isinstance(h, int) or not 0 <= h < BUCKETS:
            raise InvalidInput(
                f"experiment {self.id!r}: holdout must be 0..9999 basis points (10 % is 1000)"
            )

    def bucket_counts(self) -> list[int]:
        """How many of the 10 000 buckets each variant gets, in variant order."""
        weights = [variant.weight for variant in self.variants]
        return allocate_minor(BUCKETS - self.holdout_bp, weights)


def bucket(experiment_id: str, customer_key: str) -> int:
    """The customer's bucket in ``0..9999`` for this experiment (see the module docstring)."""
    data = f"{experiment_id}\x1f{customer_key}".encode()
    return int.from_bytes(hashlib.sha256(data).digest()[:8], "big") % BUCKETS


def assign(experiment: Experiment, customer_key: str) -> str:
    """The variant name the customer gets, or ``HOLDOUT``; the same on every call, everywhere."""
    b = bucket(experiment.id, customer_key)
    if b < experiment.holdout_bp:
        return HOLDOUT
    end = experiment.holdout_bp
    for variant, count in zip(experiment.variants, experiment.bucket_counts(), strict=True):
        end += count
        if b < end:
            return variant.name
    raise AssertionError("the variants' buckets always add up to 10 000")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class VariantFigures:
    """What one variant (or the control) achieved during the experiment; counts and money."""

    name: str
    customers: int
    eligible: int
    redemptions: int
    purchases: int
    ticket_sum_minor: int
    ticket_sumsq_minor: int
    new_customers: int
    retained_30d: int
    retention_base: int
    cost_minor: int
    # Per customer: the sum of (purchases)² and of (spend)², for the activity and volume tests
    # (0 when not counted: those tests are then left out).
    purchases_sumsq: int = 0
    spend_sumsq_minor: int = 0

    def __post_init__(self) -> None:
        for label in (
            "customers", "eligible", "redemptions", "purchases", "ticket_sum_minor",
            "ticket_sumsq_minor", "new_customers", "retained_30d", "retention_base", "cost_minor",
            "purchases_sumsq", "spend_sumsq_minor",
        ):  # fmt: skip
            value = getattr(self, label)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"{self.name}: {label} must be a whole number ≥ 0")
        if self.redemptions > self.eligible or self.retained_30d > self.retention_base:
            raise InvalidInput(
                f"{self.name}: redemptions cannot exceed eligible sales, nor retained customers "
                "their retention base"
            )

    @property
    def conversion(self) -> float:
        """Share of eligible sales on which the promotion applied (0.0 with no eligible sale)."""
        return self.redemptions / self.eligible if self.eligible else 0.0

    @property
    def average_ticket_minor(self) -> int:
        """Mean paid total in minor units, rounded half up (0 with no purchase)."""
        if not self.purchases:
            return 0
        return (2 * self.ticket_sum_minor + self.purchases) // (2 * self.purchases)

    @property
    def purchases_per_customer(self) -> float:
        return self.purchases / self.customers if self.customers else 0.0

    @property
    def new_share(self) -> float:
        """Share of the variant's customers who were new to the merchant."""
        return self.new_customers / self.customers if self.customers else 0.0

    @property
    def spend_per_customer_minor(self) -> int:
        """Paid totals per customer in minor units, rounded half up (0 with no customer)."""
        if not self.customers:
            return 0
        return (2 * self.ticket_sum_minor + self.customers) // (2 * self.customers)

    @property
    def retention(self) -> float:
        """Share of the retention base who bought again within 30 days."""
        return self.retained_30d / self.retention_base if self.retention_base else 0.0


@dataclass(frozen=True, slots=True)
class TestResult:
    """One metric compared; ``statistic`` is positive when the treatment is higher."""

    metric: str
    test: str
    control: float
    treatment: float
    statistic: float
    p_value: float
    significant: bool

    __test__ = False  # not a pytest test class, despite the name


def two_proportion_z(x1: int, n1: int, x2: int, n2: int) -> tuple[float, float]:
    """Pooled two-proportion z-test of ``x1/n1`` against ``x2/n2``: ``(z, two-sided p)``.

    ``z`` is positive when the first proportion is higher. With an empty group, or when every
    observation (or none) is a success, there is nothing to test: ``(0.0, 1.0)``.
    """
    for x, n in ((x1, n1), (x2, n2)):
        if not 0 <= x <= n:
            raise InvalidInput(f"a proportion needs 0 ≤ successes ≤ trials, got {x} of {n}")
    if n1 == 0 or n2 == 0:
        return 0.0, 1.0
    pooled = Fraction(x1 + x2, n1 + n2)
    if pooled in (0, 1):
        return 0.0, 1.0
    variance = pooled * (1 - pooled) * (Fraction(1, n1) + Fraction(1, n2))
    z = float(Fraction(x1, n1) - Fraction(x2, n2)) / math.sqrt(variance)
    return z, math.erfc(abs(z) / math.sqrt(2))


def welch_t(
    n1: int, sum1: int, sumsq1: int, n2: int, sum2: int, sumsq2: int
) -> tuple[float, float, float]:
    """Welch's t-test from counts, sums and sums of squares: ``(t, df, two-sided p)``.

    Means and sample variances (n - 1) are computed exactly with fractions, so huge sums of
    squares of minor units do not cancel catastrophically. ``t`` is positive when the first
    mean is higher. With fewer than two values in a group the test is undefined and
    ``(0.0, 0.0, 1.0)`` is returned. With no spread in either group the means are known
    exactly: equal ones give ``(0.0, 0.0, 1.0)``, different ones ``(±inf, n1 + n2 - 2, 0.0)``
    (every ticket of one group differs from every ticket of the other: no chance about it).
    """
    for n, total, sumsq in ((n1, sum1, sumsq1), (n2, sum2, sumsq2)):
        if n < 0 or n * sumsq < total * total:
            raise InvalidInput(
                f"inconsistent aggregates: n={n}, sum={total}, sum of squares={sumsq}"
            )
    if n1 < 2 or n2 < 2:
        return 0.0, 0.0, 1.0
    mean1, mean2 = Fraction(sum1, n1), Fraction(sum2, n2)
    var1 = (sumsq1 - sum1 * mean1) / (n1 - 1)
    var2 = (sumsq2 - sum2 * mean2) / (n2 - 1)
    if var1 == 0 and var2 == 0:
        if mean1 == mean2:
            return 0.0, 0.0, 1.0
        return math.copysign(math.inf, mean1 - mean2), float(n1 + n2 - 2), 0.0
    se1, se2 = var1 / n1, var2 / n2
    t = float(mean1 - mean2) / math.sqrt(se1 + se2)
    df = float((se1 + se2) ** 2 / (se1**2 / (n1 - 1) + se2**2 / (n2 - 1)))
    # Only the difference of the means matters; handing scipy the means themselves would lose
    # it in float rounding when both are large.
    result = stats.ttest_ind_from_stats(
        float(mean1 - mean2), math.sqrt(var1), n1, 0.0, math.sqrt(var2), n2, equal_var=False
    )
    return t, df, float(result.pvalue)


def compare(
    control: VariantFigures,
    treatment: VariantFigures,
    currency: str,
    alpha: float = 0.05,
    min_sample: int = 30,
) -> tuple[list[TestResult], str]:
    """Test conversion, retention and average ticket, and say what it means in plain words."""
    results = [_conversion(control, treatment, alpha)]
    if control.retention_base > 0 and treatment.retention_base > 0:
        results.append(_retention(control, treatment, alpha))
    results.append(_ticket(control, treatment, alpha))
    return results, _verdict(control, treatment, results, currency, min_sample)


def _conversion(control: VariantFigures, treatment: VariantFigures, alpha: float) -> TestResult:
    z, p = two_proportion_z(
        treatment.redemptions, treatment.eligible, control.redemptions, control.eligible
    )
    return TestResult(
        "conversion", "two-proportion z-test", control.conversion, treatment.conversion,
        z, p, p < alpha,
    )  # fmt: skip


def _retention(control: VariantFigures, treatment: VariantFigures, alpha: float) -> TestResult:
    z, p = two_proportion_z(
        treatment.retained_30d, treatment.retention_base,
        control.retained_30d, control.retention_base,
    )  # fmt: skip
    return TestResult(
        "30-day retention", "two-proportion z-test", control.retention, treatment.retention,
        z, p, p < alpha,
    )  # fmt: skip


def _ticket(control: VariantFigures, treatment: VariantFigures, alpha: float) -> TestResult:
    t, _df, p = welch_t(
        treatment.purchases, treatment.ticket_sum_minor, treatment.ticket_sumsq_minor,
        control.purchases, control.ticket_sum_minor, control.ticket_sumsq_minor,
    )  # fmt: skip
    return TestResult(
        "average ticket", "Welch's t-test",
        float(control.average_ticket_minor), float(treatment.average_ticket_minor),
        t, p, p < alpha,
    )  # fmt: skip


def _verdict(
    control: VariantFigures,
    treatment: VariantFigures,
    results: list[TestResult],
    currency: str,
    min_sample: int,
) -> str:
    """A paragraph for a merchant's manager: the figures, whether they differ, and the cost."""
    cost = f"It cost {Money(treatment.cost_minor, currency)}."
    short = [f for f in (control, treatment) if f.eligible < min_sample]
    if short:
        have = " and ".join(f"{_who(f, control)} has {f.eligible}" for f in short)
        return (
            f"Not enough data yet: a fair comparison needs at least {min_sample} eligible sales "
            f"in each group ({have}). {cost}"
        )
    by_metric = {result.metric: result for result in results}
    conv = by_metric["conversion"]
    sentences = [
        f"{_title(treatment.name)} converts {_pct(conv.treatment)} of eligible sales against "
        f"{_pct(conv.control)} for control ({_points(conv)}); {_significance(conv)}."
    ]
    if "30-day retention" in by_metric:
        ret = by_metric["30-day retention"]
        sentences.append(
            f"30-day retention {_pct(ret.treatment)} against {_pct(ret.control)} "
            f"({_points(ret)}): {_significance(ret, short_form=True)}."
        )
    ticket = by_metric["average ticket"]
    sentences.append(
        f"Average ticket {Money(treatment.average_ticket_minor, currency)} against "
        f"{Money(control.average_ticket_minor, currency)}: "
        f"{_significance(ticket, short_form=True)}."
    )
    sentences.append(cost)
    return " ".join(sentences)


def _who(figures: VariantFigures, control: VariantFigures) -> str:
    return "control" if figures is control else figures.name


def _title(name: str) -> str:
    return name if name.lower().startswith("variant") else f"Variant {name}"


def _pct(rate: float) -> str:
    return f"{rate * 100:.1f} %"


def _points(result: TestResult) -> str:
    return f"{(result.treatment - result.control) * 100:+.1f} points"


def _significance(result: TestResult, short_form: bool = False) -> str:
    p = f"p = {result.p_value:.3f}" if result.p_value >= 0.001 else "p < 0.001"
    if result.significant:
        return f"the difference is statistically significant ({p})"
    if short_form:
        return f"no significant difference ({p})"
    return f"the difference is not statistically significant ({p})"


# --- every metric, and a verdict valid at any look ---------------------------------------------


@dataclass(frozen=True, slots=True)
class Judgement:
    """A comparison with every metric: the fixed-horizon tests (for reference), the
    sequential ones the verdict is drawn from, and the verdict in words."""

    tests: list[TestResult]
    sequential: list[SequentialResult]
    verdict: str


def compare_all(
    control: VariantFigures,
    treatment: VariantFigures,
    currency: str,
    alpha: float = 0.05,
    min_sample: int = 30,
) -> Judgement:
    """Conversion, retention, average ticket, growth (new customers), activity (purchases per
    customer) and volume (spend per customer): each tested at a fixed horizon and with the
    mSPRT (``sequential.py``); significance in the verdict is the mSPRT's, so a manager may
    read the page every day without inflating the false-positive rate."""
    tests, _ = compare(control, treatment, currency, alpha, min_sample)
    c, t = control, treatment
    tests.append(
        _proportion(
            "new customers",
            t.new_customers,
            t.customers,
            c.new_customers,
            c.customers,
            c.new_share,
            t.new_share,
            alpha,
        )
    )
    if c.purchases_sumsq and t.purchases_sumsq:
        tests.append(
            _means(
                "purchases per customer",
                alpha,
                c.purchases_per_customer,
                t.purchases_per_customer,
                t.customers,
                t.purchases,
                t.purchases_sumsq,
                c.customers,
                c.purchases,
                c.purchases_sumsq,
            )
        )
    if c.spend_sumsq_minor and t.spend_sumsq_minor:
        tests.append(
            _means(
                "spend per customer",
                alpha,
                float(c.spend_per_customer_minor),
                float(t.spend_per_customer_minor),
                t.customers,
                t.ticket_sum_minor,
                t.spend_sumsq_minor,
                c.customers,
                c.ticket_sum_minor,
                c.spend_sumsq_minor,
            )
        )
    sequential = [
        sequential_test(m, _difference(m, c, t), alpha) for m in (r.metric for r in tests)
    ]
    decisions = [
        TestResult(r.metric, "mSPRT", r.control, r.treatment, r.statistic, s.p_value, s.significant)
        for r, s in zip(tests, sequential, strict=True)
    ]
    verdict = _verdict(control, treatment, decisions, currency, min_sample)
    if not verdict.startswith("Not enough data"):
        extra = [
            f"{d.metric.capitalize()}: {_significance(d, short_form=True)}."
            for d in decisions[-3:]
            if d.metric in ("new customers", "purchases per customer", "spend per customer")
        ]
        cost_at = verdict.rindex("It cost")
        verdict = " ".join([verdict[:cost_at].strip(), *extra, verdict[cost_at:]])
    return Judgement(tests, sequential, verdict)


def _proportion(
    metric: str,
    x_t: int,
    n_t: int,
    x_c: int,
    n_c: int,
    rate_c: float,
    rate_t: float,
    alpha: float,
) -> TestResult:
    z, p = two_proportion_z(min(x_t, n_t), n_t, min(x_c, n_c), n_c)
    return TestResult(metric, "two-proportion z-test", rate_c, rate_t, z, p, p < alpha)


def _means(
    metric: str, alpha: float, value_c: float, value_t: float, *aggregates: int
) -> TestResult:
    t, _df, p = welch_t(*aggregates)
    return TestResult(metric, "Welch's t-test", value_c, value_t, t, p, p < alpha)


def _difference(metric: str, c: VariantFigures, t: VariantFigures) -> Difference | None:
    if metric == "conversion":
        return proportion_difference(t.redemptions, t.eligible, c.redemptions, c.eligible)
    if metric == "30-day retention":
        return proportion_difference(
            t.retained_30d, t.retention_base, c.retained_30d, c.retention_base
        )
    if metric == "average ticket":
        return mean_difference(
            t.purchases,
            t.ticket_sum_minor,
            t.ticket_sumsq_minor,
            c.purchases,
            c.ticket_sum_minor,
            c.ticket_sumsq_minor,
        )
    if metric == "new customers":
        return proportion_difference(
            min(t.new_customers, t.customers),
            t.customers,
            min(c.new_customers, c.customers),
            c.customers,
        )
    if metric == "purchases per customer":
        return mean_difference(
            t.customers, t.purchases, t.purchases_sumsq, c.customers, c.purchases, c.purchases_sumsq
        )
    return mean_difference(
        t.customers,
        t.ticket_sum_minor,
        t.spend_sumsq_minor,
        c.customers,
        c.ticket_sum_minor,
        c.spend_sumsq_minor,
    )
