"""The gateway with a bare Flask JSON endpoint beside it at /bare: the HTTP benchmark's baseline.

Served as ``kassa serve`` serves ``gateway.entrypoints.wsgi`` (granian, Kassa's logging: see
bench/http_api.py), so both figures pay what a deployed request pays."""

from flask import Flask, jsonify
from werkzeug.middleware.dispatcher import DispatcherMiddleware

from gateway.adapters.logging_setup import configure_logging
from gateway.entrypoints.app import create_app

bare = Flask("bare")


@bare.get("/")
def hello():  # type: ignore[no-untyped-def]
    return jsonify(status="ok")


gateway = create_app()
# As gateway.entrypoints.wsgi does: Kassa's request log line is part of what a request costs.
configure_logging("web", gateway.extensions["kassa.settings"].web.log_format)
app = DispatcherMiddleware(gateway, {"/bare": bare})
