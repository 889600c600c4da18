"""`/portal/promotions` and `/portal/experiments`: managers create and run promotions and A/B tests.

The new-promotion form covers every kind without JSON: amounts are typed in the currency's major
unit ("5.00", parsed exactly by ``Money.parse``), percentages as percent ("12.5"), dates in the
portal's time zone (``[promotions] timezone``, UTC by default). An "advanced" JSON spec, when
filled in, is used instead of the fields. A form with a mistake comes back with the message and
everything typed kept.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import Response, current_app, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from gateway.adapters.models import Store, utcnow
from gateway.domain.money import Money
from gateway.domain.promotions.model import PAYMENT_METHODS, SEGMENTS
from gateway.domain.promotions.spec import KINDS, promotion_from_spec, spec_of
from gateway.errors import Conflict, InvalidInput
from gateway.services import promotion_admin as admin
from gateway.services.experiment_results import results
from merchant_portal.views import _staff, bp, database, staff_session

KIND_WORDS = {
    "threshold": "Spend X, save Y",
    "percent": "Percent off",
    "multi_buy": "Buy X get Y free",
    "fixed_price": "N for a fixed price",
    "new_customer": "New-customer discount",
    "fee_waiver": "Service fee waived",
    "coupon": "Coupon",
    "points": "Loyalty points",
    "gift": "Gift after purchases or spend",
    "points_redeem": "Pay with points",
    "referral": "Referral",
    "draw": "Lucky draw",
}
STATUS_TONES = {
    "draft": "expired",
    "scheduled": "open",
    "live": "paid",
    "paused": "refunded",
    "finished": "cancelled",
}
WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
PRIZE_ROWS = 4
SPLIT = re.compile(r"\s*,\s*")


def _zone() -> ZoneInfo:
    name = current_app.extensions["kassa.config"].get("promotions", {}).get("timezone") or "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    staff = _staff()
    merchant = staff_session.merchant_of(staff)
    context |= {
        "kind_words": KIND_WORDS,
        "status_tone": STATUS_TONES,
        "zone": _zone().key,
        "local": lambda moment: _local(moment),
    }
    return render_template(template, staff=staff, merchant=merchant, **context), status


def _local(moment: datetime | None) -> str:
    return "" if moment is None else moment.astimezone(_zone()).strftime("%Y-%m-%d %H:%M")


# ---- reading the form ------------------------------------------------------------------------


class FormReader:
    """Turns the typed fields into a spec; each mistake is an ``InvalidInput`` naming the field."""

    def __init__(self, form: MultiDict[str, str], currency: str) -> None:
        self.form, self.currency = form, currency

    def text(self, name: str) -> str:
        return self.form.get(name, "").strip()

    def whole(self, name: str, label: str) -> int | None:
        text = self.text(name)
        if not text:
            return None
        if not re.fullmatch(r"-?\d+", text):
            raise InvalidInput(f"{label}: expected a whole number, got “{text}”")
        return int(text)

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
        try:
            value = Decimal(text) * scale
        except InvalidOperation:
            raise InvalidInput(
                f"{label}: expected a percentage such as 12.5, got “{text}”"
            ) from None
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
            return datetime.fromisoformat(text).replace(tzinfo=_zone())
        except ValueError:
            raise InvalidInput(f"{label}: expected a date and time like 2025-05-01T09:00") from None

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
            raise InvalidInput(f"Kind: choose one of {', '.join(KIND_WORDS.values())}")
        extra: dict[str, Any] = reader()
        return spec | {k: v for k, v in extra.items() if v is not None}

    def targeting(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "payment_methods": self.form.getlist("payment_methods"),
            "stores": self.form.getlist("stores"),
            "weekdays": [int(d) for d in self.form.getlist("weekdays") if d.isdigit()],
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


def _create(form: MultiDict[str, str]) -> str:
    staff = _staff()
    currency = staff_session.merchant_of(staff).currency
    reader = FormReader(form, (form.get("currency") or currency).strip().upper() or currency)
    kind = reader.text("kind")
    raw = reader.text("spec_json")
    if raw:
        try:
            spec = json.loads(raw)
        except ValueError as exc:
            raise InvalidInput(f"JSON spec: not valid JSON ({exc})") from None
    else:
        if kind not in KINDS:
            raise InvalidInput(f"Kind: choose one of {', '.join(KIND_WORDS.values())}")
        spec = reader.spec(kind)
    experiment, _, variant = reader.text("ab").partition("/")
    with database().unit_of_work() as uow:
        row = admin.create_promotion(
            uow,
            staff.merchant_id,
            key=reader.text("key"),
            name=reader.text("name"),
            kind=kind,
            spec=spec,
            starts_at=reader.moment("starts_at", "Starts"),
            ends_at=reader.moment("ends_at", "Ends"),
            actor=staff.actor,
            experiment_key=experiment or None,
            variant=variant or None,
        )
        key = row.key
        uow.commit()
    return key


# ---- pages -----------------------------------------------------------------------------------


@bp.get("/promotions")
def promotions() -> Any:
    with database().unit_of_work(readonly=True) as uow:
        rows = admin.list_promotions(uow, _staff().merchant_id, now=utcnow())
    return _page("portal/promotions.html", promotions=rows)


@bp.route("/promotions/new", methods=["GET", "POST"])
def promotion_new() -> Any:
    form: MultiDict[str, str] = request.form if request.method == "POST" else MultiDict()
    error = None
    if request.method == "POST":
        try:
            key = _create(form)
        except (InvalidInput, Conflict) as exc:
            error = exc.message
        else:
            flash(f"Promotion “{key}” created as a draft. Activate it when it is ready.", "ok")
            return redirect(url_for(".promotion_detail", key=key), 303)
    with database().unit_of_work(readonly=True) as uow:
        merchant_id = _staff().merchant_id
        stores = list(
            uow.session.scalars(
                select(Store).where(Store.merchant_id == merchant_id).order_by(Store.name)
            )
        )
        experiments = admin.list_experiments(uow, merchant_id)
        return _page(
            "portal/promotions_new.html",
            422 if error else 200,
            form=form,
            error=error,
            stores=stores,
            experiments=experiments,
            kinds=list(KINDS),
            payment_methods=PAYMENT_METHODS,
            segments=SEGMENTS,
            weekdays=WEEKDAYS,
            prize_rows=range(1, PRIZE_ROWS + 1),
        )


@bp.get("/promotions/<key>")
def promotion_detail(key: str) -> Any:
    return _detail(key)


def _detail(key: str, error: str | None = None) -> Any:
    with database().unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, _staff().merchant_id, key)
        summary = admin.summarise(uow, [row], utcnow())[0]
        return _page(
            "portal/promotions_detail.html",
            422 if error else 200,
            p=summary,
            row=row,
            words=describe(row.kind, row.spec, summary.currency),
            changes=admin.history(uow, row),
            sales=admin.recent_sales(uow, row),
            coupons=admin.count_coupons(uow, row) if row.spec.get("batch") else None,
            error=error,
        )


def _act(key: str, action: str) -> Any:
    staff, form = _staff(), request.form
    try:
        with database().unit_of_work() as uow:
            if action == "activate":
                reader = FormReader(form, "EUR")
                admin.activate(
                    uow,
                    staff.merchant_id,
                    key,
                    actor=staff.actor,
                    starts_at=reader.moment("starts_at", "Starts"),
                    ends_at=reader.moment("ends_at", "Ends"),
                )
            elif action == "end":
                if form.get("confirm") != "yes":
                    raise InvalidInput("Tick “End it for good” to end the promotion")
                admin.end(uow, staff.merchant_id, key, actor=staff.actor)
            else:
                getattr(admin, action)(uow, staff.merchant_id, key, actor=staff.actor)
            uow.commit()
    except (InvalidInput, Conflict) as exc:
        return _detail(key, exc.message)
    flash(f"Promotion “{key}”: {action}d." if action != "end" else f"“{key}” ended.", "ok")
    return redirect(url_for(".promotion_detail", key=key), 303)


@bp.post("/promotions/<key>/activate")
def promotion_activate(key: str) -> Any:
    return _act(key, "activate")


@bp.post("/promotions/<key>/pause")
def promotion_pause(key: str) -> Any:
    return _act(key, "pause")


@bp.post("/promotions/<key>/resume")
def promotion_resume(key: str) -> Any:
    return _act(key, "resume")


@bp.post("/promotions/<key>/end")
def promotion_end(key: str) -> Any:
    return _act(key, "end")


@bp.post("/promotions/<key>/coupons")
def promotion_coupons(key: str) -> Any:
    staff = _staff()
    reader = FormReader(request.form, "EUR")
    try:
        count = reader.whole("count", "Count")
        expires = reader.moment("expires_at", "Valid until")
        with database().unit_of_work() as uow:
            row = admin.get_promotion(uow, staff.merchant_id, key)
            codes = admin.issue_coupons(
                uow, row, count=count or 0, expires_at=expires, actor=staff.actor
            )
            uow.commit()
    except (InvalidInput, Conflict) as exc:
        return _detail(key, exc.message)
    flash(f"{len(codes)} coupon codes issued. Download them as CSV below.", "ok")
    return redirect(url_for(".promotion_detail", key=key), 303)


@bp.get("/promotions/<key>/coupons.csv")
def promotion_coupons_csv(key: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "status", "expires_at", "customer_id"])
    with database().unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, _staff().merchant_id, key)
        for c in admin.coupon_codes(uow, row):
            expires = c.expires_at.isoformat() if c.expires_at else ""
            writer.writerow([c.code, c.status, expires, c.customer_id or ""])
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="coupons-{key}.csv"'},
    )


@bp.route("/experiments", methods=["GET", "POST"])
def experiments() -> Any:
    staff, form = _staff(), request.form
    error = None
    if request.method == "POST":
        try:
            key = _create_experiment(form)
        except (InvalidInput, Conflict) as exc:
            error = exc.message
        else:
            flash(f"Experiment “{key}” created. Attach a promotion to each variant.", "ok")
            return redirect(url_for(".experiment_detail", key=key), 303)
    with database().unit_of_work(readonly=True) as uow:
        rows = admin.list_experiments(uow, staff.merchant_id)
        return _page(
            "portal/promotions_experiments.html",
            422 if error else 200,
            experiments=rows,
            form=form,
            error=error,
        )


def _create_experiment(form: MultiDict[str, str]) -> str:
    staff = _staff()
    reader = FormReader(form, "EUR")
    variants = []
    for item in reader.words("variants"):
        name, _, weight = item.partition(":")
        if not re.fullmatch(r"\d+", weight.strip() or "1"):
            raise InvalidInput(f"Variants: write each as name:weight like B:1, not “{item}”")
        variants.append((name.strip(), int(weight.strip() or "1")))
    holdout = reader.fraction("holdout", "Holdout", 100) or 0
    with database().unit_of_work() as uow:
        row = admin.create_experiment(
            uow,
            staff.merchant_id,
            key=reader.text("key"),
            name=reader.text("name"),
            variants=variants,
            holdout_bp=holdout,
            control=reader.text("control") or (variants[0][0] if variants else ""),
        )
        key = row.key
        uow.commit()
    return key


@bp.get("/experiments/<key>")
def experiment_detail(key: str) -> Any:
    merchant_id = _staff().merchant_id
    with database().unit_of_work(readonly=True) as uow:
        out = results(uow, merchant_id, key, now=utcnow())
        promotions = [
            p for p in admin.list_promotions(uow, merchant_id, now=utcnow()) if p.experiment == key
        ]
    return _page("portal/promotions_experiment.html", out=out, promotions=promotions)


# ---- a spec in words -------------------------------------------------------------------------


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
        out.append("Paid by " + " or ".join(x.upper() for x in targeting["payment_methods"]) + ".")
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
