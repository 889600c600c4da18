"""The sandbox bank's application factory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, redirect
from werkzeug.wrappers import Response

from sandbox_bank import merchants, problems, settings, state
from sandbox_bank.api import api
from sandbox_bank.console import console
from sandbox_bank.delivery import DeliveryWorker
from sandbox_bank.models import Database


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
    app.register_blueprint(api)
    app.register_blueprint(console)
    app.add_url_rule("/", "home", _home)
    app.add_url_rule("/healthz", "health", _health)
    if chosen.deliver_in_background:
        bank.worker = DeliveryWorker(app)
        bank.worker.start()
    return app


def _home() -> Response:
    return redirect("/sandbox/")


def _health() -> dict[str, str]:
    return {"status": "ok"}
