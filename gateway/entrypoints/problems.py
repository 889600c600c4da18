"""RFC 9457 problem responses: every API error has a stable ``type`` and a readable detail."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response, jsonify, request
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from gateway.errors import InvalidInput, KassaError

PROBLEM_JSON = "application/problem+json"


def problem(status: int, type_: str, title: str, detail: str, **extra: Any) -> Response:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    body["instance"] = request.path
    body.update({k: v for k, v in extra.items() if v is not None})
    response = jsonify(body)
    response.status_code = status
    response.mimetype = PROBLEM_JSON
    return response


def from_error(exc: KassaError) -> Response:
    return problem(exc.status, exc.type, exc.title, exc.message, **exc.extra)


def from_validation(exc: ValidationError) -> Response:
    errors = [
        {
            "field": ".".join(str(p) for p in err["loc"]) or "(body)",
            "message": err["msg"].removeprefix("Value error, "),
        }
        for err in exc.errors(include_url=False, include_input=False)
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors)
    return problem(422, InvalidInput.type, InvalidInput.title, detail, errors=errors)


def wants_problem() -> bool:
    return request.path.startswith(("/api/", "/bank/"))


def register(app: Flask) -> None:
    @app.errorhandler(KassaError)
    def _kassa(exc: KassaError) -> Response:
        return from_error(exc)

    @app.errorhandler(ValidationError)
    def _validation(exc: ValidationError) -> Response:
        return from_validation(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Any:
        if not wants_problem():
            return exc
        code = exc.code or 500
        response = problem(code, f"/problems/http-{code}", exc.name, exc.description or exc.name)
        if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
            response.headers["Allow"] = ", ".join(sorted(exc.valid_methods))  # RFC 9110 §15.5.6
        return response

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Any:
        app.logger.exception("unhandled error on %s %s", request.method, request.path)
        if not wants_problem():
            return "Internal Server Error", 500
        return problem(
            500,
            "/problems/internal",
            "Internal error",
            "Kassa could not finish this request; nothing was charged twice. Retry with the same "
            "Idempotency-Key.",
        )
