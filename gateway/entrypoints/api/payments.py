"""`/api/v1`: the JSON API that tills call with their own bearer API key."""

from __future__ import annotations

import functools
import threading
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, request, url_for

from gateway.adapters import qr_render
from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import Payment, Refund
from gateway.domain.money import Money
from gateway.entrypoints import access
from gateway.entrypoints.api.openapi import openapi_document
from gateway.entrypoints.api.schemas import (
    CreatePayment,
    CreateRefund,
    PaymentEventOut,
    PaymentOut,
    RefundOut,
)
from gateway.errors import InvalidInput
from gateway.services import idempotency
from gateway.services.devices import cards
from gateway.services.payments import payment_reads, qr_payments, refunds, till_actions
from gateway.services.payments.lifecycle import positive_amount
from gateway.services.staff import approvals
from gateway.services.staff.auth import TillContext
from gateway.settings import Settings

bp = Blueprint("api", __name__, url_prefix="/api/v1")
QR_CACHE_ENTRIES = 512  # QR images kept per web process (PNG ~1 kB, SVG a few kB each)


def api_database() -> Database:
    db: Database = current_app.extensions["kassa.db"]
    return db


def calling_till(uow: UnitOfWork | None = None) -> TillContext:
    """The calling till, authenticated by the access guard before the view ran."""
    return access.calling_till()


def limits_for(uow: UnitOfWork, merchant_id: int) -> approvals.Limits:
    """The merchant's approval limits (their own, or ``[approvals]``)."""
    settings: Settings = current_app.extensions["kassa.settings"]
    return approvals.limits(uow, merchant_id, settings.approvals)


def approval_token() -> approvals.Grant:
    """The approval a till offers: the ``Approval-Token`` header (empty: none)."""
    return approvals.Grant(token=request.headers.get("Approval-Token", "").strip())


def json_body() -> Any:
    if not request.is_json:
        raise InvalidInput("send a JSON body with 'Content-Type: application/json'")
    body = request.get_json(silent=True)
    if body is None:
        raise InvalidInput("the request body is not valid JSON")
    return body


def payment_out(
    payment: Payment, *, with_events: bool = False, till_label: str | None = None
) -> dict[str, Any]:
    has_qr = payment.qr_payload is not None
    out = PaymentOut(
        id=payment.id,
        status=payment.status,  # type: ignore[arg-type]
        method=payment.method,
        amount=Money(payment.amount_minor, payment.currency).to_decimal_string(),
        amount_minor=payment.amount_minor,
        currency=payment.currency,
        reference=payment.reference,
        bill_number=payment.bill_number,
        till=till_label or payment.till.label,
        qr_payload=payment.qr_payload,
        qr_png_url=url_for("api.payment_qr", payment_id=payment.id, fmt="png") if has_qr else None,
        qr_svg_url=url_for("api.payment_qr", payment_id=payment.id, fmt="svg") if has_qr else None,
        display_text=payment.display_text,
        card=_public_card(payment.card),
        receipt_text=payment.receipt_text,
        expires_at=payment.expires_at,
        paid_at=payment.paid_at,
        refunded_amount=Money(payment.refunded_minor or 0, payment.currency).to_decimal_string(),
        sale_id=payment.sale_id,
        attention=payment.attention,
        created_at=payment.created_at,
        updated_at=payment.updated_at,
        events=[
            PaymentEventOut(
                kind=e.kind,
                from_status=e.from_status,
                to_status=e.to_status,
                actor=e.actor,
                at=e.created_at,
                detail=e.detail,
            )
            for e in payment.events
        ]
        if with_events
        else None,
    )
    # Every documented field is always there (null when it has no value); ``events`` only on
    # the payment's own page.
    return out.model_dump(mode="json", exclude=None if with_events else {"events"})


@bp.post("/payments")
def create_payment() -> Response:
    till = calling_till()
    body = json_body()
    command = CreatePayment.model_validate(body)
    settings: qr_payments.PaymentSettings = current_app.extensions["kassa.payment_settings"]

    money = positive_amount(Money.parse(command.amount, command.currency))

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        if command.method == "card":
            if command.expires_in is not None:
                raise InvalidInput("expires_in is for QR payments; a card payment has none")
            payment = cards.create_card_payment(
                uow,
                till,
                money=money,
                bill_number=command.reference,
                currencies=settings.currencies,
            )
            uow.session.flush()
            _approve_large(uow, till, payment)
            return 201, payment_out(payment, till_label=till.label)
        payment = qr_payments.create_qr_payment(
            uow,
            till,
            money=money,
            settings=settings,
            bill_number=command.reference,
            expires_in=command.expires_in,
        )
        uow.session.flush()
        _approve_large(uow, till, payment)
        return 201, payment_out(payment, till_label=till.label)

    key = request.headers.get("Idempotency-Key")
    if key is None:
        with api_database().unit_of_work() as uow:
            status, out = action(uow)
            uow.commit()
        replayed = False
    else:
        fingerprint = idempotency.request_hash("POST", request.path, body)
        outcome = idempotency.run_once(
            api_database(),
            f"till:{till.till_id}",
            idempotency.check_key(key),
            fingerprint,
            action,
            # A QR payment only writes rows until it commits (a card payment reaches a device).
            look_first=command.method != "qr",
        )
        status, out, replayed = outcome.status, outcome.body, outcome.replayed
    if out.get("qr_payload"):  # committed: the till asks for its image next, mostly here
        recent_qr.remember(out["id"], till, out["qr_payload"])
    response = jsonify(out)
    response.status_code = status
    response.headers["Location"] = url_for("api.get_payment", payment_id=out["id"])
    if replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


def _approve_large(uow: UnitOfWork, till: TillContext, payment: Payment) -> None:
    till_actions.approve_large_payment(
        uow,
        payment,
        actor=till.actor,
        limit=limits_for(uow, till.merchant_id),
        grant=approval_token(),
        till=till,
        address=request.remote_addr,
    )


@bp.get("/payments/<payment_id>")
def get_payment(payment_id: str) -> Response:
    with api_database().unit_of_work(readonly=True) as uow:
        till = calling_till(uow)
        payment = payment_reads.get_payment(uow, payment_id, till.scope)
        return jsonify(payment_out(payment, with_events=True))


@bp.post("/payments/<payment_id>/cancel")
def cancel_payment(payment_id: str) -> Response:
    with api_database().unit_of_work() as uow:
        till = calling_till(uow)
        payment = till_actions.cancel(
            uow,
            payment_id,
            till.scope,
            actor=till.actor,
            limit=limits_for(uow, till.merchant_id),
            grant=approval_token(),
            till=till,
            address=request.remote_addr,
        )
        uow.commit()
        return jsonify(payment_out(payment))


def _public_card(card: dict[str, Any] | None) -> dict[str, Any] | None:
    """The card facts a till may see: no internal attempt bookkeeping."""
    if not card:
        return None
    return {k: v for k, v in card.items() if not k.startswith("attempt")}


def refund_out(refund: Refund) -> dict[str, Any]:
    return RefundOut(
        id=refund.id,
        payment_id=refund.payment_id,
        status=refund.status,  # type: ignore[arg-type]
        amount=Money(refund.amount_minor, refund.currency).to_decimal_string(),
        amount_minor=refund.amount_minor,
        currency=refund.currency,
        reason=refund.reason,
        failure=refund.failure,
        created_at=refund.created_at,
        updated_at=refund.updated_at,
    ).model_dump(mode="json")


@bp.post("/payments/<payment_id>/refunds")
def create_refund(payment_id: str) -> Response:
    """Refund all or part of a paid payment; the Idempotency-Key is required (money moves)."""
    till = calling_till()
    body = json_body()
    command = CreateRefund.model_validate(body)
    key = request.headers.get("Idempotency-Key")
    if not key:
        raise InvalidInput("refunds need an Idempotency-Key header, so a retry never refunds twice")

    def action(uow: UnitOfWork) -> tuple[int, dict[str, Any]]:
        amount = None
        if command.amount is not None:
            currency = payment_reads.payment_currency(uow, payment_id, till.scope)
            amount = Money.parse(command.amount, currency)
        refund = till_actions.refund(
            uow,
            payment_id,
            till.scope,
            amount=amount,
            reason=command.reason,
            actor=till.actor,
            limit=limits_for(uow, till.merchant_id),
            grant=approval_token(),
            till=till,
            address=request.remote_addr,
        )
        return 201, refund_out(refund)

    outcome = idempotency.run_once(
        api_database(),
        f"till:{till.till_id}",
        idempotency.check_key(key),
        idempotency.request_hash("POST", request.path, body),
        action,
    )
    response = jsonify(outcome.body)
    response.status_code = outcome.status
    if outcome.replayed:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@bp.get("/payments/<payment_id>/refunds")
def list_payment_refunds(payment_id: str) -> Response:
    with api_database().unit_of_work(readonly=True) as uow:
        till = calling_till(uow)
        payment_reads.get_payment(uow, payment_id, till.scope)
        return jsonify([refund_out(r) for r in refunds.list_refunds(uow, payment_id)])


@bp.get("/payments/<payment_id>/qr.<fmt>")
def payment_qr(payment_id: str, fmt: str) -> Response:
    if fmt not in ("png", "svg"):
        raise InvalidInput(f"QR format must be png or svg, not {fmt!r}")
    till = calling_till()
    payload = recent_qr.payload(payment_id, till)
    if payload is None:
        # One statement: no transaction around it (on PostgreSQL, no BEGIN and ROLLBACK).
        with api_database().single_read() as uow:
            payload = payment_reads.qr_payload(uow, payment_id, till.scope)
    if payload is None:
        raise InvalidInput("this payment has no QR code")
    return qr_response(payload, fmt)


def qr_response(payload: str, fmt: str) -> Response:
    mimetype = "image/png" if fmt == "png" else "image/svg+xml"
    response = Response(qr_image(payload, fmt), mimetype=mimetype)
    # The payload of a payment never changes: a QR image can be cached for its lifetime.
    response.headers["Cache-Control"] = "private, max-age=3600, immutable"
    return response


class RecentQr:
    """The QR payloads of the payments this process made most recently, with the store they
    belong to: the till that made one asks for its image right away (over the same keep-alive
    connection, so to the same process), and a payment's payload and store never change, so
    the image needs no database read then. Another till's key is answered from the database."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._payloads: dict[str, tuple[int, int, str]] = {}
        self._lock = threading.Lock()

    def remember(self, payment_id: str, till: TillContext, payload: str) -> None:
        with self._lock:
            self._payloads[payment_id] = (till.merchant_id, till.store_id, payload)
            if len(self._payloads) > self._size:
                del self._payloads[next(iter(self._payloads))]  # the oldest

    def payload(self, payment_id: str, till: TillContext) -> str | None:
        """The payload if this process made the payment at ``till``'s store, else None."""
        found = self._payloads.get(payment_id)
        if found is None or found[:2] != (till.merchant_id, till.store_id):
            return None
        return found[2]


recent_qr = RecentQr(QR_CACHE_ENTRIES)


@functools.lru_cache(maxsize=QR_CACHE_ENTRIES)
def qr_image(payload: str, fmt: str) -> bytes:
    """The QR image of a payload, drawn once per process: a payment's payload never changes,
    and the till, the cashier screen and a reload ask for the same image again. Keyed by the
    payload itself, so there is nothing to invalidate; the oldest of the most recent
    ``QR_CACHE_ENTRIES`` images (each a few kB) make room for new ones."""
    return qr_render.render_png(payload) if fmt == "png" else qr_render.render_svg(payload)


@bp.get("/openapi.json")
def openapi() -> Response:
    settings: qr_payments.PaymentSettings = current_app.extensions["kassa.payment_settings"]
    return jsonify(openapi_document(settings.min_expiry_seconds, settings.max_expiry_seconds))
