"""`/portal/mfa…` and `/portal/password`: the second factor (enrol, prompt, step-up) and
changing one's own password.

A portal person who has typed only a password lands here (``second_factor_gate``) and reaches
the portal only after a TOTP code or a recovery code. Sensitive actions call
:func:`step_up_required`: the code is asked again when the last one is older than
``[security] step_up_seconds``.
"""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from gateway.adapters import qr_render
from gateway.adapters.i18n import LANGUAGE_NAMES
from gateway.adapters.i18n import gettext as _
from gateway.adapters.i18n import lazy_gettext as _l
from gateway.adapters.models import StaffUser
from gateway.domain.money import Money
from gateway.entrypoints import staff_session
from gateway.entrypoints.staff_session import current_staff, database
from gateway.errors import Conflict, InvalidInput, TooManyAttempts, Unauthorised
from gateway.services.staff import admin, audit, mfa, throttling
from gateway.services.staff.auth import StaffContext

bp = Blueprint("identity", __name__)
# Reachable by every signed-in person, cashiers too (the portal's role check skips them).
ANY_STAFF_ENDPOINTS = frozenset({"portal.identity.change_password", "portal.identity.set_language"})
View = TypeVar("View", bound=Callable[..., Any])
WRONG_CODE = _l("That code is not right (or was used already). Wait for the next one and retry.")


def _staff() -> StaffContext:
    staff = current_staff()
    if staff is None:
        raise Unauthorised("sign in first")
    return staff


def local_path(target: str | None, fallback: str) -> str:
    """Only a path on this site, never another host (no open redirect: browsers read
    ``//host`` and ``/\\host`` as another site)."""
    if not target or "\\" in target or target.startswith("//"):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not parts.path.startswith("/"):
        return fallback
    return target


@bp.route("/mfa/enrol", methods=["GET", "POST"])
def enrol() -> Any:
    """First sign-in: the QR code and secret to add to an authenticator app, then a code."""
    staff = _staff()
    if staff.mfa_enrolled:
        return redirect(url_for(".second_factor"))
    error = None
    with database().unit_of_work() as uow:
        user = uow.session.get_one(StaffUser, staff.user_id)
        secret = mfa.pending_secret(uow, user)
        if request.method == "POST":
            try:
                enrolment = mfa.confirm_enrolment(
                    uow, user, request.form.get("code", ""), staff_session.clock()
                )
                uow.commit()
                staff_session.mark_second_factor()
                codes = [mfa.format_recovery_code(c) for c in enrolment.recovery_codes]
                return render_template("portal/mfa_codes.html", staff=staff, codes=codes)
            except InvalidInput as exc:
                error = exc.message
        uow.commit()  # the pending secret stays the same on reload
    uri = mfa.provisioning_uri(secret, staff.username)
    qr = base64.b64encode(qr_render.render_png(uri, scale=5)).decode()
    status = 422 if error else 200
    page = render_template(
        "portal/mfa_enrol.html", staff=staff, uri=uri, secret=secret, qr=qr, error=error
    )
    return page, status


@bp.route("/mfa", methods=["GET", "POST"])
def second_factor() -> Any:
    """The code prompt after the password (or a recovery code)."""
    staff = _staff()
    if not staff.mfa_enrolled:
        return redirect(url_for(".enrol"))
    if staff_session.second_factor_passed() and request.method == "GET":
        return redirect(url_for("portal.index"))
    if request.method == "POST":
        return _prompt(staff, step_up=False, back=local_path(request.args.get("next"), ""))
    return render_template("portal/mfa_prompt.html", staff=staff, error=None, step_up=False)


@bp.route("/mfa/step-up", methods=["GET", "POST"])
def step_up() -> Any:
    """Repeat the second factor before a sensitive action; then back to where it started."""
    staff = _staff()
    back = local_path(request.args.get("next"), url_for("portal.index"))
    if request.method == "POST":
        return _prompt(staff, step_up=True, back=back)
    return render_template(
        "portal/mfa_prompt.html", staff=staff, error=None, step_up=True, back=back
    )


def _check_code(staff: StaffContext, code: str, action: str) -> bool:
    """Check a code, throttled like passwords (6 digits are guessable without a limit):
    :class:`TooManyAttempts` while this person or address has to wait."""
    now, address = staff_session.clock(), staff_session.client_address()
    name = f"mfa:{staff.username}"
    with database().unit_of_work() as uow:
        throttling.check(uow, name, address, now)
        ok = mfa.verify_second_factor(uow, staff.user_id, code, now)
        if ok:
            throttling.succeeded(uow, name)
        else:
            throttling.failed(uow, name, address, now, staff_session.throttle_policy())
        audit.record(uow, action if ok else f"{action}.failed", target=("staff", staff.user_id))
        uow.commit()
    return ok


def _prompt(staff: StaffContext, *, step_up: bool, back: str | None = None) -> Any:
    """The code prompt after a POST: wrong code (401) or throttled (429 with Retry-After)."""
    action = "mfa.step_up" if step_up else "mfa.passed"
    try:
        if _check_code(staff, request.form.get("code", ""), action):
            staff_session.mark_second_factor()
            return redirect(back or url_for("portal.index"), 303)
        error, status, headers = str(WRONG_CODE), 401, {}
    except TooManyAttempts as exc:
        error, status = _("Paused: %(reason)s.", reason=exc.message), 429
        headers = {"Retry-After": str(exc.extra.get("retry_after", 60))}
    page = render_template(
        "portal/mfa_prompt.html", staff=staff, error=error, step_up=step_up, back=back
    )
    return page, status, headers


def step_up_required(view: View) -> View:
    """For a sensitive portal action: without a recent second factor, ask for it first.

    A GET comes back to itself afterwards; a POST goes back to the page its form was on (the
    person sends the form again), so nothing is done without the fresh code.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return step_up_redirect() or view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def step_up_redirect() -> Any:
    """The step-up prompt to go to first, or None when the second factor is recent (or the
    person needs none); for a view where only the POST is sensitive."""
    staff = current_staff()
    if staff is None or not mfa.needs_second_factor(staff.role):
        return None
    if staff_session.recent_second_factor():
        return None
    if request.method == "GET":
        back = request.full_path.rstrip("?")
    else:
        referrer = urlsplit(request.referrer or "")
        back = referrer.path + (f"?{referrer.query}" if referrer.query else "")
        flash(_("Confirm it is you with your authenticator code, then send it again."))
    return redirect(url_for("portal.identity.step_up", next=back or None), 303)


def confirmed_now(code: str | None) -> bool:
    """For a form that carries its own code field: True when the second factor is recent, or
    ``code`` is valid now (which counts as a step-up)."""
    staff = current_staff()
    if staff is None:
        return False
    if not mfa.needs_second_factor(staff.role) or staff_session.recent_second_factor():
        return True
    if code and _check_code(staff, code, "mfa.step_up"):
        staff_session.mark_second_factor()
        return True
    return False


def check_budget_step_up(spec: dict[str, Any], code: str | None) -> None:
    """A promotion budget above ``[security] step_up_budget_minor`` needs a fresh second
    factor: refuse (nothing is created) unless it is recent or ``code`` is valid."""
    limit = staff_session.settings().security.step_up_budget_minor
    budgets = [
        (spec.get("limits") or {}).get("budget_minor") or 0,
        (spec.get("table") or {}).get("budget_minor") or 0,
    ]
    if max(budgets) > limit and not confirmed_now(code):
        staff = current_staff()
        currency = staff_session.merchant_of(staff).currency if staff else "EUR"
        raise InvalidInput(
            f"a budget above {Money(limit, currency)} needs your authenticator code: type it in "
            "the “Authenticator code” field and send the form again"
        )


@bp.route("/password", methods=["GET", "POST"])
def change_password() -> Any:
    """Change one's own password (forced after a reset); ends every other session."""
    staff = _staff()
    error = None
    if request.method == "POST":
        try:
            with database().unit_of_work() as uow:
                user = admin.change_password(
                    uow,
                    staff.user_id,
                    request.form.get("current", ""),
                    request.form.get("new", ""),
                    repeat=request.form.get("repeat", ""),
                )
                uow.commit()
                session[staff_session.VERSION_KEY] = user.session_version
            flash(_("Password changed. Every other session of yours has ended."))
            home = "portal.index" if staff.can_manage() else "cashier.index"
            return redirect(url_for(home), 303)
        except (InvalidInput, Conflict) as exc:
            error = exc.message
    forced = staff.must_change_password
    page = render_template(
        "portal/password.html",
        staff=staff,
        error=error,
        forced=forced,
        languages=LANGUAGE_NAMES,
    )
    return page, 422 if error else 200


@bp.post("/language")
def set_language() -> Any:
    """One's own language for the cashier screen and the portal (empty: the browser's)."""
    staff = _staff()
    with database().unit_of_work() as uow:
        admin.set_language(uow, staff.merchant_id, staff.user_id, request.form.get("language"))
        uow.commit()
    return redirect(url_for(".change_password"), 303)
