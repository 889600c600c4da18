"""A promotion as stored and as typed by a manager: a JSON object, checked field by field.

``promotion_from_spec(id, kind, spec)`` builds the domain value; ``spec_of(promotion)`` gives
the JSON back. Amounts are integer minor units, percentages basis points; every wrong field
is named in the error (``limits.budget_minor: expected a whole number ≥ 0``).

```
{"name": "Spring 10 %", "priority": 10, "exclusive": false, "group": null, "code": null,
 "targeting": {"payment_methods": ["qr"], "stores": ["1"], "weekdays": [5, 6],
               "hours": [9, 17], "segments": ["new"], "currency": "EUR",
               "skus": [], "categories": ["coffee"]},
 "limits": {"per_customer_per_day": 1, "budget_minor": 50000},
 "percent_bp": 1000, "cap_minor": 500}
```
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from gateway.domain.money import currency
from gateway.domain.promotions.draw import DrawTable, Prize
from gateway.domain.promotions.model import (
    PAYMENT_METHODS,
    SEGMENTS,
    Coupon,
    FeeWaiver,
    FixedPrice,
    Limits,
    LoyaltyPoints,
    LuckyDraw,
    MultiBuy,
    NewCustomerDiscount,
    PercentOff,
    PointsRedemption,
    Promotion,
    Referral,
    Targeting,
    ThresholdDiscount,
    ThresholdGift,
    Tier,
)
from gateway.errors import InvalidInput, InvalidMoney

KINDS: dict[str, type[Promotion]] = {
    cls.kind: cls
    for cls in (
        ThresholdDiscount,
        PercentOff,
        MultiBuy,
        FixedPrice,
        NewCustomerDiscount,
        FeeWaiver,
        Coupon,
        LoyaltyPoints,
        ThresholdGift,
        PointsRedemption,
        Referral,
        LuckyDraw,
    )
}

_SET_BY_SERVICE = {"id", "experiment", "variant"}

# The ranges a promotion's numbers must lie in, chosen by the field's unit (its name's suffix):
# basis points are 0–100 %, ppm 0–1 000 000, amounts up to Money's own bound, priorities either
# way of zero, and every other count (uses, days, points, items) below a billion.
MAX_MINOR = 10**15
MAX_COUNT = 10**9
MAX_PRIORITY = 1_000_000
MAX_SPEC_DEPTH = 6  # spec → table → prizes → prize → …: the deepest real spec nests 4 levels
_HIGH_BY_SUFFIX = (("_bp", 10_000), ("_ppm", 1_000_000), ("_minor", MAX_MINOR))
_STRING_SETS = ("payment_methods", "stores", "tills", "segments", "skus", "categories")


def promotion_from_spec(
    promotion_id: str,
    kind: str,
    spec: Mapping[str, Any],
    *,
    experiment: str | None = None,
    variant: str | None = None,
) -> Promotion:
    """The domain promotion ``spec`` describes, or ``InvalidInput`` naming the bad field."""
    cls = KINDS.get(kind)
    if cls is None:
        raise InvalidInput(f"kind: expected one of {', '.join(sorted(KINDS))}, got {kind!r}")
    if not isinstance(spec, Mapping):
        raise InvalidInput("a promotion is a JSON object")
    if _depth(spec) > MAX_SPEC_DEPTH:
        raise InvalidInput(f"spec: nested deeper than {MAX_SPEC_DEPTH} levels")
    fields = {f.name: f for f in dataclasses.fields(cls)} if dataclasses.is_dataclass(cls) else {}
    unknown = set(spec) - set(fields) - _SET_BY_SERVICE
    if unknown:
        raise InvalidInput(f"{sorted(unknown)[0]}: not a field of a {kind} promotion")
    values: dict[str, Any] = {"id": promotion_id, "experiment": experiment, "variant": variant}
    for name, value in spec.items():
        if name in _SET_BY_SERVICE:
            continue
        values[name] = _field(name, value)
    try:
        return cls(**values)
    except TypeError as exc:
        missing = str(exc).split("argument")[-1].strip(": '")
        raise InvalidInput(f"{missing}: required for a {kind} promotion") from None


def _field(name: str, value: Any) -> Any:
    if name == "targeting":
        return _targeting(value)
    if name == "limits":
        return _limits(value)
    if name == "tiers":
        return _tiers(value)
    if name == "table":
        return _table(value)
    if name in ("name", "gift"):
        return _text(name, value)
    if name in ("group", "code"):
        return None if value is None else _text(name, value)
    if name in ("exclusive", "batch"):
        if not isinstance(value, bool):
            raise InvalidInput(f"{name}: expected true or false")
        return value
    if name in ("priority",):
        return _whole(name, value, low=-MAX_PRIORITY, high=MAX_PRIORITY)
    return _whole(name, value, optional=name in _OPTIONAL)


def _depth(value: Any) -> int:
    """How deeply objects and lists nest in ``value`` (iterative: any depth is safe)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = (
            item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        )
        if isinstance(item, Mapping | list):
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


_OPTIONAL = {
    "cap_minor",
    "after_purchases",
    "after_spend_minor",
    "period_days",
    "expiry_days",
    "max_referrals",
    "max_referrals_per_day",
}


def _whole(
    name: str, value: Any, *, optional: bool = True, low: int = 0, high: int | None = None
) -> int | None:
    if value is None and optional:
        return None
    if high is None:
        high = next((h for suffix, h in _HIGH_BY_SUFFIX if name.endswith(suffix)), MAX_COUNT)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
        raise InvalidInput(f"{name}: expected a whole number from {low} to {high}, got {shown}")
    return value


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > 120:
        raise InvalidInput(f"{name}: expected a text of 1 to 120 characters")
    return value.strip()


def _object(name: str, value: Any) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise InvalidInput(f"{name}: expected an object")
    return value


def _targeting(value: Any) -> Targeting:
    raw = _object("targeting", value)
    known = {f.name for f in dataclasses.fields(Targeting)}
    out: dict[str, Any] = {}
    for key, item in raw.items():
        where = f"targeting.{key}"
        if key not in known:
            raise InvalidInput(f"{where}: not a targeting field")
        if key in _STRING_SETS:
            if not isinstance(item, list) or not all(isinstance(v, str) and v for v in item):
                raise InvalidInput(f"{where}: expected a list of texts")
            out[key] = frozenset(item)
        elif key == "weekdays":
            if not isinstance(item, list) or not all(_is_int(v) and 0 <= v <= 6 for v in item):
                raise InvalidInput(f"{where}: expected days 0 (Monday) to 6 (Sunday)")
            out[key] = frozenset(item)
        elif key == "hours":
            out[key] = _hours(where, item)
        elif key == "currency":
            out[key] = None if item is None else _currency(where, item)
    if bad := out.get("payment_methods", frozenset()) - set(PAYMENT_METHODS):
        raise InvalidInput(f"targeting.payment_methods: unknown {sorted(bad)[0]!r}")
    if bad := out.get("segments", frozenset()) - set(SEGMENTS):
        raise InvalidInput(f"targeting.segments: unknown {sorted(bad)[0]!r}")
    return Targeting(**out)


def _currency(where: str, item: Any) -> str:
    if not (isinstance(item, str) and len(item) == 3):
        raise InvalidInput(f"{where}: expected an ISO 4217 code such as EUR")
    try:
        return currency(item).code
    except InvalidMoney:
        raise InvalidInput(f"{where}: {item!r} is not an ISO 4217 currency code") from None


def _hours(where: str, item: Any) -> tuple[int, int] | None:
    if item is None:
        return None
    if (
        not isinstance(item, list | tuple)
        or len(item) != 2
        or not all(_is_int(v) and 0 <= v <= 24 for v in item)
        or item[0] == item[1]
    ):
        raise InvalidInput(f"{where}: expected [start, end] hours 0–24, end excluded")
    return (item[0], item[1])


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _limits(value: Any) -> Limits:
    raw = _object("limits", value)
    known = {f.name for f in dataclasses.fields(Limits)}
    out: dict[str, Any] = {}
    for key, item in raw.items():
        if key not in known:
            raise InvalidInput(f"limits.{key}: not a limit")
        out[key] = _whole(f"limits.{key}", item)
    return Limits(**out)


def _tiers(value: Any) -> tuple[Tier, ...]:
    if not isinstance(value, list) or not value:
        raise InvalidInput("tiers: expected a list of [min_spend_minor, save_minor]")
    tiers = []
    for i, item in enumerate(value):
        if not isinstance(item, list | tuple) or len(item) != 2:
            raise InvalidInput(f"tiers[{i}]: expected [min_spend_minor, save_minor]")
        low = _whole(f"tiers[{i}].min_spend_minor", item[0], optional=False)
        save = _whole(f"tiers[{i}].save_minor", item[1], optional=False)
        assert low is not None and save is not None
        tiers.append(Tier(low, save))
    return tuple(tiers)


def _table(value: Any) -> DrawTable:
    raw = _object("table", value)
    prizes = raw.get("prizes")
    if not isinstance(prizes, list) or not prizes:
        raise InvalidInput("table.prizes: expected a list of prizes")
    out = []
    for i, item in enumerate(prizes):
        where = f"table.prizes[{i}]"
        p = _object(where, item)
        chance = _whole(f"{where}.probability_ppm", p.get("probability_ppm"), optional=False, low=1)
        value = _whole(f"{where}.value_minor", p.get("value_minor", 0), optional=False)
        assert chance is not None and value is not None
        out.append(
            Prize(
                id=_text(f"{where}.id", p.get("id")),
                name=_text(f"{where}.name", p.get("name")),
                probability_ppm=chance,
                value_minor=value,
                daily_cap=_whole(f"{where}.daily_cap", p.get("daily_cap")),
            )
        )
    budget = _whole("table.budget_minor", raw.get("budget_minor"))
    return DrawTable(tuple(out), budget)


def spec_of(promotion: Promotion, *, with_defaults: bool = False) -> dict[str, Any]:
    """The JSON spec of ``promotion`` (the inverse of ``promotion_from_spec``); fields left at
    their defaults are left out unless ``with_defaults``."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(promotion):  # type: ignore[arg-type]
        value = getattr(promotion, f.name)
        if f.name in _SET_BY_SERVICE:
            continue
        if not with_defaults and f.default is not dataclasses.MISSING and value == f.default:
            continue
        out[f.name] = _json(value)
    return out


def _json(value: Any) -> Any:
    if isinstance(value, frozenset):
        return sorted(value)
    if isinstance(value, Tier):
        return [value.min_spend_minor, value.save_minor]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _json(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value
