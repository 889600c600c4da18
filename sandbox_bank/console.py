"""The sandbox console: a customer's wallet and the bank's operator controls.

``/sandbox/`` is a page where a person pastes ("scans") a QR payload and pays it, and sees recent
payments, refunds, settlements, callbacks and fault settings. The JSON routes below it do the
same for scripts and tests. No authentication: this is a sandbox, never a real bank.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, render_template, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.errors import KassaError
from sandbox_bank import events, faults, state, wallet
from sandbox_bank.errors import InvalidRequest, NotFound
from sandbox_bank.models import (
    Delivery,
    DeliveryAttempt,
    Merchant,
    Payment,
    Refund,
    Settlement,
    Wallet,
)

console = Blueprint("sandbox_bank_console", __name__, url_prefix="/sandbox")
RECENT = 20


@console.get("/")
def page() -> str:
    return _render()


@console.post("/")
def pay_from_page() -> tuple[str, int]:
    """The page's form: pay and show the outcome on the same page."""
    form_payload = request.form.get("payload", "").strip()
    wallet_id = request.form.get("wallet_id", "").strip()
    bank = state.of()
    try:
        with bank.writing() as session:
            payment = wallet.pay(session, bank.settings, form_payload, wallet_id)
            result = events.payment_succeeded_data(payment)
        return _render(result=result, wallet_id=wallet_id), 201
    except KassaError as exc:
        return _render(error=exc, payload=form_payload, wallet_id=wallet_id), exc.status


@console.post("/wallet/pay")
def pay() -> tuple[Response, int]:
    body = _json_object()
    bank = state.of()
    with bank.writing() as session:
        payment = wallet.pay(session, bank.settings, body.get("payload"), body.get("wallet_id"))
        answer = events.payment_succeeded_data(payment)
        answer["wallet_balance"] = _balance(session, payment.wallet_id)
    return jsonify(answer), 201


@console.put("/wallets/<wallet_id>")
def set_wallet(wallet_id: str) -> Response:
    body = _json_object()
    with state.of().writing() as session:
        found = wallet.set_balance(
            session, wallet_id, body.get("balance_minor"), body.get("currency")
        )
        return jsonify(_wallet_json(found))


@console.get("/wallets/<wallet_id>")
def get_wallet(wallet_id: str) -> Response:
    with state.of().db.session() as session:
        found = session.get(Wallet, wallet_id)
        if found is None:
            raise NotFound(f"no wallet {wallet_id!r} yet; it is created on its first payment")
        return jsonify(_wallet_json(found))


@console.get("/merchants/<merchant_id>/faults")
def get_faults(merchant_id: str) -> Response:
    with state.of().db.session() as session:
        return jsonify(faults.effective(faults.merchant(session, merchant_id)))


@console.put("/merchants/<merchant_id>/faults")
def put_faults(merchant_id: str) -> Response:
    body = _json_object()
    with state.of().writing() as session:
        return jsonify(faults.update(session, merchant_id, body))


@console.delete("/merchants/<merchant_id>/faults")
def delete_faults(merchant_id: str) -> Response:
    with state.of().writing() as session:
        return jsonify(faults.clear(session, merchant_id))


@console.get("/deliveries")
def deliveries() -> Response:
    """Recent callbacks with every attempt, newest first (what the sandbox sent, and when)."""
    with state.of().db.session() as session:
        return jsonify([_delivery_json(session, d) for d in _recent(session, Delivery)])


def _render(**context: Any) -> str:
    with state.of().db.session() as session:
        return render_template(
            "sandbox.html",
            merchants=[(m, faults.effective(m)) for m in session.scalars(select(Merchant))],
            payments=_recent(session, Payment),
            refunds=_recent(session, Refund),
            settlements=_recent(session, Settlement),
            deliveries=_recent(session, Delivery),
            amount=events.amount,
            iso=events.iso,
            masked=events.masked_wallet,
            **context,
        )


def _recent(session: Session, model: Any) -> list[Any]:
    return list(session.scalars(select(model).order_by(model.id.desc()).limit(RECENT)))


def _json_object() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise InvalidRequest("the body must be a JSON object (Content-Type: application/json)")
    return body


def _balance(session: Session, wallet_id: str) -> str:
    found = session.get_one(Wallet, wallet_id)
    session.refresh(found)
    return events.amount(found.balance_minor, found.currency)


def _wallet_json(found: Wallet) -> dict[str, Any]:
    return {
        "wallet_id": found.wallet_id,
        "balance": events.amount(found.balance_minor, found.currency),
        "balance_minor": found.balance_minor,
        "currency": found.currency,
    }


def _delivery_json(session: Session, delivery: Delivery) -> dict[str, Any]:
    attempts = session.scalars(
        select(DeliveryAttempt)
        .where(DeliveryAttempt.delivery_id == delivery.id)
        .order_by(DeliveryAttempt.id)
    )
    return {
        "event_id": delivery.event_id,
        "merchant_id": delivery.merchant_id,
        "type": delivery.type,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "next_attempt_at": events.iso(delivery.next_attempt_at),
        "delivered_at": events.iso(delivery.delivered_at),
        "last_status_code": delivery.last_status_code,
        "last_error": delivery.last_error,
        "history": [
            {
                "at": events.iso(a.attempted_at),
                "status_code": a.status_code,
                "error": a.error,
                "dropped": a.dropped,
                "wrong_signature": a.wrong_signature,
            }
            for a in attempts
        ],
    }


@console.get("/settlements/<settlement_id>/<name>")
def settlement_file(settlement_id: str, name: str) -> Response:
    """The page's download links (the API serves the same files to the merchant)."""
    if name not in events.SETTLEMENT_FILES:
        raise NotFound(f"settlement files are {', '.join(events.SETTLEMENT_FILES)}")
    column, mimetype = events.SETTLEMENT_FILES[name]
    with state.of().db.session() as session:
        found = session.scalar(select(Settlement).where(Settlement.settlement_id == settlement_id))
        if found is None:
            raise NotFound(f"no settlement {settlement_id!r}")
        return Response(getattr(found, column), mimetype=mimetype)
