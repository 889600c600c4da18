"""`/api/v1/payments/{id}/bank-money/accept|refund`: a manager answers a payment's question
about money the bank took (gateway.services.payments.attention), from their own systems.

A till's key cannot do this: the caller signs in as a manager or owner with HTTP Basic
(``Authorization: Basic base64(username:password)``), the same credentials as the portal, and
the current code of their authenticator app in the ``Kassa-OTP`` header: a password alone
never moves money (one code serves its 30-second step). Wrong passwords and codes are
throttled like the portal's sign-in (429 with Retry-After).
The body is ``{"note": "why"}``; the answer is the payment, with ``"already": true`` when the
same answer had been given before (a retry changes nothing).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request

from gateway.adapters.db import UnitOfWork
from gateway.entrypoints.api.payments import api_database, json_body, payment_out, refund_out
from gateway.entrypoints.staff_session import acting, client_address, clock, throttle_policy
from gateway.errors import Forbidden, InvalidInput, Unauthorised
from gateway.services.payments import attention
from gateway.services.staff import mfa, throttling
from gateway.services.staff.auth import StaffContext, authenticate_staff

bp = Blueprint("attention", __name__)
PERMISSION = "payment.bank_money"  # gateway/services/staff/permissions.py


OTP_HEADER = "Kassa-OTP"


def calling_manager(uow: UnitOfWork) -> StaffContext:
    """The manager named by HTTP Basic, password checked (throttled like the portal's)."""
    credentials = request.authorization
    if credentials is None or credentials.type != "basic":
        raise Unauthorised("a manager signs in with HTTP Basic: their username and password")
    username = credentials.username or ""
    throttling.check(uow, username, client_address(), clock())
    try:
        staff = authenticate_staff(uow, username, credentials.password or "")
    except Unauthorised:
        _count_failure(username)
        raise
    if not staff.can(PERMISSION):
        raise Forbidden(f"a {staff.role} may not accept or refund money the bank took")
    return staff


def second_factor(uow: UnitOfWork, staff: StaffContext) -> None:
    """The manager's current authenticator code (one code serves its 30-second step)."""
    if not mfa.needs_second_factor(staff.role):
        return
    throttling.check(uow, f"mfa:{staff.username}", client_address(), clock())
    code = request.headers.get(OTP_HEADER, "").strip()
    if not code:
        raise Unauthorised(f"send the current code of your authenticator app in {OTP_HEADER}")
    if not mfa.code_is_current(uow, staff.user_id, code, clock()):
        raise Unauthorised(f"the code in {OTP_HEADER} is not right (or was used already)")


def _count_failure(username: str) -> None:
    with api_database().unit_of_work() as uow:
        throttling.failed(uow, username, client_address(), clock(), throttle_policy())
        uow.commit()


def _note() -> str:
    body = json_body()
    note = body.get("note") if isinstance(body, dict) else None
    if not isinstance(note, str):
        raise InvalidInput('send {"note": "…"}: why, for the payment\'s history')
    return note


@bp.post("/payments/<payment_id>/bank-money/accept")
def accept(payment_id: str) -> Response:
    """Accept the money the bank took under this payment's reference as paid."""
    return _answer(payment_id, attention.accept)


@bp.post("/payments/<payment_id>/bank-money/refund")
def refund(payment_id: str) -> Response:
    """Give the money the bank took back to the customer through the bank."""
    return _answer(payment_id, attention.refund)


def _answer(payment_id: str, decide: Any) -> Response:
    note = _note()
    with api_database().unit_of_work(readonly=True) as own:  # no write lock while hashing
        staff = calling_manager(own)
    acting(staff)  # the audit trail's who, role and store
    try:
        with api_database().unit_of_work() as uow:
            second_factor(uow, staff)
            answer = decide(uow, payment_id, staff.scope, note=note, actor=staff.actor)
            uow.commit()
            out: dict[str, Any] = {
                "action": answer.action,
                "already": answer.already,
                "payment": payment_out(answer.payment),
            }
            if answer.refund is not None:
                out["refund"] = refund_out(answer.refund)
    except Unauthorised:
        _count_failure(f"mfa:{staff.username}")
        raise
    return jsonify(out)
