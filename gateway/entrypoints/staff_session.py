"""Staff sign-in shared by the cashier screen and the merchant portal.

One login implementation for both audiences: the session (a signed cookie) holds only the staff
member's id, their session version and whether (and when) they passed their second factor;
every request loads them again from the database, so a deactivated account, a changed password
or a logout (each bumps the version) ends every session of that person at once, and the web
tier stays stateless. Sign-ins are throttled per account and per address and audited. Pages get
HTML error pages, ``Cache-Control: no-store``, a strict Content-Security-Policy and template
filters for money and local times.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from babel.dates import format_datetime
from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    has_request_context,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response as Redirect

from gateway.adapters import i18n
from gateway.adapters.db import Database
from gateway.adapters.i18n import gettext as _
from gateway.adapters.models import Merchant, StaffUser, utcnow
from gateway.domain.money import Money
from gateway.domain.receipt import short_reference
from gateway.entrypoints.status_names import error_title, status_name
from gateway.entrypoints.terminal_texts import attention_shown
from gateway.errors import ApprovalRefused, KassaError, TooManyAttempts, Unauthorised
from gateway.services.staff import audit, mfa, throttling
from gateway.services.staff.audit_context import Acting, set_acting, set_source
from gateway.services.staff.auth import (
    StaffContext,
    authenticate_staff,
    load_staff,
    staff_by_username,
)
from gateway.settings import Settings

STAFF_KEY = "staff_id"
VERSION_KEY = "staff_v"
MFA_KEY = "mfa_at"  # when the second factor was last passed (epoch seconds), if at all
# Pages a signed-in person who must change their password may still reach.
PASSWORD_CHANGE_ENDPOINTS = frozenset(
    {"portal.identity.change_password", "portal.login", "portal.logout", "cashier.logout"}
)
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


def settings() -> Settings:
    configured: Settings = current_app.extensions["kassa.settings"]
    return configured


def clock() -> datetime:
    """Now, as the app sees it (tests put their own clock in ``kassa.clock``)."""
    now: Callable[[], datetime] = current_app.extensions.get("kassa.clock", utcnow)
    return now()


def throttle_policy() -> throttling.ThrottlePolicy:
    security = settings().security
    return throttling.ThrottlePolicy(
        account=throttling.Limits(security.login_free_failures, security.login_lockout_failures),
        address=throttling.Limits(
            security.login_address_free_failures, security.login_address_lockout_failures
        ),
        max_delay_seconds=security.login_max_delay_seconds,
        lockout_seconds=security.login_lockout_seconds,
    )


def client_address() -> str:
    return request.remote_addr or "unknown"


def log_in(username: str, password: str) -> StaffContext:
    """Check the credentials and start a fresh session (a new one, against session fixation).

    Throttled per account and per address (:class:`TooManyAttempts`); every failure and
    success is audited. An unknown name costs the same password hash as a known one.
    """
    now, address = clock(), client_address()
    with database().unit_of_work() as uow:
        throttling.check(uow, username, address, now)
        try:
            staff = authenticate_staff(uow, username, password)
        except Unauthorised:
            throttling.failed(uow, username, address, now, throttle_policy())
            user = staff_by_username(uow, username)
            audit.record(
                uow,
                "login.failed",
                actor=f"staff:{username.strip()[:64]}",
                staff_id=user.id if user else None,
                role=user.role if user else None,
                merchant_id=user.merchant_id if user else None,
                target=("staff", user.id if user else username.strip()[:64]),
            )
            uow.commit()
            raise
        throttling.succeeded(uow, username)
        acting(staff)
        audit.record(uow, "login", target=("staff", staff.user_id))
        uow.commit()
    picked = session.get("lang")  # the language chosen on the sign-in page stays
    session.clear()
    if picked:
        session["lang"] = picked
    session.permanent = True
    session[STAFF_KEY] = staff.user_id
    session[VERSION_KEY] = staff.session_version
    g.kassa_staff = staff
    g.staff_locale = staff.language
    return staff


def acting(staff: StaffContext) -> None:
    set_acting(Acting(staff.actor, staff.user_id, staff.role, staff.merchant_id, staff.store_id))


def end_sessions(uow: Any, user: StaffUser) -> None:
    """Every session of this person ends: their cookies carry the old version."""
    user.session_version += 1


def log_out() -> None:
    """Sign out here and everywhere else this person is signed in."""
    staff = current_staff()
    if staff is not None:
        with database().unit_of_work() as uow:
            user = uow.session.get(StaffUser, staff.user_id)
            if user is not None:
                end_sessions(uow, user)
                audit.record(uow, "logout", target=("staff", staff.user_id))
                uow.commit()
    session.clear()
    g.pop("kassa_staff", None)


def current_staff() -> StaffContext | None:
    """The signed-in staff member, loaded once per request; None if nobody, deactivated, or
    if this session was ended (its version is older than the person's)."""
    if "kassa_staff" not in g:
        staff_id = session.get(STAFF_KEY)
        staff = None
        if isinstance(staff_id, int):
            with database().unit_of_work(readonly=True) as uow:
                staff = load_staff(uow, staff_id)
            if staff is not None and session.get(VERSION_KEY) != staff.session_version:
                staff = None
            if staff is None:
                session.clear()
        if staff is not None:
            acting(staff)
            g.staff_locale = staff.language
        g.kassa_staff = staff
    result: StaffContext | None = g.kassa_staff
    return result


def record_download(report: str, **detail: Any) -> None:
    """Audit a CSV download by the signed-in person (its own small transaction)."""
    with database().unit_of_work() as uow:
        audit.record(uow, "csv.downloaded", target=("report", report), after=detail)
        uow.commit()


def second_factor_passed() -> bool:
    return isinstance(session.get(MFA_KEY), int | float)


def mark_second_factor() -> None:
    session[MFA_KEY] = clock().timestamp()


def recent_second_factor() -> bool:
    """Passed within ``[security] step_up_seconds``: sensitive actions need no new code."""
    passed = session.get(MFA_KEY)
    if not isinstance(passed, int | float):
        return False
    return clock().timestamp() - passed <= settings().security.step_up_seconds


def second_factor_gate(staff: StaffContext) -> Redirect | None:
    """Where a portal person who has only typed a password must go first, if anywhere."""
    if not mfa.needs_second_factor(staff.role) or second_factor_passed():
        return None
    endpoint = "portal.identity.second_factor" if staff.mfa_enrolled else "portal.identity.enrol"
    if request.endpoint in ("portal.identity.second_factor", "portal.identity.enrol"):
        return None
    return redirect(url_for(endpoint))


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


def login_page(template: str, **context: Any) -> Response | None:
    """Handle the login form: None when signed in (caller redirects), else the page to show
    (401 after a wrong password, 429 with Retry-After while throttled)."""
    error = None
    username = ""
    status, headers = 200, {}
    if request.method == "POST":
        username = request.form.get("username", "").strip()
        try:
            log_in(username, request.form.get("password", ""))
            return None
        except TooManyAttempts as exc:
            error = _("Sign-in paused: %(reason)s.", reason=exc.message)
            status, headers = 429, {"Retry-After": str(exc.extra.get("retry_after", 60))}
        except Unauthorised as exc:
            error = _("Sign-in failed: %(reason)s. Check both and try again.", reason=exc.message)
            status = 401
    page = render_template(template, error=error, username=username, **context)
    return make_response(page, status, headers)


def format_money(minor: int, currency: str, locale: str | None = None) -> str:
    """``{{ minor | money(currency) }}``: in the request's language (``1.234,56 €`` in German).
    A ``locale`` argument (templates once passed the merchant's) is used outside a request
    only: on a page, the page's language decides, so numbers never mix two conventions."""
    return Money(minor, currency).format(_display_locale(locale))


def format_local_time(
    moment: datetime | None, timezone: str = "UTC", locale: str | None = None
) -> str:
    """``{{ moment | local_time(store_timezone) }}``: the store's time, written the way the
    request's language writes dates (see :func:`format_money` on ``locale``)."""
    if moment is None:
        return ""
    return format_datetime(
        moment, "medium", tzinfo=ZoneInfo(timezone), locale=_display_locale(locale)
    )


def _display_locale(explicit: str | None) -> str:
    if has_request_context() or explicit is None:
        return i18n.current_locale()
    return explicit


def install(bp: Blueprint, error_template: str) -> None:
    """Give a page blueprint HTML error pages, the CSP header and the display filters."""
    bp.add_app_template_filter(format_money, "money")
    bp.add_app_template_filter(format_local_time, "local_time")
    bp.add_app_template_filter(status_tone, "tone")
    bp.add_app_template_filter(status_name, "status_name")
    bp.add_app_template_filter(short_reference, "short_reference")
    bp.add_app_template_filter(attention_shown, "attention")  # a payment's reasons, translated

    @bp.before_request
    def _forced_password_change() -> Any:
        staff = current_staff()
        if (
            staff is not None
            and staff.must_change_password
            and request.endpoint not in PASSWORD_CHANGE_ENDPOINTS
        ):
            return redirect(url_for("portal.identity.change_password"))
        return None

    @bp.after_request
    def _csp(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        # Staff pages show payments and people: never kept by a browser or a proxy.
        response.headers["Cache-Control"] = "no-store"
        return response

    @bp.errorhandler(KassaError)
    def _error(exc: KassaError) -> tuple[str, int]:
        title = error_title(exc.title)
        return render_template(error_template, title=title, message=exc.message), exc.status

    @bp.errorhandler(CSRFError)
    def _csrf(exc: CSRFError) -> tuple[str, int]:
        message = _(
            "This form has expired or was sent from somewhere else, so nothing was done. "
            "Go back, reload the page and try again."
        )
        return render_template(error_template, title=_("Form expired"), message=message), 400

    @bp.errorhandler(404)
    def _not_found(exc: Exception) -> tuple[str, int]:
        return render_template(
            error_template, title=_("Not found"), message=_("There is no such page here.")
        ), 404


class SessionCookies(SecureCookieSessionInterface):
    """The signed session cookie, ``Secure`` whenever the request came over HTTPS (directly or
    as a trusted proxy says), not only when ``[web] secure_cookies`` is set."""

    def get_cookie_secure(self, app: Flask) -> bool:
        configured = super().get_cookie_secure(app)
        return configured or (has_request_context() and request.is_secure)


def install_app(app: Flask, configured: Settings) -> None:
    """Staff identity for the whole app: the cookie interface, the trusted proxy, the TOTP
    secrets' key and the audit trail's source (the request's address) for every request."""
    from gateway.config import mfa_key

    app.session_interface = SessionCookies()
    proxies = configured.security.trusted_proxies
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )
    mfa.configure(mfa_key(configured))

    @app.before_request
    def _audit_source() -> None:
        set_source(request.remote_addr or "unknown")

    @app.before_request
    def _staff_language() -> None:
        """Before anything is translated: the signed-in person's language (``g.staff_locale``),
        or the one picked with ``?lang=`` on a sign-in page (kept in the session)."""
        if request.method == "GET":
            picked = request.args.get("lang")
            if picked in i18n.LOCALES:
                session["lang"] = picked
        # No cookie, nobody signed in: a till's or the bank's call opens no session.
        if "HTTP_COOKIE" in request.environ and isinstance(session.get(STAFF_KEY), int):
            current_staff()


def count_wrong_approval(exc: ApprovalRefused) -> None:
    """Count a wrong supervisor name or PIN like a wrong password, in its own transaction (the
    action's has rolled back), so PINs cannot be guessed at the till or through the API."""
    if exc.wrong_credentials is None:
        return
    with database().unit_of_work() as uow:
        address = request.remote_addr or ""
        throttling.failed(uow, exc.wrong_credentials, address, clock(), throttle_policy())
        uow.commit()
