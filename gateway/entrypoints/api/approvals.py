"""`/api/v1/approvals`: a supervisor's approval as a single-use token for one action.

A till that gets ``403 /problems/approval-required`` asks the supervisor for their name and PIN,
posts them here with the action, payment and amount, and repeats its request with the token in
the ``Approval-Token`` header. The token is spent by that one request, or expires unused.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from gateway.domain.money import Money
from gateway.entrypoints.api.payments import api_database, calling_till, json_body, limits_for
from gateway.entrypoints.api.schemas import CreateApproval
from gateway.entrypoints.staff_session import count_wrong_approval
from gateway.errors import ApprovalRefused, InvalidInput
from gateway.services.payments import payment_reads
from gateway.services.staff import approvals
from gateway.services.staff.approvals import Place

bp = Blueprint("approvals", __name__)


@bp.post("/approvals")
def create_approval() -> Response:
    till = calling_till()
    command = CreateApproval.model_validate(json_body())
    with api_database().unit_of_work() as uow:
        payment = None
        if command.payment_id:
            payment = payment_reads.get_payment(uow, command.payment_id, till.scope)
        if command.amount is not None:
            currency = payment.currency if payment else command.currency
            if not currency:
                raise InvalidInput("name the currency of the amount (or the payment_id)")
            amount = Money.parse(command.amount, currency)
        elif payment is not None:
            amount = Money(payment.amount_minor, payment.currency)
        else:
            raise InvalidInput("name the amount to approve (or the payment_id)")
        try:
            issued = approvals.issue_token(
                uow,
                limits_for(uow, till.merchant_id),
                Place(
                    till.merchant_id, till.store_id, till.till_id, till.actor, request.remote_addr
                ),
                username=command.approver,
                code=command.code,
                action=command.action,
                amount=amount,
                payment=payment,
            )
        except ApprovalRefused as refused:
            uow.rollback()
            count_wrong_approval(refused)
            raise
        row = issued.approval
        out = {
            "token": issued.token,
            "action": row.action,
            "payment_id": row.payment_id,
            "amount": amount.to_decimal_string(),
            "currency": amount.currency,
            "approver": row.approver,
            "expires_at": row.expires_at.isoformat() if row.expires_at else None,
        }
        uow.commit()
    response = jsonify(out)
    response.status_code = 201
    response.headers["Cache-Control"] = "no-store"
    return response
