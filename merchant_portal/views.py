"""`/portal`: the merchant portal for managers and owners — their own merchant's payments.

Sign-in is the cashier screen's (``gateway.entrypoints.staff_session``); cashiers may sign in but
get a friendly 403 here (``gateway.entrypoints.access`` guards every page). Every query is scoped
to the signed-in staff member's merchant, and a store manager's to their store.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

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
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response as Redirect

from gateway.adapters.i18n import gettext as _
from gateway.adapters.models import utcnow
from gateway.config import device_log_dir
from gateway.domain.payment import PaymentStatus
from gateway.entrypoints import staff_session, terminal_texts
from gateway.entrypoints.staff_session import current_staff, database
from gateway.errors import Conflict, InvalidInput, NotFound, Unauthorised
from gateway.services.devices import device_reads, outcomes, refund_outcomes
from gateway.services.devices import end_of_day as end_of_day_service
from gateway.services.payments import attention, payment_reads, refunds
from gateway.services.staff.auth import StaffContext
from merchant_portal import dashboard
from merchant_portal.filters import PagedDateRange

bp = Blueprint("portal", __name__, url_prefix="/portal", template_folder="templates")
# A heartbeat older than this means the device host is gone (it beats every few seconds).
STALE_SECONDS = 30
# The Devices page shows this much of each till's raw device log, newest last.
LOG_MINUTES = 5
LOG_LINES = 200
staff_session.install(bp, "portal/error.html")

PAGE_SIZE = 50
STATUSES = [s.value for s in PaymentStatus]


def signed_in_manager() -> StaffContext:
    staff = current_staff()
    if staff is None:  # the access guard ran first; this is for the type checker
        raise Unauthorised("sign in first")
    return staff


@bp.route("/login", methods=["GET", "POST"])
def login() -> Any:
    page = staff_session.login_page("portal/login.html")
    return page or redirect(url_for(".index"), 303)


@bp.post("/logout")
def logout() -> Redirect:
    staff_session.log_out()
    return redirect(url_for(".login"), 303)


@dataclass
class ListQuery(PagedDateRange):
    """The payment list's filters as typed in the URL, checked, with errors in words."""

    status: str = ""

    @classmethod
    def parse(cls, args: MultiDict[str, str]) -> ListQuery:
        query = cls()
        status = args.get("status", "")
        if status and status not in STATUSES:
            query.errors.append(f"“{status}” is not a payment status.")
        else:
            query.status = status
        query.read_range_and_page(args)
        return query

    def to_filter(self) -> payment_reads.PaymentFilter:
        return payment_reads.PaymentFilter(
            status=self.status or None,
            date_from=self.date_from,
            date_to=self.date_to,
            limit=PAGE_SIZE,
            offset=(self.page - 1) * PAGE_SIZE,
        )

    def url_args(self, **changes: Any) -> dict[str, Any]:
        args = {
            "status": self.status,
            "from": self.date_from,
            "to": self.date_to,
            "page": self.page,
        } | changes
        return {k: v for k, v in args.items() if v and not (k == "page" and v == 1)}


@bp.get("/")
def index() -> Any:
    """The dashboard: turnover, customers, retention, promotions and settlement, charted."""
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    query = dashboard.DashboardQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        board = dashboard.build(uow, staff, query, utcnow(), merchant.locale)
    return render_template(
        "portal/dashboard.html",
        staff=staff,
        merchant=merchant,
        board=board,
        query=query,
        periods=dashboard.PERIODS,
    ), query.http_status


@bp.get("/dashboard/<chart>.csv")
def dashboard_csv(chart: str) -> Any:
    """One dashboard chart's numbers as CSV, for the same period and store as the page."""
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    query = dashboard.DashboardQuery.parse(request.args)
    if query.errors:
        raise InvalidInput(" ".join(query.errors))
    if chart not in dashboard.GROUPS:
        raise NotFound(f"no dashboard chart {chart!r}")
    with database().unit_of_work(readonly=True) as uow:
        board = dashboard.build(uow, staff, query, utcnow(), merchant.locale, only=chart)
    panel = next((p for p in board.panels if p.key == chart), None)
    if panel is None:
        raise NotFound(f"no dashboard chart {chart!r}")
    first, last = board.period.first.isoformat(), board.period.last.isoformat()
    staff_session.record_download(
        "dashboard", chart=chart, first=first, last=last, store_id=query.store_id
    )
    return Response(
        dashboard.to_csv(panel),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{chart}_{first}_{last}.csv"'},
    )


@bp.get("/payments")
def payments() -> Any:
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    query = ListQuery.parse(request.args)
    with database().unit_of_work(readonly=True) as uow:
        rows, total = (
            ([], 0)
            if query.errors
            else payment_reads.list_payments(uow, staff.scope, query.to_filter())
        )
        return render_template(
            "portal/payments.html",
            staff=staff,
            merchant=merchant,
            payments=rows,
            total=total,
            query=query,
            statuses=STATUSES,
            page_size=PAGE_SIZE,
        ), query.http_status


@bp.get("/payments/<payment_id>")
def payment_detail(payment_id: str) -> Any:
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    with database().unit_of_work(readonly=True) as uow:
        payment = payment_reads.get_payment(uow, payment_id, staff.scope)
        sale = None
        if payment.sale_id:
            from gateway.services.promotions.sales import get_sale

            sale = get_sale(uow, payment.sale_id, staff.scope)
        return render_template(
            "portal/payment.html",
            staff=staff,
            merchant=merchant,
            payment=payment,
            sale=sale,
            refunds=refunds.list_refunds(uow, payment_id),
            terminal_text=terminal_texts.shown,  # a reversal the terminal refused says why
            bank_claim=attention.open_claim(uow, payment),
        )


@bp.get("/devices")
def devices() -> Any:
    """Each till's card terminal and NFC reader as its device host last reported them."""
    staff = signed_in_manager()
    merchant = staff_session.merchant_of(staff)
    with database().unit_of_work(readonly=True) as uow:
        rows = device_reads.device_statuses(uow, staff.scope)
        batches = device_reads.till_batches(uow, staff.scope)
        now = utcnow()
        return render_template(
            "portal/devices.html",
            staff=staff,
            merchant=merchant,
            rows=rows,
            batches=batches,
            stale=lambda status: (now - status.last_seen_at).total_seconds() > STALE_SECONDS,
            logs=device_reads.recent_device_logs(
                device_log_dir(current_app.extensions["kassa.settings"]),
                rows,
                since=time.time() - LOG_MINUTES * 60,
                limit=LOG_LINES,
            ),
            log_minutes=LOG_MINUTES,
        )


@bp.post("/devices/<int:till_id>/end-of-day")
def end_of_day(till_id: int) -> Redirect:
    """Close the till's terminal batch now (the device host runs it in a moment)."""
    staff = signed_in_manager()
    with database().unit_of_work() as uow:
        try:
            end_of_day_service.request_end_of_day(uow, till_id, staff.scope, staff.actor)
            uow.commit()
            flash(_("End of day queued: the terminal closes its batch in a moment."))
        except Conflict as exc:
            flash(_("Could not start end of day: %(reason)s.", reason=exc.message))
    return redirect(url_for(".devices"), 303)


@bp.post("/payments/<payment_id>/resolve")
def resolve_payment(payment_id: str) -> Any:
    """A manager settles a card payment whose outcome is unknown, with a note."""
    staff = signed_in_manager()
    charged = request.form.get("charged") == "yes"
    with database().unit_of_work() as uow:
        try:
            outcomes.resolve_by_hand(
                uow,
                payment_id,
                staff.scope,
                charged=charged,
                note=request.form.get("note", "")[:500],
                actor=staff.actor,
            )
            uow.commit()
            flash(_("Recorded: charged.") if charged else _("Recorded: not charged."))
        except (Conflict, InvalidInput) as exc:
            flash(_("Could not resolve: %(reason)s.", reason=exc.message))
    return redirect(url_for(".payment_detail", payment_id=payment_id), 303)


@bp.post("/payments/<payment_id>/resolve-refund")
def resolve_refund(payment_id: str) -> Any:
    """A manager settles a card refund of the payment whose outcome is unknown, with a note."""
    staff = signed_in_manager()
    refunded = request.form.get("refunded") == "yes"
    with database().unit_of_work() as uow:
        try:
            refund_outcomes.resolve_by_hand(
                uow,
                payment_id,
                request.form.get("refund_id", "")[:64],
                staff.scope,
                refunded=refunded,
                note=request.form.get("note", "")[:500],
                actor=staff.actor,
            )
            uow.commit()
            flash(_("Recorded: refunded.") if refunded else _("Recorded: not refunded."))
        except (Conflict, InvalidInput) as exc:
            flash(_("Could not resolve: %(reason)s.", reason=exc.message))
    return redirect(url_for(".payment_detail", payment_id=payment_id), 303)
