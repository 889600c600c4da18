"""Reading the new-promotion form, and saying a promotion's spec back in words.

``FormReader`` turns the typed fields into a promotion spec without JSON: amounts in the
currency's major unit ("5.00", parsed exactly by ``Money.parse``), percentages as percent ("12.5"),
tiers, prizes, targeting and limits, and dates in the merchant's time zone; each mistake is an
``InvalidInput`` naming the field. ``describe`` turns a stored spec into short sentences for the
promotion's page. Pure helpers: no routes, no database.
"""

from __future__ import annotations

import re
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from werkzeug.datastructures import MultiDict

from gateway.adapters.i18n import lazy_gettext as _l
from gateway.domain.money import Money
from gateway.domain.promotions.spec import KINDS, MAX_SPEC_DEPTH, promotion_from_spec, spec_of
from gateway.entrypoints import input_guard
from gateway.errors import InvalidInput

KIND_WORDS = {
    "threshold": _l("Spend X, save Y"),
    "percent": _l("Percent off"),
    "multi_buy": _l("Buy X get Y free"),
    "fixed_price": _l("N for a fixed price"),
    "new_customer": _l("New-customer discount"),
    "fee_waiver": _l("Service fee waived"),
    "coupon": _l("Coupon"),
    "points": _l("Loyalty points"),
    "gift": _l("Gift after purchases or spend"),
    "points_redeem": _l("Pay with points"),
    "referral": _l("Referral"),
    "draw": _l("Lucky draw"),
}


def kind_choices() -> str:
    """The kinds of promotion by name, for an error message."""
    return ", ".join(str(word) for word in KIND_WORDS.values())


WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
WEEKDAY_NUMBERS = tuple(str(n) for n in range(7))
PRIZE_ROWS = 4
SPLIT = re.compile(r"\s*,\s*")
# A percentage as typed: digits with at most 4 decimals (finer than a basis point is refused).
PERCENT = re.compile(r"[0-9]{1,3}(\.[0-9]{1,4})?")
# Whole numbers typed into the form; the domain narrows each field's range further.
MAX_WHOLE = 10**15


class FormReader:
    """Turns the typed fields into a spec; each mistake is an ``InvalidInput`` naming the field."""

    def __init__(self, form: MultiDict[str, str], currency: str, zone: ZoneInfo) -> None:
        self.form, self.currency, self.zone = form, currency, zone

    def text(self, name: str) -> str:
        return self.form.get(name, "").strip()

    def whole(self, name: str, label: str) -> int | None:
        text = self.text(name)
        if not text:
            return None
        return input_guard.whole_number(text, label, low=-MAX_WHOLE, high=MAX_WHOLE)

    def money(self, name: str, label: str, text: str | None = None) -> int | None:
        text = self.text(name) if text is None else text.strip()
        if not text:
            return None
        try:
            return Money.parse(text.replace(",", "."), self.currency).minor
        except InvalidInput as exc:
            raise InvalidInput(f"{label}: {exc.message}") from None

    def fraction(self, name: str, label: str, scale: int) -> int | None:
        """A percentage typed as "12.5", as basis points (scale 100) or ppm (scale 10 000)."""
        text = self.text(name).replace(",", ".").rstrip("% ")
        if not text:
            return None
        if not PERCENT.fullmatch(text):
            raise InvalidInput(f"{label}: expected a percentage such as 12.5, got “{text[:40]}”")
        value = Decimal(text) * scale
        if value != value.to_integral_value() or not 0 <= value <= 100 * scale:
            raise InvalidInput(f"{label}: expected a percentage from 0 to 100, got “{text}”")
        return int(value)

    def words(self, name: str) -> list[str]:
        return [w for w in SPLIT.split(self.text(name)) if w]

    def moment(self, name: str, label: str) -> datetime | None:
        text = self.text(name)
        if not text:
            return None
        try:
            moment = datetime.fromisoformat(text).replace(tzinfo=self.zone)
        except ValueError:
            raise InvalidInput(f"{label}: expected a date and time like 2025-05-01T09:00") from None
        input_guard.check_date(moment, label)
        return moment

    def promotion_spec(self) -> Any:
        """The advanced JSON spec when one is typed in, otherwise the spec the fields make.

        The JSON is passed on as it is: ``create_promotion`` says when it is not an object.
        """
        kind = self.text("kind")
        raw = self.text("spec_json")
        if raw:
            return input_guard.load_json(raw, "JSON spec", max_depth=MAX_SPEC_DEPTH)
        if kind not in KINDS:
            raise InvalidInput(
                f"Kind: choose one of {', '.join(str(w) for w in KIND_WORDS.values())}"
            )
        return self.spec(kind)

    def variants(self) -> list[tuple[str, int]]:
        """An experiment's variants typed as "A:1, B:1" (the weight is 1 when left out)."""
        variants = []
        for item in self.words("variants"):
            name, _, weight = item.partition(":")
            if not re.fullmatch(r"\d{1,6}", weight.strip() or "1"):
                raise InvalidInput(f"Variants: write each as name:weight like B:1, not “{item}”")
            variants.append((name.strip(), int(weight.strip() or "1")))
        return variants

    def spec(self, kind: str) -> dict[str, Any]:
        spec: dict[str, Any] = {
            "priority": self.whole("priority", "Priority") or 0,
            "exclusive": self.form.get("exclusive") == "on",
            "group": self.text("group") or None,
            "targeting": self.targeting(),
            "limits": self.limits(),
        }
        reader = getattr(self, f"_{kind}", None)
        if reader is None:
            raise InvalidInput(
                f"Kind: choose one of {', '.join(str(w) for w in KIND_WORDS.values())}"
            )
        extra: dict[str, Any] = reader()
        return spec | {k: v for k, v in extra.items() if v is not None}

    def targeting(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "payment_methods": self.form.getlist("payment_methods"),
            "stores": self.form.getlist("stores"),
            "weekdays": [int(d) for d in self.form.getlist("weekdays") if d in WEEKDAY_NUMBERS],
            "segments": self.form.getlist("segments"),
            "currency": (self.text("currency") or self.currency).upper(),
            "skus": self.words("skus"),
            "categories": self.words("categories"),
        }
        start, end = self.whole("hours_from", "Hours from"), self.whole("hours_to", "Hours to")
        if (start is None) != (end is None):
            raise InvalidInput("Hours: give both from and to, or neither")
        if start is not None:
            out["hours"] = [start, end]
        return {k: v for k, v in out.items() if v}

    def limits(self) -> dict[str, Any]:
        out = {
            "budget_minor": self.money("budget", "Budget"),
            "global_count": self.whole("global_count", "Uses in all"),
            "per_customer_per_day": self.whole("per_customer_per_day", "Per customer per day"),
            "per_customer_lifetime": self.whole("per_customer_lifetime", "Per customer in all"),
            "per_sale": self.whole("per_sale", "Per sale"),
        }
        return {k: v for k, v in out.items() if v is not None}

    def _threshold(self) -> dict[str, Any]:
        tiers = []
        for item in self.words("threshold_tiers"):
            spend, _, save = item.partition(":")
            if not save:
                raise InvalidInput(f"Tiers: write each as spend:save like 50.00:5.00, not “{item}”")
            tiers.append([self.money("", "Tiers", spend), self.money("", "Tiers", save)])
        every = self.money("threshold_every", "For every")
        if not tiers and every is None:
            raise InvalidInput("Tiers: give tiers like 50.00:5.00, or “for every X save Y”")
        if tiers:
            return {"tiers": tiers}
        return {
            "every_minor": every,
            "every_save_minor": self.money("threshold_every_save", "Save") or 0,
        }

    def _discount(self, prefix: str) -> dict[str, Any]:
        return {
            "amount_off_minor": self.money(f"{prefix}_amount", "Amount off"),
            "percent_bp": self.fraction(f"{prefix}_percent", "Percent off", 100),
            "cap_minor": self.money(f"{prefix}_cap", "At most"),
        }

    def _percent(self) -> dict[str, Any]:
        percent = self.fraction("percent_percent", "Percent off", 100)
        if percent is None:
            raise InvalidInput("Percent off: required for a percent-off promotion")
        return {"percent_bp": percent, "cap_minor": self.money("percent_cap", "At most")}

    def _multi_buy(self) -> dict[str, Any]:
        return {
            "buy": self.whole("multi_buy_buy", "Buy"),
            "get": self.whole("multi_buy_get", "Get"),
        }

    def _fixed_price(self) -> dict[str, Any]:
        return {
            "quantity": self.whole("fixed_price_quantity", "Quantity"),
            "price_minor": self.money("fixed_price_price", "For"),
        }

    def _new_customer(self) -> dict[str, Any]:
        return self._discount("new_customer")

    def _fee_waiver(self) -> dict[str, Any]:
        return {}

    def _coupon(self) -> dict[str, Any]:
        batch = self.form.get("coupon_batch") == "on"
        code = self.text("coupon_code").upper() or None
        if batch and code:
            raise InvalidInput("Coupon: either one shared code or a batch of codes, not both")
        return self._discount("coupon") | {"code": code, "batch": batch}

    def _points(self) -> dict[str, Any]:
        return {
            "points": self.whole("points_points", "Points"),
            "per_minor": self.money("points_per", "For every"),
            "expiry_days": self.whole("points_expiry_days", "Points expire after"),
        }

    def _gift(self) -> dict[str, Any]:
        return {
            "gift": self.text("gift_gift") or None,
            "after_purchases": self.whole("gift_after_purchases", "After purchases"),
            "after_spend_minor": self.money("gift_after_spend", "After spending"),
            "period_days": self.whole("gift_period_days", "Within days"),
        }

    def _points_redeem(self) -> dict[str, Any]:
        return {
            "point_value_minor": self.money("points_redeem_value", "A point is worth"),
            "min_points": self.whole("points_redeem_min", "At least"),
            "max_share_bp": self.fraction("points_redeem_share", "At most", 100),
        }

    def _referral(self) -> dict[str, Any]:
        return self._discount("referral") | {
            "referrer_points": self.whole("referral_points", "Referrer gets points"),
            "max_referrals": self.whole("referral_max", "Referrals per referrer"),
            "max_referrals_per_day": self.whole("referral_per_day", "Referrals per day"),
        }

    def _draw(self) -> dict[str, Any]:
        prizes = []
        for n in range(1, PRIZE_ROWS + 1):
            name = self.text(f"prize_name_{n}")
            if not name:
                continue
            prize = {
                "id": self.text(f"prize_id_{n}") or f"prize{n}",
                "name": name,
                "probability_ppm": self.fraction(f"prize_chance_{n}", f"Prize {n} chance", 10_000),
                "value_minor": self.money(f"prize_value_{n}", f"Prize {n} value") or 0,
                "daily_cap": self.whole(f"prize_cap_{n}", f"Prize {n} per day"),
            }
            prizes.append({k: v for k, v in prize.items() if v is not None})
        if not prizes:
            raise InvalidInput("Prizes: name at least one prize")
        table: dict[str, Any] = {"prizes": prizes}
        if (budget := self.money("draw_budget", "Prize budget")) is not None:
            table["budget_minor"] = budget
        return {"table": table, "min_spend_minor": self.money("draw_min_spend", "Minimum spend")}


METHOD_WORDS = {"qr": "wallet QR", "card": "card"}


def describe(kind: str, spec: dict[str, Any], currency: str) -> list[str]:
    """The promotion's rules as short sentences a manager can check at a glance."""
    spec = spec_of(promotion_from_spec("p", kind, spec), with_defaults=True)

    def m(minor: int | None) -> str:
        return "" if minor is None else str(Money(minor, currency))

    def pct(bp: int | None, scale: int = 100) -> str:
        return f"{Decimal(bp or 0) / scale:f} %"

    out = []
    if kind == "threshold":
        if spec.get("tiers"):
            out += [f"Spend {m(a)}, save {m(b)}." for a, b in spec["tiers"]]
        else:
            out.append(
                f"For every {m(spec['every_minor'])} spent, save {m(spec['every_save_minor'])}."
            )
    elif kind in ("percent", "new_customer", "coupon", "referral"):
        parts = []
        if spec.get("amount_off_minor"):
            parts.append(f"{m(spec['amount_off_minor'])} off")
        if spec.get("percent_bp"):
            parts.append(f"{pct(spec['percent_bp'])} off")
        if spec.get("cap_minor") is not None:
            parts.append(f"at most {m(spec['cap_minor'])}")
        lead = {
            "percent": "",
            "new_customer": "On a customer's first purchase: ",
            "coupon": f"With code {spec['code']}: " if spec.get("code") else "With a batch code: ",
            "referral": "The referee's first purchase: ",
        }[kind]
        out.append(lead + (", ".join(parts) or "no discount") + ".")
        if kind == "referral" and spec.get("referrer_points"):
            out.append(f"The referrer earns {spec['referrer_points']} points.")
    elif kind == "multi_buy":
        out.append(f"Buy {spec['buy']}, get {spec['get']} free (the cheapest).")
    elif kind == "fixed_price":
        out.append(f"{spec['quantity']} for {m(spec['price_minor'])}.")
    elif kind == "fee_waiver":
        out.append("The service fee is waived on a customer's first order.")
    elif kind == "points":
        out.append(f"{spec['points']} points for every {m(spec['per_minor'])} paid.")
    elif kind == "gift":
        after = []
        if spec.get("after_purchases"):
            after.append(f"{spec['after_purchases']} purchases")
        if spec.get("after_spend_minor"):
            after.append(f"spending {m(spec['after_spend_minor'])}")
        out.append(f"Gift “{spec['gift']}” after {' or '.join(after) or 'a purchase'}.")
    elif kind == "points_redeem":
        out.append(
            f"A point is worth {m(spec['point_value_minor'])}; at least {spec['min_points']} "
            f"points, at most {pct(spec['max_share_bp'])} of the sale."
        )
    elif kind == "draw":
        for prize in spec["table"]["prizes"]:
            out.append(
                f"Prize “{prize['name']}”: {pct(prize['probability_ppm'], 10_000)} chance, "
                f"worth {m(prize['value_minor'])}."
            )
    targeting = spec.get("targeting", {})
    if targeting.get("payment_methods"):
        methods = " or ".join(METHOD_WORDS.get(x, x) for x in targeting["payment_methods"])
        out.append(f"Paid by {methods}.")
    if targeting.get("weekdays"):
        out.append("On " + ", ".join(WEEKDAYS[d] for d in targeting["weekdays"]) + ".")
    if targeting.get("hours"):
        out.append("From {}:00 to {}:00.".format(*targeting["hours"]))
    if targeting.get("skus") or targeting.get("categories"):
        out.append(
            "Only on "
            + ", ".join(targeting.get("skus", []) + targeting.get("categories", []))
            + "."
        )
    limits = spec.get("limits", {})
    if limits.get("per_customer_per_day"):
        out.append(f"At most {limits['per_customer_per_day']} per customer per day.")
    if spec.get("exclusive"):
        out.append("Exclusive: no other discount on the same sale.")
    return out
