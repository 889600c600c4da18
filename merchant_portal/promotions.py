"""`/portal/promotions` and `/portal/experiments`: managers create and run promotions and A/B tests.

The new-promotion form covers every kind without JSON (``promotion_forms`` reads it); dates are
in the portal's time zone (``[promotions] timezone``, UTC by default). An "advanced" JSON spec,
when filled in, is used instead of the fields. A form with a mistake comes back with the message
and everything typed kept.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from markupsafe import Markup
from werkzeug.datastructures import MultiDict

from gateway.adapters.i18n import gettext as _
from gateway.adapters.i18n import weekday_names
from gateway.adapters.models import utcnow
from gateway.domain.promotions.model import PAYMENT_METHODS, SEGMENTS
from gateway.domain.promotions.spec import KINDS
from gateway.entrypoints.status_names import status_name
from gateway.errors import Conflict, InvalidInput
from gateway.services.promotions import promotion_admin as admin
from gateway.services.promotions import promotion_reads as reads
from gateway.services.promotions.experiment_results import results
from gateway.services.staff import stores
from gateway.settings import Settings
from merchant_portal.charts import Interval, interval_chart
from merchant_portal.identity import check_budget_step_up
from merchant_portal.promotion_forms import KIND_WORDS, PRIZE_ROWS, FormReader, describe
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("promotions", __name__)


STATUS_TONES = {
    "draft": "expired",
    "scheduled": "open",
    "live": "paid",
    "paused": "refunded",
    "finished": "cancelled",
}


def _zone() -> ZoneInfo:
    """The time zone a manager's dates are typed and shown in: ``[promotions] timezone`` if
    set, else the stores' own when they all share one (a chain in one country), else UTC."""
    settings: Settings = current_app.extensions["kassa.settings"]
    name = settings.promotions.timezone
    if not name:
        with database().unit_of_work(readonly=True) as uow:
            zones = stores.store_timezones(uow, signed_in_manager().merchant_id)
        name = zones.pop() if len(zones) == 1 else "UTC"
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _page(template: str, status: int = 200, **context: Any) -> tuple[str, int]:
    staff = signed_in_manager()
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


def _reader(form: MultiDict[str, str], currency: str) -> FormReader:
    return FormReader(form, currency, _zone())


def _create(form: MultiDict[str, str]) -> str:
    staff = signed_in_manager()
    currency = staff_session.merchant_of(staff).currency
    reader = _reader(form, (form.get("currency") or currency).strip().upper() or currency)
    spec = reader.promotion_spec()
    check_budget_step_up(spec, form.get("step_up_code"))
    experiment, _slash, variant = reader.text("ab").partition("/")
    with database().unit_of_work() as uow:
        row = admin.create_promotion(
            uow,
            staff.merchant_id,
            key=reader.text("key"),
            name=reader.text("name"),
            kind=reader.text("kind"),
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
        rows = reads.list_promotions(uow, signed_in_manager().merchant_id, now=utcnow())
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
            flash(
                _("Promotion “%(key)s” created as a draft. Activate it when it is ready.", key=key),
                "ok",
            )
            return redirect(url_for(".promotion_detail", key=key), 303)
    with database().unit_of_work(readonly=True) as uow:
        merchant_id = signed_in_manager().merchant_id
        store_rows = stores.merchant_stores(uow, merchant_id)
        experiments = reads.list_experiments(uow, merchant_id)
        return _page(
            "portal/promotions_new.html",
            422 if error else 200,
            form=form,
            error=error,
            stores=store_rows,
            experiments=experiments,
            kinds=list(KINDS),
            payment_methods=PAYMENT_METHODS,
            segments=SEGMENTS,
            weekdays=weekday_names(),
            prize_rows=range(1, PRIZE_ROWS + 1),
        )


@bp.get("/promotions/<key>")
def promotion_detail(key: str) -> Any:
    return _detail(key)


def _detail(key: str, error: str | None = None) -> Any:
    with database().unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, signed_in_manager().merchant_id, key)
        summary = reads.summarise(uow, [row], utcnow())[0]
        return _page(
            "portal/promotions_detail.html",
            422 if error else 200,
            p=summary,
            row=row,
            words=[] if summary.problem else describe(row.kind, row.spec, summary.currency),
            changes=reads.history(uow, row),
            sales=reads.recent_sales(uow, row),
            coupons=reads.count_coupons(uow, row) if row.spec.get("batch") else None,
            error=error,
        )


def _act(key: str, action: str) -> Any:
    staff, form = signed_in_manager(), request.form
    try:
        with database().unit_of_work() as uow:
            if action == "activate":
                reader = _reader(form, staff_session.merchant_of(staff).currency)
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
    flash(
        _("Promotion “%(key)s”: %(done)s.", key=key, done=status_name(f"{action}d"))
        if action != "end"
        else _("“%(key)s” ended.", key=key),
        "ok",
    )
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
    staff = signed_in_manager()
    reader = _reader(request.form, staff_session.merchant_of(staff).currency)
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
    flash(_("%(count)s coupon codes issued. Download them as CSV below.", count=len(codes)), "ok")
    return redirect(url_for(".promotion_detail", key=key), 303)


@bp.get("/promotions/<key>/coupons.csv")
def promotion_coupons_csv(key: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["code", "status", "expires_at", "customer_id"])
    with database().unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, signed_in_manager().merchant_id, key)
        for c in reads.coupon_codes(uow, row):
            expires = c.expires_at.isoformat() if c.expires_at else ""
            writer.writerow([c.code, c.status, expires, c.customer_id or ""])
    staff_session.record_download("coupons", promotion=key)
    return Response(
        out.getvalue(),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="coupons-{key}.csv"'},
    )


@bp.route("/experiments", methods=["GET", "POST"])
def experiments() -> Any:
    staff, form = signed_in_manager(), request.form
    error = None
    if request.method == "POST":
        try:
            key = _create_experiment(form)
        except (InvalidInput, Conflict) as exc:
            error = exc.message
        else:
            flash(
                _("Experiment “%(key)s” created. Attach a promotion to each variant.", key=key),
                "ok",
            )
            return redirect(url_for(".experiment_detail", key=key), 303)
    with database().unit_of_work(readonly=True) as uow:
        rows = reads.list_experiments(uow, staff.merchant_id)
        return _page(
            "portal/promotions_experiments.html",
            422 if error else 200,
            experiments=rows,
            form=form,
            error=error,
        )


def _create_experiment(form: MultiDict[str, str]) -> str:
    staff = signed_in_manager()
    reader = _reader(form, staff_session.merchant_of(staff).currency)
    variants = reader.variants()
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
    merchant_id = signed_in_manager().merchant_id
    with database().unit_of_work(readonly=True) as uow:
        out = results(uow, merchant_id, key, now=utcnow())
        promotions = [
            p for p in reads.list_promotions(uow, merchant_id, now=utcnow()) if p.experiment == key
        ]
    charts = {c.variant: interval_chart_of(out.control, c) for c in out.comparisons}
    return _page("portal/promotions_experiment.html", out=out, promotions=promotions, charts=charts)


def interval_chart_of(control: str, comparison: Any) -> Markup:
    """Each metric's always-valid interval as a change relative to the control's value."""
    rows = []
    for test, seq in zip(comparison.tests, comparison.sequential, strict=True):
        if not test.control:
            continue  # no relative change from zero
        scale = 100 / test.control
        rows.append(
            Interval(test.metric, seq.difference * scale, seq.low * scale, seq.high * scale)
        )
    title = _("%(variant)s against %(control)s: change and 95 %% always-valid interval",
              variant=comparison.variant, control=control)  # fmt: skip
    return interval_chart(title, rows, lambda v: f"{v:+.0f} %")
