"""The sandbox bank's application factory."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any

from flask import Flask, g, redirect, request
from werkzeug.wrappers import Response

from gateway.adapters import logging_setup
from gateway.adapters.logging_setup import SANE_REQUEST_ID
from sandbox_bank import merchants, problems, settings, state
from sandbox_bank.api import api
from sandbox_bank.console import console
from sandbox_bank.delivery import DeliveryWorker
from sandbox_bank.models import Database

log = logging.getLogger("sandbox_bank.request")


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build a sandbox bank from a Kassa configuration (its ``[sandbox_bank]`` section).

    Without ``config`` the configuration files and ``KASSA_*`` variables are read. Creates
    the tables, loads the configured merchants, and starts the callback delivery thread only
    when ``deliver_in_background`` is true (tests call ``delivery.deliver_due`` instead).
    """
    chosen = settings.from_config(settings.read_config() if config is None else config)
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    database = Database(chosen.database_url)
    database.create_all()
    with database.session() as session:
        merchants.sync(session, chosen)
    bank = state.SandboxBank(settings=chosen, db=database)
    app.extensions[state.EXTENSION] = bank
    problems.register(app)
    _request_ids(app)
    app.register_blueprint(api)
    app.register_blueprint(console)
    app.add_url_rule("/", "home", _home)
    app.add_url_rule("/healthz", "health", _health)
    if chosen.deliver_in_background:
        bank.worker = DeliveryWorker(app)
        bank.worker.start()
    return app


def _request_ids(app: Flask) -> None:
    """Each request's id: the caller's ``X-Request-Id`` if plain (the gateway sends its own),
    else a new one; on its log lines, echoed in the answer, and stored with the callbacks it
    causes (:func:`sandbox_bank.events.queue_callback`)."""

    @app.before_request
    def _take() -> None:
        incoming = request.headers.get("X-Request-Id", "")
        chosen = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.sandbox_started = time.perf_counter()
        logging_setup.request_id.set(chosen)

    @app.after_request
    def _answer(response: Response) -> Response:
        chosen = logging_setup.request_id.get()
        if chosen is not None:
            response.headers["X-Request-Id"] = chosen
        took = (time.perf_counter() - g.get("sandbox_started", time.perf_counter())) * 1000
        log.info("%s %s %s in %.0f ms", request.method, request.path, response.status_code, took)
        return response

    @app.teardown_request
    def _forget(_: BaseException | None) -> None:
        logging_setup.request_id.set(None)


def _home() -> Response:
    return redirect("/sandbox/")


def _health() -> dict[str, str]:
    return {"status": "ok"}
