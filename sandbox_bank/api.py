"""The acquirer API (docs/bank-api.md): payments, refunds, settlements, for one merchant each.

Every call authenticates with the merchant's API key. Views parse, call one service, answer.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any

from flask import Blueprint, Response, g, jsonify, request
from sqlalchemy import select

from sandbox_bank import events, faults, idempotency, merchants, refunds, settlement_run, state
from sandbox_bank.errors import InvalidRequest, NotFound, ServiceUnavailable
from sandbox_bank.models import Merchant, Payment

api = Blueprint("sandbox_bank_api", __name__, url_prefix="/v1")

_DAY = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


@api.before_request
def _authenticate() -> None:
    bank = state.of()
    with bank.writing() as session:
        merchant = merchants.authenticate(session, request.headers.get("Authorization"))
        if faults.take_api_failure(session, merchant):
            raise ServiceUnavailable(
                "the bank is briefly unavailable (sandbox fault api_5xx); retry shortly"
            )
        g.merchant_id = merchant.merchant_id


def _merchant(session: Any) -> Merchant:
    merchant: Merchant = session.get_one(Merchant, g.merchant_id)
    return merchant


@api.get("/payments/<reference>")
def get_payment(reference: str) -> Response:
    with state.of().db.session() as session:
        payment = session.scalar(
            select(Payment).where(
                Payment.merchant_id == g.merchant_id, Payment.reference == reference
            )
        )
        if payment is None:
            raise NotFound(f"no wallet has paid a payment with reference {reference!r}")
        return jsonify(events.payment_json(session, payment))


@api.post("/refunds")
def create_refund() -> tuple[Response, int]:
    key = idempotency.check_key(request.headers.get("Idempotency-Key"))
    bank = state.of()
    with bank.writing() as session:
        status, body = refunds.request(
            session, bank.settings, _merchant(session), _json_body(), key
        )
    return jsonify(body), status


@api.get("/refunds/<refund_id>")
def get_refund(refund_id: str) -> Response:
    with state.of().db.session() as session:
        return jsonify(refunds.get(session, _merchant(session), refund_id))


@api.post("/settlements")
def create_settlement() -> tuple[Response, int]:
    body = _json_body()
    day = _date(body.get("date") if isinstance(body, dict) else None)
    bank = state.of()
    with bank.writing() as session:
        settlement, created = settlement_run.run(
            session, _merchant(session), day, bank.settings.url
        )
        return jsonify(
            events.settlement_json(settlement, bank.settings.url)
        ), 201 if created else 200


@api.get("/settlements/<day>")
def get_settlement(day: str) -> Response:
    bank = state.of()
    with bank.db.session() as session:
        settlement = _settlement(session, day)
        return jsonify(events.settlement_json(settlement, bank.settings.url))


@api.get("/settlements/<day>/<name>")
def get_settlement_file(day: str, name: str) -> Response:
    if name not in events.SETTLEMENT_FILES:
        raise NotFound(f"settlement files are {', '.join(events.SETTLEMENT_FILES)}, not {name!r}")
    column, mimetype = events.SETTLEMENT_FILES[name]
    with state.of().db.session() as session:
        settlement = _settlement(session, day)
        content = getattr(settlement, column)
    response = Response(content, mimetype=mimetype)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="{settlement.settlement_id}-{name}"'
    )
    return response


@api.get("/settlements/<day>.csv")
def get_settlement_csv(day: str) -> Response:
    """``/v1/settlements/{date}.csv``, the contract's short name for ``…/{date}/settlement.csv``."""
    return get_settlement_file(day, "settlement.csv")


def _settlement(session: Any, day: str) -> Any:
    found = settlement_run.find(session, g.merchant_id, _date(day))
    if found is None:
        raise NotFound(f'no settlement for {day}; POST /v1/settlements {{"date": "{day}"}}')
    return found


def _json_body() -> Any:
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidRequest("the body must be JSON (Content-Type: application/json)")
    return body


def _date(value: object) -> date:
    if isinstance(value, str) and _DAY.fullmatch(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise InvalidRequest(f"date must be a calendar date YYYY-MM-DD, not {value!r}")
