"""What an operator sees of the web tier: a request id on every request (and its log lines),
one log line per request, and ``GET /metrics`` (its access rule, ``operator``, is checked by
:func:`gateway.entrypoints.access.guard`).
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any, cast

from flask import Flask, Request, Response, g, request

from gateway.adapters import logging_setup
from gateway.adapters.db import Database
from gateway.services import metrics

log = logging.getLogger("gateway.request")

SANE_REQUEST_ID = logging_setup.SANE_REQUEST_ID

# ``g``'s name for what a view says of its request's outcome on the request's line (a bank
# callback: its event and status), rather than in a line of its own.
OUTCOME = "kassa_request_outcome"


def say_outcome(text: str) -> None:
    """End this request's log line with ``text``."""
    setattr(g, OUTCOME, text)


def install(app: Flask, db: Database) -> None:
    """Give each request its id (echoed as ``X-Request-Id``), log it, and serve ``/metrics``."""

    @app.before_request
    def _request_id() -> None:
        current: Request = cast(Any, request)._get_current_object()  # once, not per attribute
        incoming = current.headers.get("X-Request-Id", "")
        chosen = incoming if SANE_REQUEST_ID.fullmatch(incoming) else uuid.uuid4().hex
        g.kassa_request_started = time.perf_counter()
        logging_setup.request_id.set(chosen)
        payment = (current.view_args or {}).get("payment_id")
        logging_setup.payment_id.set(payment if isinstance(payment, str) else None)

    @app.after_request
    def _log_request(response: Response) -> Response:
        chosen = logging_setup.request_id.get()
        if chosen is not None:
            response.headers["X-Request-Id"] = chosen
        started = g.get("kassa_request_started")
        took = (time.perf_counter() - started) * 1000 if started is not None else 0.0
        if log.isEnabledFor(logging.INFO):  # the request's method and path only if logged
            current: Request = cast(Any, request)._get_current_object()
            outcome = g.get(OUTCOME)
            if outcome is None:
                log.info(
                    "%s %s %s in %.0f ms", current.method, current.path, response.status_code, took
                )
            else:
                log.info(
                    "%s %s %s in %.0f ms: %s",
                    current.method,
                    current.path,
                    response.status_code,
                    took,
                    outcome,
                )
        return response

    @app.teardown_request
    def _forget_ids(_: BaseException | None) -> None:
        logging_setup.request_id.set(None)  # the thread's next log lines are not this request's
        logging_setup.payment_id.set(None)

    @app.get("/metrics", endpoint="metrics")
    def metrics_page() -> Response:
        return Response(metrics.exposition(db), content_type=metrics.CONTENT_TYPE)


__all__ = ["OUTCOME", "SANE_REQUEST_ID", "install", "say_outcome"]
