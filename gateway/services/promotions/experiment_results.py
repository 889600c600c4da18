"""An experiment's results: each variant's figures from its customers' paid sales, and each
variant (and the holdout) tested against the control.

Only exposures whose sale is paid count. Per variant:

| figure          | what is counted                                                          |
|-----------------|--------------------------------------------------------------------------|
| customers       | distinct customers with at least one eligible exposure                   |
| eligible        | eligible exposures                                                       |
| redemptions     | eligible exposures on which the variant's promotion applied              |
| purchases       | every exposed paid sale of those customers; the ticket is its total      |
| new customers   | those whose first purchase is not before their first exposure (1 s slack)|
| retention base  | those whose first eligible exposure is at least 30 days old              |
| retained 30 d   | of the base, those with another paid sale within 30 days after it        |
| cost            | discounts and prizes given (the exposures' ``cost_minor``)               |
| Σ purchases², Σ spend² | per customer of the above, for the activity and volume tests      |
| assigned        | distinct customers with any exposure, checked against the split (SRM) |

Each variant is judged against the control by ``compare_all`` (fixed-horizon tests for
reference, the mSPRT for the verdict); the split by a chi-square sample-ratio check.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, case, func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant
from gateway.adapters.promotion_models import Customer, ExperimentExposure, Sale
from gateway.domain.promotions.experiments import (
    BUCKETS,
    HOLDOUT,
    Experiment,
    TestResult,
    Variant,
    VariantFigures,
    compare_all,
)
from gateway.domain.promotions.sequential import SampleRatio, SequentialResult, sample_ratio
from gateway.services.promotions.promotion_admin import get_experiment

RETENTION = timedelta(days=30)
NEW_CUSTOMER_SLACK = timedelta(seconds=1)
E = ExperimentExposure


@dataclass(frozen=True, slots=True)
class Comparison:
    """One variant (or the holdout) against the control: the tests and what they mean."""

    variant: str
    tests: list[TestResult]
    verdict: str
    sequential: list[SequentialResult]


@dataclass(frozen=True, slots=True)
class ExperimentResults:
    key: str
    name: str
    control: str
    holdout_bp: int
    currency: str
    figures: list[VariantFigures]
    comparisons: list[Comparison]
    sample_ratio: SampleRatio

    def to_json(self) -> dict[str, Any]:
        return {
            "experiment": self.key,
            "name": self.name,
            "control": self.control,
            "holdout_bp": self.holdout_bp,
            "currency": self.currency,
            "variants": [asdict(f) for f in self.figures],
            "comparisons": [
                {
                    "variant": c.variant,
                    "verdict": c.verdict,
                    "tests": [_finite(asdict(t)) for t in c.tests],
                    "sequential": [_finite(asdict(s)) for s in c.sequential],
                }
                for c in self.comparisons
            ],
            "sample_ratio": {
                "arms": list(self.sample_ratio.names),
                "observed": list(self.sample_ratio.observed),
                "expected": list(self.sample_ratio.expected),
                "chi2": self.sample_ratio.chi2,
                "p_value": self.sample_ratio.p_value,
                "mismatch": self.sample_ratio.mismatch,
            },
        }


@dataclass
class _Tally:
    customers: int = 0
    eligible: int = 0
    redemptions: int = 0
    purchases: int = 0
    ticket_sum: int = 0
    ticket_sumsq: int = 0
    new_customers: int = 0
    retained: int = 0
    retention_base: int = 0
    cost: int = 0
    purchases_sumsq: int = 0
    spend_sumsq: int = 0
    assigned: int = 0

    def figures(self, name: str) -> VariantFigures:
        return VariantFigures(
            name, self.customers, self.eligible, self.redemptions, self.purchases,
            self.ticket_sum, self.ticket_sumsq, self.new_customers, self.retained,
            self.retention_base, self.cost, self.purchases_sumsq, self.spend_sumsq,
        )  # fmt: skip


def results(
    uow: UnitOfWork, merchant_id: int, experiment_key: str, *, now: datetime
) -> ExperimentResults:
    """Figures per variant and holdout, and each compared with the control."""
    experiment = get_experiment(uow, merchant_id, experiment_key)
    currency = uow.session.get_one(Merchant, merchant_id).default_currency
    paid = and_(E.experiment_id == experiment.id, Sale.status == "paid")
    tallies: dict[str, _Tally] = defaultdict(_Tally)
    _count_exposures(uow, paid, tallies)
    customers = _eligible_customers(paid)
    _count_tickets(uow, paid, customers, tallies)
    _count_per_customer(uow, paid, customers, tallies)
    _count_assigned(uow, paid, tallies)
    _count_customers(uow, merchant_id, customers, now, tallies)

    names = [v["name"] for v in experiment.variants]
    if experiment.holdout_bp or HOLDOUT in tallies:
        names.append(HOLDOUT)
    names += sorted(set(tallies) - set(names))
    figures = [tallies[name].figures(name) for name in names]
    control = next(f for f in figures if f.name == experiment.control)
    comparisons = []
    for f in figures:
        if f is not control:
            judged = compare_all(control, f, currency)
            comparisons.append(Comparison(f.name, judged.tests, judged.verdict, judged.sequential))
    return ExperimentResults(
        experiment.key,
        experiment.name,
        experiment.control,
        experiment.holdout_bp,
        currency,
        figures,
        comparisons,
        _sample_ratio(experiment, names, tallies),
    )


def _sample_ratio(experiment: Any, names: list[str], tallies: dict[str, _Tally]) -> SampleRatio:
    """Customers assigned per arm against the configured split (holdout, then the variants'
    buckets); an arm nobody configured gets weight 0 and is left out of the test."""
    configured = Experiment(
        experiment.key,
        tuple(Variant(v["name"], int(v["weight"])) for v in experiment.variants),
        experiment.holdout_bp,
    )
    weights = dict(zip((v.name for v in configured.variants), configured.bucket_counts(),
                       strict=True))  # fmt: skip
    weights[HOLDOUT] = experiment.holdout_bp
    assert sum(weights.values()) == BUCKETS
    return sample_ratio(
        names, [tallies[n].assigned for n in names], [weights.get(n, 0) for n in names]
    )


def _count_assigned(uow: UnitOfWork, paid: Any, tallies: dict[str, _Tally]) -> None:
    """Distinct customers seen in each arm (eligible or not): what the split is checked on."""
    rows = uow.session.execute(
        select(E.variant, func.count(func.distinct(E.customer_id)))
        .join(Sale, Sale.id == E.sale_id)
        .where(paid)
        .group_by(E.variant)
    )
    for variant, n in rows:
        tallies[variant].assigned = int(n)


def _count_per_customer(
    uow: UnitOfWork, paid: Any, customers: Any, tallies: dict[str, _Tally]
) -> None:
    """Sums of squares of each customer's purchases and spend, grouped by their values so
    the squares are exact Python ints on every database."""
    per_customer = (
        select(
            E.variant.label("variant"),
            func.count().label("n"),
            func.sum(Sale.total_after_minor).label("spend"),
        )
        .join(Sale, Sale.id == E.sale_id)
        .join(
            customers,
            and_(customers.c.variant == E.variant, customers.c.customer_id == E.customer_id),
        )
        .where(paid)
        .group_by(E.variant, E.customer_id)
        .subquery()
    )
    rows = uow.session.execute(
        select(
            per_customer.c.variant, per_customer.c.n, per_customer.c.spend, func.count()
        ).group_by(per_customer.c.variant, per_customer.c.n, per_customer.c.spend)
    )
    for variant, n, spend, k in rows:
        tally, n, spend, k = tallies[variant], int(n), int(spend), int(k)
        tally.purchases_sumsq += k * n * n
        tally.spend_sumsq += k * spend * spend


def _count_exposures(uow: UnitOfWork, paid: Any, tallies: dict[str, _Tally]) -> None:
    rows = uow.session.execute(
        select(
            E.variant,
            func.sum(case((E.eligible, 1), else_=0)),
            func.sum(case((and_(E.eligible, E.redeemed), 1), else_=0)),
            func.sum(E.cost_minor),
        )
        .join(Sale, Sale.id == E.sale_id)
        .where(paid)
        .group_by(E.variant)
    )
    for variant, eligible, redemptions, cost in rows:
        tally = tallies[variant]
        tally.eligible, tally.redemptions = int(eligible or 0), int(redemptions or 0)
        tally.cost = int(cost or 0)


def _eligible_customers(paid: Any) -> Any:
    """Per variant and customer with an eligible exposure: first exposure, first eligible one."""
    return (
        select(
            E.variant.label("variant"),
            E.customer_id.label("customer_id"),
            func.min(E.created_at).label("first_seen"),
            func.min(case((E.eligible, E.created_at))).label("first_eligible"),
        )
        .join(Sale, Sale.id == E.sale_id)
        .where(paid)
        .group_by(E.variant, E.customer_id)
        .having(func.max(case((E.eligible, 1), else_=0)) == 1)
        .subquery()
    )


def _count_tickets(uow: UnitOfWork, paid: Any, customers: Any, tallies: dict[str, _Tally]) -> None:
    # Grouped by ticket value, so the sum of squares is exact in Python ints on every database.
    rows = uow.session.execute(
        select(E.variant, Sale.total_after_minor, func.count())
        .join(Sale, Sale.id == E.sale_id)
        .join(
            customers,
            and_(customers.c.variant == E.variant, customers.c.customer_id == E.customer_id),
        )
        .where(paid)
        .group_by(E.variant, Sale.total_after_minor)
    )
    for variant, total, n in rows:
        tally, total, n = tallies[variant], int(total), int(n)
        tally.purchases += n
        tally.ticket_sum += n * total
        tally.ticket_sumsq += n * total * total


def _count_customers(
    uow: UnitOfWork, merchant_id: int, customers: Any, now: datetime, tallies: dict[str, _Tally]
) -> None:
    rows = uow.session.execute(
        select(
            customers.c.variant,
            customers.c.customer_id,
            customers.c.first_seen,
            customers.c.first_eligible,
            Customer.first_purchase_at,
        ).join(Customer, Customer.id == customers.c.customer_id)
    ).all()
    base: dict[tuple[str, int], datetime] = {}
    for variant, customer_id, first_seen, first_eligible, first_purchase in rows:
        tally = tallies[variant]
        tally.customers += 1
        if first_purchase is not None and first_purchase >= first_seen - NEW_CUSTOMER_SLACK:
            tally.new_customers += 1
        if first_eligible <= now - RETENTION:
            tally.retention_base += 1
            base[(variant, customer_id)] = first_eligible
    for (variant, _), retained in _retained(uow, merchant_id, base).items():
        tallies[variant].retained += retained


def _retained(
    uow: UnitOfWork, merchant_id: int, base: dict[tuple[str, int], datetime]
) -> dict[tuple[str, int], int]:
    """1 for each (variant, customer) with another paid sale within 30 days after the start."""
    ids = sorted({customer_id for _, customer_id in base})
    sales: dict[int, list[datetime]] = defaultdict(list)
    for i in range(0, len(ids), 500):
        for customer_id, created in uow.session.execute(
            select(Sale.customer_id, Sale.created_at).where(
                Sale.merchant_id == merchant_id,
                Sale.status == "paid",
                Sale.customer_id.in_(ids[i : i + 500]),
            )
        ):
            if customer_id is not None:
                sales[customer_id].append(created)
    return {
        (variant, customer_id): int(any(start < t <= start + RETENTION for t in sales[customer_id]))
        for (variant, customer_id), start in base.items()
    }


def _finite(test: dict[str, Any]) -> dict[str, Any]:
    """JSON has no infinity: a certain difference's statistic is written "inf" or "-inf"."""
    return {k: str(v) if isinstance(v, float) and math.isinf(v) else v for k, v in test.items()}
