"""The application factory: the gateway web tier (API, cashier screen, merchant portal).

The web tier keeps no state between requests (sessions are signed cookies), so it scales by
adding web workers; the database is the one source of truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, redirect, url_for
from flask.sessions import SecureCookieSession, SessionMixin
from flask_wtf.csrf import CSRFProtect

from gateway.adapters import passwords
from gateway.adapters.db import Database
from gateway.config import load_config, secret_key
from gateway.entrypoints import access, input_guard, languages, observability, problems
from gateway.services.monitoring import thresholds
from gateway.services.promotions.sales import PromotionSettings
from gateway.settings import Settings

# The machines' paths: the bank's signed callbacks and the tills' key-authenticated API. No
# browser calls them with a cookie (access.py gives every endpoint under them the audience
# ``bank-signed``, ``till-key`` or ``public``), so they get no session (see MachineSessions).
MACHINE_PATHS = ("/bank/", "/api/")


def machine_request(request: Request) -> bool:
    """True for a request to a machine's path (:data:`MACHINE_PATHS`)."""
    return request.path.startswith(MACHINE_PATHS)


class _NoSession(SecureCookieSession):
    """A machine request's session: empty, and never written back as a cookie."""


def _machine_sessions(app: Flask) -> None:
    """Skip the signed session cookie on machine paths: a machine sends none, so opening one
    (a signing serializer per request) and saving it only cost time. A cookie sent there anyway
    is ignored, never read: nothing on those paths acts for a signed-in person."""
    interface = app.session_interface
    cookie_session = type(interface)

    class MachineSessions(cookie_session):  # type: ignore[valid-type,misc]
        def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
            if machine_request(request):
                return _NoSession()
            return super().open_session(app, request)

        def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
            if isinstance(session, _NoSession):
                return
            super().save_session(app, session, response)

    app.session_interface = MachineSessions()


# Set on every response that has not set its own.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
)


class Gateway(Flask):
    """Flask, asking once per function whether a hook or view is a coroutine function (Flask
    asks for each of a request's ten hooks, every request; Kassa has none)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        try:
            return self._sync[func]
        except KeyError:
            made = self._sync[func] = super().ensure_sync(func)
            return made
        except TypeError:  # not hashable: asked each time, as Flask does
            return super().ensure_sync(func)


def create_app(settings: Settings | None = None, *, db: Database | None = None) -> Flask:
    settings = settings or load_config()
    app = Gateway(__name__)
    app.config.update(
        SECRET_KEY=secret_key(settings),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.web.secure_cookies,
        SESSION_COOKIE_NAME="kassa_session",
        PERMANENT_SESSION_LIFETIME=12 * 3600,
        WTF_CSRF_TIME_LIMIT=None,  # tied to the session instead: a till stays open all day
        JSON_SORT_KEYS=False,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    app.json.sort_keys = False  # type: ignore[attr-defined]
    languages.install(app)
    passwords.configure(settings.security.argon2_time_cost, settings.security.argon2_memory_kib)
    thresholds.configure(settings.monitoring)  # the anomaly rules' defaults (hooks carry none)
    database = db or Database(
        settings.database.url, settings.database.echo, settings.database.pool_size
    )
    app.extensions["kassa.settings"] = settings
    app.extensions["kassa.db"] = database
    app.extensions["kassa.payment_settings"] = settings.payments
    app.extensions["kassa.promotion_settings"] = PromotionSettings.from_settings(settings)

    from gateway.entrypoints import api, bank, cashier, receipts, staff_session

    staff_session.install_app(app, settings)
    _machine_sessions(app)
    from merchant_portal import bp as portal_bp

    for blueprint in (api.bp, bank.bp, cashier.bp, portal_bp, receipts.bp):
        app.register_blueprint(blueprint)
    csrf = CSRFProtect(app)
    for name, registered in app.blueprints.items():
        # Tills authenticate with bearer keys, not cookies; the bank signs its callbacks.
        if name.split(".")[0] in (api.bp.name, bank.bp.name):
            csrf.exempt(registered)
    problems.register(app)
    observability.install(app, database)  # a request id before any check can refuse it
    input_guard.install(app)  # first: what no check below may ever see (NUL, deep JSON, …)
    access.install(app, database)  # every endpoint's guard: gateway/entrypoints/access.py

    @app.get("/")
    def index() -> Any:
        return redirect(url_for("cashier.index"))

    @app.get("/healthz")
    def healthz() -> Response:
        from sqlalchemy import text

        with database.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return Response('{"status":"ok"}', mimetype="application/json")

    @app.get("/readyz")
    def readyz() -> Response:
        """Ready for traffic: the database answers and its schema is at this code's head
        (``/healthz`` only says the process is alive). 503 with the reason otherwise."""
        import json

        from sqlalchemy.exc import SQLAlchemyError

        from gateway.errors import ConfigurationError

        try:
            database.require_current_schema()
        except ConfigurationError as exc:
            reason = exc.message
        except SQLAlchemyError as exc:
            reason = f"the database does not answer: {type(exc).__name__}"
        else:
            return Response('{"status":"ready"}', mimetype="application/json")
        body = json.dumps({"status": "not ready", "reason": reason})
        return Response(body, status=503, mimetype="application/json")

    @app.after_request
    def security_headers(response: Response) -> Response:
        headers = response.headers
        present = set(headers.keys(lower=True))
        for name, value in SECURITY_HEADERS:
            if name.lower() not in present:
                headers.add(name, value)  # none of that name: as setdefault would
        return response

    return app
