"""`/portal/alerts`: anomaly alerts (gateway.services.monitoring), their facts, acknowledging
one with a note, and the thresholds and stores' opening hours the rules use.

Staff bound to one store see that store's alerts; the thresholds are the merchant's, so only
staff who work for every store change them. The portal bar shows how many alerts are open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from sqlalchemy import select
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.i18n import gettext as _
from gateway.adapters.i18n import lazy_gettext as _l
from gateway.adapters.models import Store
from gateway.domain.monitoring import Rule, Thresholds, format_opening_hours
from gateway.entrypoints import input_guard
from gateway.entrypoints.staff_session import current_staff
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.monitoring import alerts as alert_service
from gateway.services.monitoring import thresholds
from merchant_portal.views import database, signed_in_manager, staff_session

bp = Blueprint("alerts", __name__)
PAGE_SIZE = 50
MAX_PAGE = 1_000_000
# The thresholds form: each rule's fields with their labels.
FIELDS = (
    (
        _l("Refund ratio (per till and per cashier)"),
        (
            ("refund_ratio_percent", _l("Refunded ÷ sold, percent")),
            ("refund_ratio_min_refunds", _l("At least this many refunds")),
            ("refund_ratio_window_minutes", _l("Window, minutes")),
        ),
    ),
    (
        _l("Voids per till"),
        (
            ("voids_per_till", _l("Voids")),
            ("voids_window_minutes", _l("Window, minutes")),
        ),
    ),
    (
        _l("Declines of one card"),
        (
            ("card_declines", _l("Declines")),
            ("card_declines_window_minutes", _l("Window, minutes")),
        ),
    ),
    (
        _l("Velocity per till"),
        (
            ("qr_payments_per_minute", _l("QR payments in one minute")),
            ("refunds_per_minute", _l("Refunds in one minute")),
        ),
    ),
    (
        _l("Payments far above the store's usual ticket"),
        (
            ("large_ticket_factor", _l("Times the usual ticket")),
            ("large_ticket_statistic", _l("Usual ticket (median or p95)")),
            ("large_ticket_min_history", _l("At least this many earlier payments")),
            ("large_ticket_history_days", _l("History, days")),
        ),
    ),
    (
        _l("Outside opening hours"),
        (("outside_hours_grace_minutes", _l("Grace before opening and after closing, minutes")),),
    ),
    (
        _l("Failed sign-ins"),
        (
            ("login_failures_per_user", _l("Per person")),
            ("login_failures_per_source", _l("Per address")),
            ("login_window_minutes", _l("Window, minutes")),
        ),
    ),
    (
        _l("Payments flagged for a person"),
        (
            ("attention_flags", _l("Flags per till")),
            ("attention_flags_per_store", _l("Flags per store")),
            ("attention_window_minutes", _l("Window, minutes")),
        ),
    ),
)


@dataclass
class AlertQuery:
    status: str = alert_service.OPEN
    rule: str = ""
    page: int = 1

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> AlertQuery:
        status = args.get("status", alert_service.OPEN)
        rule = args.get("rule", "")
        page = args.get("page", "1") or "1"
        try:
            number = input_guard.whole_number(page, "Page", low=1, high=MAX_PAGE)
        except InvalidInput:
            number = 1
        return cls(
            status=status if status in (*alert_service.STATUSES, "all") else alert_service.OPEN,
            rule=rule if rule in {r.value for r in Rule} else "",
            page=number,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args = {"status": self.status, "rule": self.rule, "page": self.page} | changes
        return {k: v for k, v in args.items() if v and not (k == "page" and v == 1)}


@bp.get("/alerts")
def alerts() -> Any:
    staff = signed_in_manager()
    query = AlertQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        rows, total = alert_service.list_alerts(
            uow,
            staff.scope,
            status=None if query.status == "all" else query.status,
            rule=query.rule or None,
            limit=PAGE_SIZE,
            offset=(query.page - 1) * PAGE_SIZE,
        )
        return render_template(
            "portal/alerts.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            rows=rows,
            total=total,
            query=query,
            rules=[r.value for r in Rule],
            page_size=PAGE_SIZE,
        )


@bp.get("/alerts/<int:alert_id>")
def alert(alert_id: int) -> Any:
    staff = signed_in_manager()
    with database().unit_of_work(readonly=True) as uow:
        row = alert_service.get_alert(uow, alert_id, staff.scope)
        return render_template(
            "portal/alert.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            row=row,
        )


@bp.post("/alerts/<int:alert_id>/acknowledge")
def acknowledge(alert_id: int) -> Redirect:
    """Close the alert with the person's note (required); audited."""
    staff = signed_in_manager()
    with database().unit_of_work() as uow:
        try:
            alert_service.acknowledge(
                uow,
                alert_id,
                staff.scope,
                note=request.form.get("note", ""),
                actor=staff.actor,
            )
            uow.commit()
            flash(_("Acknowledged: the alert is closed with your note."))
        except (Conflict, InvalidInput) as exc:
            flash(_("Could not acknowledge: %(why)s.", why=exc.message))
    return redirect(url_for(".alert", alert_id=alert_id), 303)


@bp.route("/alerts/thresholds", methods=["GET", "POST"])
def alert_thresholds() -> Any:
    """The merchant's thresholds: the configured defaults with a manager's own over them."""
    staff = signed_in_manager()
    error = None
    if request.method == "POST":
        try:
            values = _read_thresholds(request.form)
            with database().unit_of_work() as uow:
                thresholds.set_thresholds(uow, staff.merchant_id, values, staff.actor)
                uow.commit()
        except InvalidInput as exc:
            error = exc.message
        else:
            flash(_("Thresholds saved: the rules use them from the next event on."))
            return redirect(url_for(".alert_thresholds"), 303)
    with database().unit_of_work(readonly=True) as uow:
        current = thresholds.for_merchant(uow, staff.merchant_id)
        stores = list(
            uow.session.scalars(
                select(Store).where(Store.merchant_id == staff.merchant_id).order_by(Store.name)
            )
        )
        return render_template(
            "portal/alert_thresholds.html",
            staff=staff,
            merchant=staff_session.merchant_of(staff),
            error=error,
            form=request.form if error else {},
            fields=FIELDS,
            current=current.as_dict(),
            defaults=thresholds.defaults().as_dict(),
            stores=[(s, format_opening_hours(s.opening_hours)) for s in stores],
        ), 422 if error else 200


@bp.post("/alerts/opening-hours")
def opening_hours() -> Redirect:
    """A store's opening hours, for the outside-hours rule (empty: none)."""
    staff = signed_in_manager()
    text = request.form.get("hours", "")[:500]
    try:
        store_id = input_guard.whole_number(
            request.form.get("store_id", ""), "Store", low=1, high=2**31 - 1
        )
        with database().unit_of_work() as uow:
            thresholds.set_opening_hours(uow, staff.scope, store_id, text, staff.actor)
            uow.commit()
        flash(_("Opening hours saved."))
    except (InvalidInput, NotFound) as exc:
        flash(_("Could not save the opening hours: %(why)s.", why=exc.message))
    return redirect(url_for(".alert_thresholds"), 303)


def _read_thresholds(form: MultiDict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for name, default in Thresholds().as_dict().items():
        text = form.get(name, "").strip()
        if not text:
            raise InvalidInput(_("%(name)s is required.", name=name))
        if isinstance(default, int):
            values[name] = input_guard.whole_number(text, name, low=0, high=1_000_000)
        else:
            values[name] = text
    return values


def open_alerts() -> int:
    """How many alerts wait for the signed-in person (the portal bar; 0 if they may not read
    alerts)."""
    staff = current_staff()
    if staff is None or not staff.can("alerts.view"):
        return 0
    with database().unit_of_work(readonly=True) as uow:
        return alert_service.count_open(uow, staff.scope)


def bar() -> dict[str, Any]:
    """Template context for every portal page: the open alerts' count, asked for lazily."""
    return {"open_alerts": open_alerts}
