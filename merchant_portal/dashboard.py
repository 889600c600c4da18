"""The portal's first page: how the merchant (or one store) did over a day, week, month or
chosen period, drawn as inline SVG charts, each with its numbers and a CSV export.

Each chart is a :class:`Panel`: a title, the SVG pictures (one per currency for money), and the
table the pictures are drawn from; the page shows the table under a ``<details>`` and the CSV
export writes the same rows, so the three can never disagree.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from gateway.adapters.db import UnitOfWork
from gateway.adapters.i18n import gettext as _
from gateway.domain.money import Money
from gateway.entrypoints import input_guard
from gateway.errors import InvalidInput
from gateway.services.dashboard import dashboard_reads as reads
from gateway.services.staff.audit import csv_safe
from gateway.services.staff.auth import StaffContext
from gateway.services.staff.scope import Scope
from gateway.services.staff.stores import merchant_stores
from merchant_portal.charts import Series, bar_chart, line_chart

PERIODS = ("day", "week", "month", "custom")
MAX_DAYS = 366
METHODS = ("qr", "card")


@dataclass
class DashboardQuery:
    """The dashboard's choices as typed in the URL, checked, with errors in words."""

    period: str = "month"
    date_from: date | None = None
    date_to: date | None = None
    store_id: int | None = None
    errors: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> DashboardQuery:
        query = cls()
        period = args.get("period", "month") or "month"
        if period not in PERIODS:
            query.errors.append(_("“%(period)s” is not a period.", period=period))
        else:
            query.period = period
        for name, label in (("from", _("From")), ("to", _("To"))):
            text = args.get(name, "")
            if text:
                try:
                    value = input_guard.calendar_date(text, label)
                except InvalidInput as exc:
                    query.errors.append(f"{exc.message}.")
                    continue
                setattr(query, "date_from" if name == "from" else "date_to", value)
        store = args.get("store", "")
        if store:
            try:
                query.store_id = input_guard.whole_number(store, _("Store"), low=1, high=2**31)
            except InvalidInput as exc:
                query.errors.append(f"{exc.message}.")
        return query

    @property
    def http_status(self) -> int:
        return 422 if self.errors else 200

    def days(self, today: date) -> tuple[date, date]:
        """The local days the period covers, ending today unless chosen."""
        if self.period == "custom":
            first = self.date_from or today - timedelta(days=29)
            last = self.date_to or today
            if first > last:
                self.errors.append(_("The From date is after the To date."))
                return today, today
            if (last - first).days >= MAX_DAYS:
                self.errors.append(_("Choose at most %(n)s days.", n=MAX_DAYS))
                return last - timedelta(days=MAX_DAYS - 1), last
            return first, last
        length = {"day": 1, "week": 7, "month": 30}[self.period]
        return today - timedelta(days=length - 1), today

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args: dict[str, Any] = {"period": self.period, "store": self.store_id}
        if self.period == "custom":
            args |= {"from": self.date_from, "to": self.date_to}
        args |= changes
        return {k: v for k, v in args.items() if v}


@dataclass
class Panel:
    """One chart: its pictures, and the rows they are drawn from (also its CSV)."""

    key: str
    title: str
    columns: list[str]
    rows: list[list[Any]]
    charts: list[Markup] = field(default_factory=list)
    note: str = ""


@dataclass
class Dashboard:
    query: DashboardQuery
    period: reads.Period
    stores: list[tuple[int, str]]
    store_name: str | None
    panels: list[Panel]


def scope_for(staff: StaffContext, query: DashboardQuery, stores: list[tuple[int, str]]) -> Scope:
    """The staff member's own scope, narrowed to the chosen store when they may see it."""
    scope = staff.scope
    if scope.store_id is not None:
        query.store_id = scope.store_id
        return scope
    if query.store_id is not None:
        if query.store_id not in {sid for sid, _name in stores}:
            query.errors.append(_("That store is not one of yours."))
            query.store_id = None
            return scope
        return Scope(scope.merchant_id, query.store_id)
    return scope


# Which builder draws each chart (the three turnover charts share their two queries).
GROUPS = {
    "turnover-day": "turnover",
    "turnover-hour": "turnover",
    "average-ticket": "turnover",
    "customers": "customers",
    "retention": "retention",
    "promotions": "promotions",
    "settlement": "settlement",
}


def build(
    uow: UnitOfWork,
    staff: StaffContext,
    query: DashboardQuery,
    now: datetime,
    locale: str,
    only: str | None = None,
) -> Dashboard:
    """Every chart, or with ``only`` the charts of that one's group (for its CSV)."""
    rows = merchant_stores(uow, staff.merchant_id)
    stores = [(s.id, s.name) for s in rows if staff.scope.covers(s.merchant_id, s.id)]
    scope = scope_for(staff, query, stores)
    zones = {s.timezone for s in rows if scope.covers(s.merchant_id, s.id)}
    tz = zones.pop() if len(zones) == 1 else "UTC"
    today = now.astimezone(ZoneInfo(tz)).date()
    first, last = query.days(today)
    period = reads.Period(first, last, tz)
    labels = [d.isoformat() for d in period.days()]
    wanted = {GROUPS[only]} if only in GROUPS else set() if only else set(GROUPS.values())
    panels = []
    if "turnover" in wanted:
        panels += _turnover_panels(uow, scope, period, labels, locale)
    if "customers" in wanted:
        panels.append(_customers_panel(uow, scope, period, labels))
    if "retention" in wanted:
        panels.append(_retention_panel(uow, scope, period, now))
    if "promotions" in wanted:
        panels.append(_promotions_panel(uow, scope, period, locale))
    if "settlement" in wanted and scope.merchant_wide and staff.can("settlement.view"):
        panels.append(_settlement_panel(uow, scope.merchant_id, period, labels, locale))
    names = dict(stores)
    return Dashboard(
        query, period, stores, names.get(scope.store_id) if scope.store_id else None, panels
    )


def _money_fmt(currency: str, locale: str) -> Any:
    def fmt(value: float) -> str:
        return Money(round(value), currency).format(locale)

    return fmt


def _turnover_panels(
    uow: UnitOfWork, scope: Scope, period: reads.Period, labels: list[str], locale: str
) -> list[Panel]:
    by_day = reads.turnover(uow, scope, period, "day")
    by_hour = reads.turnover(uow, scope, period, "hour")
    hours = [f"{h:02d}" for h in range(24)]
    method_names = {"qr": _("Wallet QR"), "card": _("Card")}
    panels = []
    for key, title, rows, axis in (
        ("turnover-day", _("Turnover by day"), by_day, labels),
        ("turnover-hour", _("Turnover by hour of the day"), by_hour, hours),
    ):
        panel = Panel(
            key,
            title,
            [
                _("Day") if key == "turnover-day" else _("Hour"),
                _("Method"),
                _("Currency"),
                _("Payments"),
                _("Turnover (minor units)"),
            ],
            [[r.bucket, r.method, r.currency, r.count, r.amount_minor] for r in rows],
        )
        for currency in sorted({r.currency for r in rows}):
            amounts: dict[str, dict[str, int]] = defaultdict(dict)
            counts: dict[str, dict[str, int]] = defaultdict(dict)
            for r in rows:
                if r.currency == currency:
                    amounts[r.method][r.bucket] = r.amount_minor
                    counts[r.method][r.bucket] = r.count
            methods = [m for m in (*METHODS, *sorted(set(amounts) - set(METHODS))) if m in amounts]
            panel.charts.append(
                bar_chart(
                    f"{title} ({currency})",
                    _short(axis),
                    [
                        Series(method_names.get(m, m), [amounts[m].get(b, 0) for b in axis])
                        for m in methods
                    ],
                    _money_fmt(currency, locale),
                    stacked=True,
                )
            )
            panel.charts.append(
                bar_chart(
                    _("Payments (%(currency)s)", currency=currency),
                    _short(axis),
                    [
                        Series(method_names.get(m, m), [counts[m].get(b, 0) for b in axis])
                        for m in methods
                    ],
                    stacked=True,
                )
            )
        panels.append(panel)
    ticket = Panel(
        "average-ticket",
        _("Average ticket by day"),
        [_("Day"), _("Currency"), _("Payments"), _("Average ticket (minor units)")],
        [],
    )
    sums: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for r in by_day:
        acc = sums[(r.currency, r.bucket)]
        acc[0] += r.count
        acc[1] += r.amount_minor
    for (currency, day), (count, total) in sorted(sums.items()):
        ticket.rows.append([day, currency, count, (2 * total + count) // (2 * count)])
    for currency in sorted({c for c, _d in sums}):
        values = {d: row[3] for row in ticket.rows if row[1] == currency for d in [row[0]]}
        ticket.charts.append(
            line_chart(
                f"{ticket.title} ({currency})",
                _short(labels),
                [Series(_("Average ticket"), [values.get(d, 0) for d in labels])],
                _money_fmt(currency, locale),
            )
        )
    panels.append(ticket)
    return panels


def _customers_panel(
    uow: UnitOfWork, scope: Scope, period: reads.Period, labels: list[str]
) -> Panel:
    days = {c.day: c for c in reads.customers(uow, scope, period)}
    panel = Panel(
        "customers",
        _("Wallet customers: new and returning"),
        [_("Day"), _("Active"), _("New"), _("Returning")],
        [[c.day, c.active, c.new, c.returning] for c in days.values()],
    )
    empty = reads.CustomerDay("", 0, 0)
    panel.charts.append(
        bar_chart(
            panel.title,
            _short(labels),
            [
                Series(_("New"), [days.get(d, empty).new for d in labels]),
                Series(_("Returning"), [days.get(d, empty).returning for d in labels]),
            ],
            stacked=True,
        )
    )
    active = sum(c.active for c in days.values())
    new = sum(c.new for c in days.values())
    panel.note = _(
        "%(new)s new customers; %(active)s customer-days with a purchase in the period.",
        new=new,
        active=active,
    )
    return panel


def _retention_panel(uow: UnitOfWork, scope: Scope, period: reads.Period, now: datetime) -> Panel:
    cohorts = reads.retention(uow, scope, period, now)
    columns = [_("Cohort (first purchase)"), _("Customers")]
    for n in reads.RETENTION_DAYS:
        columns += [_("Base %(n)s d", n=n), _("Retained %(n)s d", n=n)]
    panel = Panel(
        "retention",
        _("Retention by cohort (bought again within 30, 60, 90 days)"),
        columns,
        [
            [c.month, c.customers, *(v for n in reads.RETENTION_DAYS for v in c.retention[n])]
            for c in cohorts
        ],
    )
    series = []
    for n in reads.RETENTION_DAYS:
        rates = []
        for c in cohorts:
            base, kept = c.retention[n]
            rates.append(100 * kept / base if base else 0)
        series.append(Series(_("%(n)s days", n=n), rates))
    panel.charts.append(
        bar_chart(panel.title, [c.month for c in cohorts], series, lambda v: f"{v:.0f} %")
    )
    panel.note = _("A cohort counts towards N days once its first purchase is N days old.")
    return panel


def _promotions_panel(uow: UnitOfWork, scope: Scope, period: reads.Period, locale: str) -> Panel:
    costs = reads.promotion_costs(uow, scope, period)
    baseline = {t.currency: t for t in reads.tickets(uow, scope, period)}
    panel = Panel(
        "promotions",
        _("Promotion cost and uplift"),
        [
            _("Promotion"),
            _("Currency"),
            _("Uses"),
            _("Cost (minor units)"),
            _("Average ticket (minor units)"),
            _("Without promotions (minor units)"),
            _("Uplift (minor units)"),
        ],
        [],
    )
    for c in costs:
        avg = (2 * c.ticket_sum_minor + c.uses) // (2 * c.uses) if c.uses else 0
        base = baseline.get(c.currency)
        plain = (
            (2 * base.without_sum_minor + base.without_count) // (2 * base.without_count)
            if base and base.without_count
            else 0
        )
        panel.rows.append([c.key, c.currency, c.uses, c.cost_minor, avg, plain, avg - plain])
    for currency in sorted({c.currency for c in costs}):
        mine = [r for r in panel.rows if r[1] == currency]
        panel.charts.append(
            bar_chart(
                f"{panel.title} ({currency})",
                [r[0] for r in mine],
                [
                    Series(_("Cost"), [r[3] for r in mine]),
                    Series(_("Uplift per ticket"), [r[6] for r in mine]),
                ],
                _money_fmt(currency, locale),
            )
        )
    panel.note = _(
        "Uplift compares the average ticket of sales with the promotion to sales without any; "
        "it is not causal: run an experiment for that."
    )
    return panel


def _settlement_panel(
    uow: UnitOfWork, merchant_id: int, period: reads.Period, labels: list[str], locale: str
) -> Panel:
    rows = reads.settlement_differences(uow, merchant_id, period)
    panel = Panel(
        "settlement",
        _("Settlement differences"),
        [
            _("Day"),
            _("Currency"),
            _("Expected (minor units)"),
            _("Settled (minor units)"),
            _("Difference (minor units)"),
        ],
        [[r.day, r.currency, r.expected_minor, r.settled_minor, r.difference_minor] for r in rows],
    )
    for currency in sorted({r.currency for r in rows}):
        values = {r.day: r.difference_minor for r in rows if r.currency == currency}
        panel.charts.append(
            bar_chart(
                f"{panel.title} ({currency})",
                _short(labels),
                [Series(_("Difference"), [values.get(d, 0) for d in labels])],
                _money_fmt(currency, locale),
            )
        )
    panel.note = _("Days the reconciliation has run; the difference is the bank's net minus ours.")
    return panel


def to_csv(panel: Panel) -> str:
    """The panel's numbers as CSV; a text cell (a store's, till's or promotion's name) that a
    spreadsheet would run as a formula is quoted, numbers stay numbers."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow([csv_safe(c) for c in panel.columns])
    writer.writerows([csv_safe(v) if isinstance(v, str) else v for v in r] for r in panel.rows)
    return out.getvalue()


def _short(labels: list[str]) -> list[str]:
    """Days as MM-DD under a chart (the year is in the page's title); hours unchanged."""
    return [label[5:] if len(label) == 10 else label for label in labels]
