"""RFC 9457 problem bodies for the sandbox bank's JSON routes."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from werkzeug.exceptions import HTTPException

from gateway.errors import KassaError
from sandbox_bank.errors import ServiceUnavailable, Unauthorised

PROBLEM_JSON = "application/problem+json"


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if v is not None})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response


def register(app: Flask) -> None:
    @app.errorhandler(KassaError)
    def _bank_error(exc: KassaError) -> Response:
        response = problem(exc.status, exc.type, exc.title, exc.message, **exc.extra)
        if isinstance(exc, ServiceUnavailable):
            response.headers["Retry-After"] = "1"
        if isinstance(exc, Unauthorised):
            response.headers["WWW-Authenticate"] = 'Bearer realm="sandbox-bank"'
        return response

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if request.path.startswith("/sandbox/") and not request.path.startswith("/sandbox/api"):
            if request.accept_mimetypes.accept_html and not request.is_json:
                return exc
        code = exc.code or 500
        return problem(code, f"/problems/http-{code}", exc.name, exc.description or exc.name)
