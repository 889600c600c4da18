"""Staff sign-in shared by the cashier screen and the merchant portal.

One login implementation for both audiences: the session (a signed cookie) holds only the staff
member's id, and every request loads them again from the database, so a deactivated account is
locked out at once and the web tier stays stateless. Pages get HTML error pages, a strict
Content-Security-Policy and template filters for money and local times.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import Blueprint, Response, current_app, g, render_template, request, session
from flask_wtf.csrf import CSRFError

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant
from gateway.domain.money import Money
from gateway.errors import KassaError, Unauthorised
from gateway.services.staff.auth import StaffContext, authenticate_staff, load_staff

STAFF_KEY = "staff_id"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; script-src 'self'; style-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
# How each payment status looks: the cashier screen's full-screen state and the portal's badge.
STATUS_TONES = {
    "created": "open",
    "pending": "open",
    "authorised": "open",
    "paid": "paid",
    "settled": "paid",
    "partially_refunded": "refunded",
    "refunded": "refunded",
    "expired": "expired",
    "cancelled": "cancelled",
    "failed": "failed",
    "unknown": "unknown",
}


def status_tone(status: str) -> str:
    return STATUS_TONES.get(status, "failed")


def database() -> Database:
    db: Database = current_app.extensions["kassa.db"]
    return db


def log_in(username: str, password: str) -> StaffContext:
    """Check the credentials and start a fresh session (a new one, against session fixation)."""
    with database().unit_of_work(readonly=True) as uow:
        staff = authenticate_staff(uow, username, password)
    session.clear()
    session.permanent = True
    session[STAFF_KEY] = staff.user_id
    return staff


def log_out() -> None:
    session.clear()


def current_staff() -> StaffContext | None:
    """The signed-in staff member, loaded once per request; None if nobody (or deactivated)."""
    if "kassa_staff" not in g:
        staff_id = session.get(STAFF_KEY)
        staff = None
        if isinstance(staff_id, int):
            with database().unit_of_work(readonly=True) as uow:
                staff = load_staff(uow, staff_id)
        g.kassa_staff = staff
    result: StaffContext | None = g.kassa_staff
    return result


@dataclass(frozen=True, slots=True)
class MerchantSummary:
    """What a page shows of the staff member's merchant."""

    name: str
    locale: str
    currency: str


def merchant_of(staff: StaffContext) -> MerchantSummary:
    with database().unit_of_work(readonly=True) as uow:
        merchant = uow.session.get_one(Merchant, staff.merchant_id)
        return MerchantSummary(merchant.name, merchant.locale, merchant.default_currency)


def login_page(template: str, **context: Any) -> tuple[str, int] | None:
    """Handle the login form: None when signed in (caller redirects), else the page to show."""
    error = None
    username = ""
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            log_in(username, request.form.get("password", ""))
            return None
        except Unauthorised as exc:
            error = f"Sign-in failed: {exc.message}. Check both and try again."
    status = 401 if error else 200
    return render_template(template, error=error, username=username, **context), status


def format_money(minor: int, currency: str, locale: str = "en") -> str:
    return Money(minor, currency).format(locale)


def format_local_time(moment: datetime | None, timezone: str = "UTC", locale: str = "en") -> str:
    if moment is None:
        return ""
    return format_datetime(moment, "medium", tzinfo=ZoneInfo(timezone), locale=locale)


def install(bp: Blueprint, error_template: str) -> None:
    """Give a page blueprint HTML error pages, the CSP header and the display filters."""
    bp.add_app_template_filter(format_money, "money")
    bp.add_app_template_filter(format_local_time, "local_time")
    bp.add_app_template_filter(status_tone, "tone")

    @bp.after_request
    def _csp(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response

    @bp.errorhandler(KassaError)
    def _error(exc: KassaError) -> tuple[str, int]:
        return render_template(error_template, title=exc.title, message=exc.message), exc.status

    @bp.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[str, int]:
        message = (
            "This form has expired or was sent from somewhere else, so nothing was done. "
            "Go back, reload the page and try again."
        )
        return render_template(error_template, title="Form expired", message=message), 400

    @bp.errorhandler(404)
    def _not_found(exc: Exception) -> tuple[str, int]:
        return render_template(
            error_template, title="Not found", message="There is no such page here."
        ), 404
