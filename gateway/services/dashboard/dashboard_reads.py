"""What the portal's dashboard reads: turnover, customers, retention, promotions and
settlement over a period, for one merchant or one store.

Every figure is summed by the database (``GROUP BY``): a month of a busy merchant is a few
hundred rows whatever the number of sales. Money stays integer minor units and is always
grouped by currency, so no sum ever mixes two currencies.

Days and hours are the stores' local ones. PostgreSQL converts with ``timezone(zone, ts)``;
SQLite has no time zones, so the offset is chosen by a ``CASE`` over the zone's transitions
inside the period (from ``zoneinfo``), which is exact across a DST change too.

- turnover and count: payments that were paid (paid, settled, refunded in part or whole), by
  ``paid_at``, gross;
- customers: paid sales with a wallet customer; *new* when their first paid sale in scope falls
  in the day;
- retention N days: of a cohort (month of the first paid sale), those whose first sale is at
  least N days old (the base) and those of them with another paid sale within N days;
- promotion cost: committed discounts less what refunds took back, on paid sales;
- settlement difference: the reconciliation's day summaries (bank net minus expected net).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, and_, case, func, literal, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment
from gateway.adapters.promotion_models import PromotionRow, Sale, SalePromotion
from gateway.services.settlement.settlement_reads import day_summaries
from gateway.services.staff.scope import Scope, narrow

PAID_STATES = ("paid", "settled", "partially_refunded", "refunded")
RETENTION_DAYS = (30, 60, 90)
COHORT_MONTHS = 6
FORMATS = {
    "day": ("%Y-%m-%d", "YYYY-MM-DD"),
    "hour": ("%H", "HH24"),
    "month": ("%Y-%m", "YYYY-MM"),
}


@dataclass(frozen=True, slots=True)
class Period:
    """Local calendar days ``first``..``last`` (inclusive) in the zone ``tz``."""

    first: date
    last: date
    tz: str = "UTC"

    @property
    def start(self) -> datetime:
        return datetime.combine(self.first, datetime.min.time(), ZoneInfo(self.tz)).astimezone(UTC)

    @property
    def end(self) -> datetime:
        """The first instant after the period (exclusive)."""
        following = self.last + timedelta(days=1)
        return datetime.combine(following, datetime.min.time(), ZoneInfo(self.tz)).astimezone(UTC)

    def days(self) -> list[date]:
        return [self.first + timedelta(days=n) for n in range((self.last - self.first).days + 1)]


@dataclass(frozen=True, slots=True)
class Turnover:
    bucket: str  # a local day (YYYY-MM-DD) or hour of the day (00..23)
    method: str
    currency: str
    count: int
    amount_minor: int


@dataclass(frozen=True, slots=True)
class CustomerDay:
    day: str
    active: int
    new: int

    @property
    def returning(self) -> int:
        return self.active - self.new


@dataclass(frozen=True, slots=True)
class Cohort:
    """Customers whose first paid sale was in ``month``; per N: (base, retained)."""

    month: str
    customers: int
    retention: dict[int, tuple[int, int]]


@dataclass(frozen=True, slots=True)
class PromotionCost:
    key: str
    name: str
    currency: str
    uses: int
    cost_minor: int
    ticket_sum_minor: int


@dataclass(frozen=True, slots=True)
class Tickets:
    """Paid sales of a currency with and without any promotion: count and sum of totals."""

    currency: str
    with_count: int
    with_sum_minor: int
    without_count: int
    without_sum_minor: int


@dataclass(frozen=True, slots=True)
class SettlementDifference:
    day: str
    currency: str
    expected_minor: int
    settled_minor: int
    difference_minor: int


def _dialect(uow: UnitOfWork) -> str:
    return uow.session.get_bind().dialect.name


@lru_cache(maxsize=256)
def _offsets(tz: str, start: datetime, end: datetime) -> tuple[tuple[datetime, int], ...]:
    """``((until, offset minutes), …)``: the zone's UTC offset in force before each instant.

    Walked a day at a time; a day whose offset changes is walked again by the hour (zones
    change on the hour)."""
    zone = ZoneInfo(tz)

    def offset(moment: datetime) -> int:
        return int(moment.astimezone(zone).utcoffset().total_seconds() // 60)  # type: ignore[union-attr]

    segments: list[tuple[datetime, int]] = []
    moment = start.replace(minute=0, second=0, microsecond=0)
    current = offset(moment)
    while moment < end:
        following = moment + timedelta(days=1)
        if offset(following) != current:
            following = moment + timedelta(hours=1)
            while offset(following) == current:
                following += timedelta(hours=1)
            segments.append((following, current))
            current = offset(following)
        moment = following
    segments.append((end, current))
    return tuple(segments)


def local(
    uow: UnitOfWork, column: Any, kind: str, tz: str, start: datetime, end: datetime
) -> ColumnElement[str]:
    """``column`` (a UTC timestamp between ``start`` and ``end``) as local text: day, hour of
    the day or month, by the database's own functions."""
    sqlite_format, pg_format = FORMATS[kind]
    if _dialect(uow) == "postgresql":
        return func.to_char(func.timezone(tz, column), pg_format)
    segments = _offsets(tz, start, end)
    if len(segments) == 1:
        modifier: Any = literal(f"{segments[0][1]:+d} minutes")
    else:
        modifier = case(
            *((column < until, f"{minutes:+d} minutes") for until, minutes in segments[:-1]),
            else_=f"{segments[-1][1]:+d} minutes",
        )
    return func.strftime(sqlite_format, column, modifier)


def _days_between(uow: UnitOfWork, earlier: Any, later: Any) -> Any:
    if _dialect(uow) == "postgresql":
        return func.extract("epoch", later - earlier) / 86400
    return func.julianday(later) - func.julianday(earlier)


def turnover(uow: UnitOfWork, scope: Scope, period: Period, by: str) -> list[Turnover]:
    """Paid payments per local ``day`` or ``hour`` of the day, method and currency."""
    bucket = local(uow, Payment.paid_at, by, period.tz, period.start, period.end).label("bucket")
    rows = uow.session.execute(
        select(
            bucket, Payment.method, Payment.currency, func.count(), func.sum(Payment.amount_minor)
        )
        .where(
            narrow(scope, Payment.merchant_id, Payment.store_id),
            Payment.status.in_(PAID_STATES),
            Payment.paid_at >= period.start,
            Payment.paid_at < period.end,
        )
        .group_by(bucket, Payment.method, Payment.currency)
        .order_by(bucket, Payment.method, Payment.currency)
    )
    return [Turnover(b, m, c, int(n), int(s or 0)) for b, m, c, n, s in rows]


def _paid_sales(scope: Scope) -> ColumnElement[bool]:
    return and_(narrow(scope, Sale.merchant_id, Sale.store_id), Sale.status == "paid")


def _first_sales(scope: Scope) -> Any:
    """Each wallet customer's first paid sale inside the scope."""
    return (
        select(Sale.customer_id.label("customer_id"), func.min(Sale.created_at).label("first"))
        .where(_paid_sales(scope), Sale.customer_id.is_not(None))
        .group_by(Sale.customer_id)
        .subquery()
    )


def customers(uow: UnitOfWork, scope: Scope, period: Period) -> list[CustomerDay]:
    """Per local day: distinct wallet customers with a paid sale, and how many were new."""
    day = local(uow, Sale.created_at, "day", period.tz, period.start, period.end).label("day")
    active = dict(
        uow.session.execute(
            select(day, func.count(func.distinct(Sale.customer_id)))
            .where(
                _paid_sales(scope),
                Sale.customer_id.is_not(None),
                Sale.created_at >= period.start,
                Sale.created_at < period.end,
            )
            .group_by(day)
        ).all()
    )
    first = _first_sales(scope)
    first_day = local(uow, first.c.first, "day", period.tz, period.start, period.end).label("d")
    new = dict(
        uow.session.execute(
            select(first_day, func.count())
            .where(first.c.first >= period.start, first.c.first < period.end)
            .group_by(first_day)
        ).all()
    )
    return [
        CustomerDay(d, int(active.get(d, 0)), int(new.get(d, 0)))
        for d in sorted(set(active) | set(new))
    ]


def retention(uow: UnitOfWork, scope: Scope, period: Period, now: datetime) -> list[Cohort]:
    """30/60/90-day retention of the cohorts (month of the first paid sale) of the
    ``COHORT_MONTHS`` months up to the period's last; a cohort member counts towards N only
    once their first sale is at least N days old."""
    last_month = period.last.replace(day=1)
    first_month = last_month
    for _ in range(COHORT_MONTHS - 1):
        first_month = (first_month - timedelta(days=1)).replace(day=1)
    cohorts = Period(first_month, period.last, period.tz)
    first = _first_sales(scope)
    again = (
        select(Sale.customer_id.label("customer_id"), func.min(Sale.created_at).label("next"))
        .join(first, first.c.customer_id == Sale.customer_id)
        .where(_paid_sales(scope), Sale.created_at > first.c.first)
        .group_by(Sale.customer_id)
        .subquery()
    )
    month = local(uow, first.c.first, "month", cohorts.tz, cohorts.start, cohorts.end)
    month = month.label("month")
    gap = _days_between(uow, first.c.first, again.c.next)
    columns: list[Any] = [month, func.count()]
    for n in RETENTION_DAYS:
        old_enough = first.c.first <= now - timedelta(days=n)
        columns.append(func.sum(case((old_enough, 1), else_=0)))
        columns.append(
            func.sum(case((and_(old_enough, again.c.next.is_not(None), gap <= n), 1), else_=0))
        )
    rows = uow.session.execute(
        select(*columns)
        .select_from(first.outerjoin(again, again.c.customer_id == first.c.customer_id))
        .where(first.c.first >= cohorts.start, first.c.first < cohorts.end)
        .group_by(month)
        .order_by(month)
    )
    out = []
    for row in rows:
        figures = [int(v or 0) for v in row[2:]]
        out.append(
            Cohort(
                row[0],
                int(row[1]),
                {n: (figures[2 * i], figures[2 * i + 1]) for i, n in enumerate(RETENTION_DAYS)},
            )
        )
    return out


def promotion_costs(uow: UnitOfWork, scope: Scope, period: Period) -> list[PromotionCost]:
    """Per promotion and currency: uses, discounts given (less refunds), paid totals."""
    rows = uow.session.execute(
        select(
            PromotionRow.key,
            PromotionRow.name,
            Sale.currency,
            func.count(),
            func.sum(SalePromotion.discount_minor - SalePromotion.returned_discount_minor),
            func.sum(Sale.total_after_minor),
        )
        .join(Sale, Sale.id == SalePromotion.sale_id)
        .join(PromotionRow, PromotionRow.id == SalePromotion.promotion_id)
        .where(
            _paid_sales(scope),
            SalePromotion.state == "committed",
            Sale.created_at >= period.start,
            Sale.created_at < period.end,
        )
        .group_by(PromotionRow.key, PromotionRow.name, Sale.currency)
        .order_by(Sale.currency, PromotionRow.key)
    )
    return [PromotionCost(k, n, c, int(u), int(m or 0), int(t or 0)) for k, n, c, u, m, t in rows]


def tickets(uow: UnitOfWork, scope: Scope, period: Period) -> list[Tickets]:
    """Paid sales per currency with and without a committed promotion (for the uplift)."""
    promoted = (
        select(SalePromotion.sale_id)
        .where(SalePromotion.state == "committed", SalePromotion.discount_minor > 0)
        .distinct()
        .subquery()
    )
    has = promoted.c.sale_id.is_not(None)
    rows = uow.session.execute(
        select(
            Sale.currency,
            func.sum(case((has, 1), else_=0)),
            func.sum(case((has, Sale.total_after_minor), else_=0)),
            func.sum(case((has, 0), else_=1)),
            func.sum(case((has, 0), else_=Sale.total_after_minor)),
        )
        .outerjoin(promoted, promoted.c.sale_id == Sale.id)
        .where(_paid_sales(scope), Sale.created_at >= period.start, Sale.created_at < period.end)
        .group_by(Sale.currency)
        .order_by(Sale.currency)
    )
    return [Tickets(c, *(int(v or 0) for v in values)) for c, *values in rows]


def settlement_differences(
    uow: UnitOfWork, merchant_id: int, period: Period
) -> list[SettlementDifference]:
    """The reconciliation's days in the period: expected, settled and their difference."""
    out = []
    for day, summaries in sorted(
        day_summaries(uow, merchant_id, period.first, period.last).items()
    ):
        for s in summaries:
            out.append(
                SettlementDifference(
                    day.isoformat(),
                    s.currency,
                    s.expected_minor,
                    s.settled_minor,
                    s.difference_minor,
                )
            )
    return out
