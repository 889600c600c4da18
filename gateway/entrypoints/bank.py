"""`/bank`: what the bank calls. ``POST /bank/callbacks`` takes its signed settlement callbacks.

Answers (docs/bank-api.md): 2xx once the event is stored, duplicates included, with the event's
status in the body; 401 for a missing or bad signature or a timestamp out of tolerance; 503 while
no webhook secret is configured (the bank retries). The clock is ``app.extensions["kassa.clock"]``
if set (tests pin it to check the tolerance to the second), else ``time.time``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from flask import Blueprint, Response, current_app, request

from gateway.adapters.db import Database
from gateway.config import bank_credentials
from gateway.entrypoints import input_guard, observability
from gateway.entrypoints.problems import problem
from gateway.errors import ConfigurationError
from gateway.services.bank import callbacks
from gateway.settings import Settings

bp = Blueprint("bank", __name__, url_prefix="/bank")

# Accepted for processing later (a job retries it) rather than processed now.
_STATUS_CODES = {callbacks.EventStatus.FAILED: 202}
# The body of each answer, as jsonify(status=…) writes it, made once rather than per callback.
_ANSWERS = {
    status: json.dumps({"status": status.value}, separators=(",", ":")) + "\n"
    for status in callbacks.EventStatus
}


@bp.post("/callbacks")
def receive_callback() -> Response:
    extensions = current_app.extensions
    settings: Settings = extensions["kassa.settings"]
    secret = bank_credentials(settings).webhook_secret
    if not secret:
        return _unavailable("bank webhook secret is not configured")
    clock: Callable[[], float] = extensions.get("kassa.clock", time.time)
    body = request.get_data(cache=False)
    headers = request.headers
    try:
        verified = callbacks.verify_callback(
            secret,
            body,
            {
                name: value
                for name in callbacks.KEPT_HEADERS
                if (value := headers.get(name)) is not None
            },
            now=clock(),
            tolerance=settings.bank.callback_tolerance_seconds,
        )
    except ConfigurationError as exc:
        return _unavailable(exc.message)
    db: Database = extensions["kassa.db"]
    parsed = input_guard.checked_json(body)  # the input guard's parse of these very bytes
    document = callbacks.NOT_PARSED if parsed is input_guard.NOT_PARSED else parsed
    status = callbacks.receive(db, verified, document=document, logged=False)
    observability.say_outcome(callbacks.outcome_line(verified, status))  # on the request's line
    return Response(
        _ANSWERS[status], status=_STATUS_CODES.get(status, 200), content_type="application/json"
    )


def _unavailable(detail: str) -> Response:
    response = problem(503, ConfigurationError.type, ConfigurationError.title, detail)
    response.headers["Retry-After"] = "60"
    return response
