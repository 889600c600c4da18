"""Anomaly rules: thresholds, windows, opening hours and verdicts, as plain values.

The services count what happened (refunds of a till in the last hour, declines of one card, …)
and ask these functions whether that is an anomaly. A verdict carries the rule, the subject it
is about, a severity and the numbers that triggered it; ``None`` means all is well. Nothing here
reads a clock or a database, so each rule is tested with plain numbers.

- ``refund_ratio`` (till, cashier): refunded ÷ sold ≥ ``refund_ratio_percent``, with at least
  ``refund_ratio_min_refunds`` refunds in the window;
- ``voids`` (till): reversals of approved payments ≥ ``voids_per_till``;
- ``card_declines`` (card token): declines of one masked card ≥ ``card_declines``;
- ``qr_velocity`` / ``refund_velocity`` (till): QR payments or refunds in one minute ≥
  ``qr_payments_per_minute`` / ``refunds_per_minute``;
- ``large_ticket`` (till): an amount above ``large_ticket_factor`` × the store's median or p95,
  once there are ``large_ticket_min_history`` earlier payments;
- ``outside_hours`` (store): a payment or refund while the store is closed (with
  ``outside_hours_grace_minutes`` either side);
- ``login_failures`` (staff, source): failed sign-ins of one person ≥ ``login_failures_per_user``,
  from one address ≥ ``login_failures_per_source``;
- ``attention_flags`` (till, store): payments flagged for a person ≥ ``attention_flags`` at one
  till, ≥ ``attention_flags_per_store`` in one store.

A threshold of 0 turns its rule off. A count reaching twice its threshold is ``critical``,
else ``warning``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

from gateway.errors import InvalidInput


class Rule(StrEnum):
    REFUND_RATIO = "refund_ratio"
    VOIDS = "voids"
    CARD_DECLINES = "card_declines"
    QR_VELOCITY = "qr_velocity"
    REFUND_VELOCITY = "refund_velocity"
    LARGE_TICKET = "large_ticket"
    OUTSIDE_HOURS = "outside_hours"
    LOGIN_FAILURES = "login_failures"
    ATTENTION_FLAGS = "attention_flags"


class Severity(StrEnum):
    WARNING = "warning"
    CRITICAL = "critical"


STATISTICS = ("median", "p95")
# The most a threshold may be: bounds what a form or a TOML file can ask for.
MAX_THRESHOLD = 1_000_000


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Every rule's numbers for one merchant ([monitoring] defaults, the merchant's own over
    them). Counts are whole numbers; 0 turns the rule off."""

    refund_ratio_percent: int = 30
    refund_ratio_min_refunds: int = 3
    refund_ratio_window_minutes: int = 60
    voids_per_till: int = 3
    voids_window_minutes: int = 60
    card_declines: int = 3
    card_declines_window_minutes: int = 30
    qr_payments_per_minute: int = 10
    refunds_per_minute: int = 3
    large_ticket_factor: int = 5
    large_ticket_statistic: str = "p95"
    large_ticket_min_history: int = 20
    large_ticket_history_days: int = 30
    outside_hours_grace_minutes: int = 0
    login_failures_per_user: int = 5
    login_failures_per_source: int = 20
    login_window_minutes: int = 15
    attention_flags: int = 3
    attention_flags_per_store: int = 5
    attention_window_minutes: int = 60

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "large_ticket_statistic":
                if value not in STATISTICS:
                    raise InvalidInput(
                        f"large_ticket_statistic must be one of {', '.join(STATISTICS)}, "
                        f"not {value!r}"
                    )
            elif isinstance(value, bool) or not isinstance(value, int):
                raise InvalidInput(f"{f.name} must be a whole number, not {value!r}")
            elif not 0 <= value <= MAX_THRESHOLD:
                raise InvalidInput(f"{f.name} must be between 0 and {MAX_THRESHOLD}, not {value}")
        if self.refund_ratio_percent and self.refund_ratio_window_minutes == 0:
            raise InvalidInput("refund_ratio_window_minutes must be above 0")

    def with_overrides(self, overrides: Mapping[str, Any]) -> Thresholds:
        """These thresholds with ``overrides`` over them; unknown names are refused."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise InvalidInput(f"unknown monitoring threshold(s): {', '.join(unknown)}")
        return replace(self, **dict(overrides))

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def differences(self, base: Thresholds) -> dict[str, Any]:
        """The values that differ from ``base``: what a merchant stores as its own."""
        mine, theirs = self.as_dict(), base.as_dict()
        return {k: v for k, v in mine.items() if theirs[k] != v}


@dataclass(frozen=True, slots=True)
class Subject:
    """What an alert is about: a till, a cashier, a card token, a store, a person, an address."""

    kind: str
    key: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.key}"


@dataclass(frozen=True, slots=True)
class Verdict:
    """An anomaly: which rule, about whom, how bad, and the numbers behind it."""

    rule: Rule
    subject: Subject
    severity: Severity
    window_minutes: int
    facts: dict[str, Any] = field(default_factory=dict)


def severity(count: int, threshold: int) -> Severity:
    return Severity.CRITICAL if count >= 2 * threshold else Severity.WARNING


def window_key(at: datetime, minutes: int) -> str:
    """The fixed window ``at`` falls in (UTC, aligned to multiples of ``minutes`` since the
    epoch): alerts are deduplicated per rule, subject and this key."""
    if minutes <= 0:
        return "always"
    span = minutes * 60
    start = int(at.timestamp()) // span * span
    return datetime.fromtimestamp(start, UTC).strftime("%Y-%m-%dT%H:%M")


def since(at: datetime, minutes: int) -> datetime:
    """The start of the sliding window of ``minutes`` that ends at ``at``."""
    return at - timedelta(minutes=minutes)


def count_reached(
    rule: Rule, subject: Subject, count: int, threshold: int, window_minutes: int, **facts: Any
) -> Verdict | None:
    """A verdict when ``count`` reached ``threshold`` (a threshold of 0: never)."""
    if threshold <= 0 or count < threshold:
        return None
    return Verdict(
        rule,
        subject,
        severity(count, threshold),
        window_minutes,
        {"count": count, "threshold": threshold, "window_minutes": window_minutes, **facts},
    )


@dataclass(frozen=True, slots=True)
class Tally:
    """How many, and how much in minor units of one currency."""

    count: int
    amount_minor: int


def refund_ratio(
    subject: Subject, refunds: Tally, sales: Tally, currency: str, t: Thresholds
) -> Verdict | None:
    """Refunded ÷ sold, in whole percent, against the threshold; at least
    ``refund_ratio_min_refunds`` refunds, so one refund of one sale is no alert. With no sales
    in the window every refunded amount counts as 100 % or more."""
    if t.refund_ratio_percent <= 0 or refunds.count < max(1, t.refund_ratio_min_refunds):
        return None
    # Integer arithmetic: refunded × 100 ≥ percent × sold, never a float.
    if refunds.amount_minor * 100 < t.refund_ratio_percent * sales.amount_minor:
        return None
    ratio = refunds.amount_minor * 100 // sales.amount_minor if sales.amount_minor else None
    hot = ratio is None or ratio >= 2 * t.refund_ratio_percent
    return Verdict(
        Rule.REFUND_RATIO,
        subject,
        Severity.CRITICAL if hot else Severity.WARNING,
        t.refund_ratio_window_minutes,
        {
            "refunds": refunds.count,
            "refunded": {"minor": refunds.amount_minor, "currency": currency},
            "sales": sales.count,
            "sold": {"minor": sales.amount_minor, "currency": currency},
            "ratio_percent": ratio,
            "threshold_percent": t.refund_ratio_percent,
            "min_refunds": t.refund_ratio_min_refunds,
            "window_minutes": t.refund_ratio_window_minutes,
        },
    )


def percentile(values: Sequence[int], percent: int) -> int:
    """The nearest-rank percentile of ``values`` (not empty): the smallest value with at least
    ``percent`` % of the values at or below it."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    rank = max(1, -(-percent * len(ordered) // 100))  # ceil without floats
    return ordered[rank - 1]


def median(values: Sequence[int]) -> int:
    """The lower median (a whole number of minor units)."""
    ordered = sorted(values)
    return ordered[(len(ordered) - 1) // 2]


def usual_rank(count: int, statistic: str) -> int:
    """Where the usual ticket stands among ``count`` amounts in ascending order (0-based): the
    lower median, or the nearest-rank 95th percentile. A database reads just that one row."""
    if statistic == "median":
        return (count - 1) // 2
    return max(1, -(-95 * count // 100)) - 1


def large_ticket(
    subject: Subject, amount_minor: int, history: Sequence[int], currency: str, t: Thresholds
) -> Verdict | None:
    """A payment above ``large_ticket_factor`` × the store's usual ticket (its median or p95
    over ``large_ticket_history_days``); never with less history than the minimum."""
    if not history:
        return None
    usual = sorted(history)[usual_rank(len(history), t.large_ticket_statistic)]
    return large_ticket_over(subject, amount_minor, usual, len(history), currency, t)


def large_ticket_over(
    subject: Subject, amount_minor: int, usual: int, count: int, currency: str, t: Thresholds
) -> Verdict | None:
    """:func:`large_ticket` from the usual ticket itself and how many amounts it came from."""
    if t.large_ticket_factor <= 0 or count < max(1, t.large_ticket_min_history):
        return None
    limit = t.large_ticket_factor * usual
    if amount_minor <= limit:
        return None
    return Verdict(
        Rule.LARGE_TICKET,
        subject,
        Severity.CRITICAL if amount_minor > 2 * limit else Severity.WARNING,
        24 * 60,
        {
            "amount": {"minor": amount_minor, "currency": currency},
            "usual": {"minor": usual, "currency": currency},
            "statistic": t.large_ticket_statistic,
            "factor": t.large_ticket_factor,
            "limit": {"minor": limit, "currency": currency},
            "history": count,
            "history_days": t.large_ticket_history_days,
        },
    )


# -- opening hours -----------------------------------------------------------------------------

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SPAN = re.compile(r"^(\d{2}):(\d{2})-(\d{2}):(\d{2})$")

# {"mon": [["08:00", "20:00"]], …}: each day's open spans in the store's local time; a day not
# named is closed. A span ending at or before it starts runs past midnight ("22:00-02:00").
OpeningHours = dict[str, list[list[str]]]


def parse_opening_hours(text: str) -> OpeningHours:
    """Opening hours as a person writes them: ``mon-fri 08:00-20:00; sat 09:00-14:00,
    15:00-18:00; sun closed``. Empty text: no opening hours (the rule is off for the store)."""
    hours: OpeningHours = {}
    for part in (p.strip() for p in text.replace("\n", ";").split(";")):
        if not part:
            continue
        days_text, _, spans_text = part.partition(" ")
        days = _days(days_text.strip().lower())
        spans_text = spans_text.strip().lower()
        if spans_text == "closed":
            for day in days:
                hours.pop(day, None)
            continue
        spans = [_span(s.strip()) for s in spans_text.split(",") if s.strip()]
        if not spans:
            raise InvalidInput(f"“{part}” names no hours: write e.g. “mon-fri 08:00-20:00”")
        for day in days:
            hours.setdefault(day, []).extend(spans)
    return hours


def _days(text: str) -> list[str]:
    first, _, last = text.partition("-")
    if first not in DAYS or (last and last not in DAYS):
        raise InvalidInput(f"“{text}” is not a day or a range of days (mon … sun)")
    if not last:
        return [first]
    a, b = DAYS.index(first), DAYS.index(last)
    return [DAYS[(a + i) % 7] for i in range((b - a) % 7 + 1)]


def _span(text: str) -> list[str]:
    match = _SPAN.match(text)
    if not match:
        raise InvalidInput(f"“{text}” is not a span of hours like 08:00-20:00")
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
        raise InvalidInput(f"“{text}” is not a time of day")
    return [f"{h1:02d}:{m1:02d}", f"{h2:02d}:{m2:02d}"]


def format_opening_hours(hours: Mapping[str, Sequence[Sequence[str]]] | None) -> str:
    """The text :func:`parse_opening_hours` reads back to the same hours."""
    if not hours:
        return ""
    return "; ".join(
        f"{day} " + ", ".join(f"{a}-{b}" for a, b in hours[day]) for day in DAYS if hours.get(day)
    )


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    return int(hours) * 60 + int(minutes)


def is_open(hours: Mapping[str, Sequence[Sequence[str]]], local: datetime, grace: int = 0) -> bool:
    """Whether a store with these hours is open at ``local`` (its own wall-clock time), with
    ``grace`` minutes allowed before opening and after closing."""
    week = 7 * 24 * 60
    at = local.weekday() * 24 * 60 + local.hour * 60 + local.minute
    for index, day in enumerate(DAYS):
        for start_text, end_text in hours.get(day, ()):
            start = index * 24 * 60 + _minutes(start_text)
            end = index * 24 * 60 + _minutes(end_text)
            if end <= start:
                end += 24 * 60  # past midnight
            start, end = start - grace, end + grace
            # The week wraps: Sunday night's span reaches into Monday morning.
            if any(start <= at + shift < end for shift in (-week, 0, week)):
                return True
    return False


def outside_hours(
    subject: Subject,
    hours: Mapping[str, Sequence[Sequence[str]]] | None,
    local: datetime,
    timezone: str,
    activity: str,
    t: Thresholds,
) -> Verdict | None:
    """Activity while the store is closed; a store without opening hours is never closed."""
    if not hours or is_open(hours, local, t.outside_hours_grace_minutes):
        return None
    return Verdict(
        Rule.OUTSIDE_HOURS,
        subject,
        Severity.WARNING,
        24 * 60,
        {
            "activity": activity,
            "local_time": local.replace(tzinfo=None).isoformat(timespec="minutes"),
            "timezone": timezone,
            "weekday": DAYS[local.weekday()],
            "opening_hours": format_opening_hours(hours),
            "grace_minutes": t.outside_hours_grace_minutes,
        },
    )


def local_time(at: datetime, timezone: str) -> datetime:
    """``at`` on the store's clock (an unknown zone: UTC)."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return at.astimezone(ZoneInfo(timezone))
    except (ZoneInfoNotFoundError, ValueError):
        return at.astimezone(UTC)
