"""Approvals at the till: a supervisor's yes before money goes back or a large sum is taken.

Which actions need one (``needed``): a refund or void above the merchant's refund limit, any
cancel of a card payment the terminal already approved, a QR or card payment above the large-
transaction limit, and any price or promotion override. The limits are the merchant's own
(``merchants.approval_limits``, set by the owner in the portal) or ``[approvals]``.

How a supervisor says yes:

- on the cashier screen, with their username and PIN (or, once MFA is in, a TOTP code) typed
  into the approval dialog: checked and recorded in the same transaction as the action;
- through the API, with a single-use token from ``POST /api/v1/approvals`` (the supervisor's
  credentials, the action, payment and amount): only its SHA-256 is kept, it lives
  ``token_seconds`` and is spent in the same transaction as the action it names.

Every approval is a row in ``approvals`` (who, what, which payment, how much, where, when) and an
``approved`` entry in the payment's history. An approval refused, expired or not given leaves
the payment as it was: the action and its approval commit together or not at all.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Approval, Merchant, Payment, StaffUser, utcnow
from gateway.adapters.passwords import hash_password, verify_password
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.errors import ApprovalRefused, ApprovalRequired, InvalidInput
from gateway.services.payments.lifecycle import record_event
from gateway.services.staff import audit, mfa, permissions, throttling
from gateway.services.staff.scope import Scope
from gateway.settings import ApprovalSettings

ACTIONS = ("refund", "cancel", "payment", "override")
TOKEN_PREFIX = "ap"  # noqa: S105 - the token's prefix, not a secret
PIN_DIGITS = (4, 12)


@dataclass(frozen=True, slots=True)
class Limits:
    """A merchant's approval limits, in minor units of the payment's currency."""

    refund_above_minor: int
    payment_above_minor: int
    token_seconds: int


@dataclass(frozen=True, slots=True)
class Grant:
    """What the caller offers as approval: a token (API), or a supervisor's name and PIN or
    code (cashier screen). Empty: none offered."""

    token: str = ""
    username: str = ""
    code: str = ""

    @property
    def offered(self) -> bool:
        return bool(self.token or self.username or self.code)


@dataclass(frozen=True, slots=True)
class Place:
    """Where the action happens: the merchant, store and till, who asks, from which address."""

    merchant_id: int
    store_id: int
    till_id: int | None
    requested_by: str
    address: str | None = None


# ---- limits -----------------------------------------------------------------------------------


def limits(uow: UnitOfWork, merchant_id: int, defaults: ApprovalSettings) -> Limits:
    own: dict[str, Any] = uow.session.get_one(Merchant, merchant_id).approval_limits or {}
    return Limits(
        int(own.get("refund_above_minor", defaults.refund_above_minor)),
        int(own.get("payment_above_minor", defaults.payment_above_minor)),
        defaults.token_seconds,
    )


def set_limits(
    uow: UnitOfWork, merchant_id: int, *, refund_above: Money, payment_above: Money
) -> None:
    """The owner's limits for the merchant (not committed)."""
    for what, money in (("refund", refund_above), ("large-payment", payment_above)):
        if money.minor < 0:
            raise InvalidInput(f"the {what} limit must not be negative, not {money}")
    merchant = uow.session.get_one(Merchant, merchant_id)
    before = dict(merchant.approval_limits or {})
    merchant.approval_limits = {
        "refund_above_minor": refund_above.minor,
        "payment_above_minor": payment_above.minor,
    }
    audit.record(
        uow,
        "settings.approval_limits",
        merchant_id=merchant_id,
        target=("merchant", merchant_id),
        before=before or None,
        after={**merchant.approval_limits, "currency": refund_above.currency},
    )


def needed(limit: Limits, action: str, amount: Money, payment: Payment | None) -> str | None:
    """Why ``action`` needs a supervisor's approval, in words; None if it does not."""
    if action == "refund" and amount.minor > limit.refund_above_minor:
        return f"a refund above {Money(limit.refund_above_minor, amount.currency)}"
    if action == "cancel" and payment is not None and payment.status == PaymentStatus.AUTHORISED:
        return "cancelling a payment the card terminal already approved"
    if action == "payment" and amount.minor > limit.payment_above_minor:
        return f"a payment above {Money(limit.payment_above_minor, amount.currency)}"
    if action == "override":
        return "a price or promotion override"
    return None


# ---- who may approve --------------------------------------------------------------------------


def set_pin(uow: UnitOfWork, user_id: int, pin: str) -> None:
    """Give a supervisor, manager or owner an approval PIN (hashed like a password)."""
    low, high = PIN_DIGITS
    if not (pin.isdigit() and low <= len(pin) <= high):
        raise InvalidInput(f"an approval PIN is {low} to {high} digits")
    user = uow.session.get_one(StaffUser, user_id)
    if not permissions.allowed(user.role, "approval.grant"):
        raise InvalidInput(f"a {user.role} does not approve, so needs no PIN")
    user.approval_pin_hash = hash_password(pin)


def verify_second_factor(uow: UnitOfWork, staff: StaffUser, code: str) -> bool:
    """Whether ``code`` proves that ``staff`` is at the till: their approval PIN, or the
    current code of their authenticator app if they enrolled one (a code is used once)."""
    if pin_matches(staff, code):
        return True
    totp = code.strip()
    return len(totp) == mfa.DIGITS and totp.isdigit() and mfa.verify_user(uow, staff, totp)


def throttle_name(username: str) -> str:
    """Wrong approval PINs are counted like wrong passwords, under this name."""
    return f"approval:{username.strip().lower()}"


def pin_matches(staff: StaffUser, code: str) -> bool:
    """The approval PIN (someone without one costs the same time and never matches)."""
    return verify_password(staff.approval_pin_hash, code)


def approver(uow: UnitOfWork, place: Place, username: str, code: str) -> StaffUser:
    """The supervisor who approves, if their credentials are right and they may approve
    here; every failure reads the same, so names are not confirmed."""
    throttling.check(uow, throttle_name(username), place.address or "", utcnow())
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    if user is None:
        verify_password(None, code)  # the same time for an unknown name
        raise _wrong(username)
    if not (user.active and verify_second_factor(uow, user, code)):
        raise _wrong(username)
    if not permissions.allowed(user.role, "approval.grant"):
        raise ApprovalRefused(f"{user.username} is a {user.role} and may not approve")
    reach = Scope(user.merchant_id, permissions.effective_store(user.role, user.store_id))
    if not reach.covers(place.merchant_id, place.store_id):
        raise ApprovalRefused(f"{user.username} may not approve at this store")
    return user


def _wrong(username: str) -> ApprovalRefused:
    """A wrong name or PIN; ``wrong_credentials`` tells the entry point to count it (after the
    action's own transaction has rolled back)."""
    refused = ApprovalRefused("the supervisor's name or PIN is wrong; nothing was done")
    refused.wrong_credentials = throttle_name(username)
    return refused


# ---- approving --------------------------------------------------------------------------------


def require(
    uow: UnitOfWork,
    limit: Limits,
    place: Place,
    *,
    action: str,
    amount: Money,
    payment: Payment | None,
    grant: Grant,
) -> Approval | None:
    """Check that ``action`` may go ahead: None if it needs no approval, else the approval
    (recorded, and in the payment's history). Raises :class:`ApprovalRequired` if none was
    offered and :class:`ApprovalRefused` if the one offered does not hold. Not committed."""
    why = needed(limit, action, amount, payment)
    if why is None:
        return None
    if not grant.offered:
        raise ApprovalRequired(
            f"{why} needs a supervisor's approval",
            action=action,
            amount=amount.to_decimal_string(),
            currency=amount.currency,
            payment_id=payment.id if payment else None,
            accepts=["supervisor PIN or code at the till", "Approval-Token header"],
            approvals_url="/api/v1/approvals",
        )
    try:
        if grant.token:
            row = spend_token(
                uow, grant.token, place, action=action, amount=amount, payment=payment
            )
        else:
            user = approver(uow, place, grant.username, grant.code)
            row = _record(uow, place, user, action, amount, payment, method="pin")
            row.used_at = row.created_at
    except ApprovalRefused as exc:
        exc.extra.update(needed=why, amount=amount.to_decimal_string(), currency=amount.currency)
        raise
    if payment is not None:
        attach(uow, row, payment)
    audit.approved_by(uow, f"staff:{row.approver}")  # on the action's rows in the trail
    return row


def attach(uow: UnitOfWork, approval: Approval, payment: Payment) -> None:
    """Name the payment an approval was used for, in its history too."""
    approval.payment_id = payment.id
    record_event(
        uow,
        payment,
        "approved",
        f"staff:{approval.approver}",
        {
            "approval_id": approval.id,
            "action": approval.action,
            "amount": Money(approval.amount_minor, approval.currency).to_decimal_string(),
            "currency": approval.currency,
            "approver": approval.approver,
            "method": approval.method,
            "requested_by": approval.requested_by,
        },
    )


def _record(
    uow: UnitOfWork,
    place: Place,
    user: StaffUser,
    action: str,
    amount: Money,
    payment: Payment | None,
    *,
    method: str,
) -> Approval:
    row = Approval(
        id=uuid.uuid4().hex,
        merchant_id=place.merchant_id,
        store_id=place.store_id,
        till_id=place.till_id,
        action=action,
        payment_id=payment.id if payment else None,
        amount_minor=amount.minor,
        currency=amount.currency,
        approver_id=user.id,
        approver=user.username,
        method=method,
        requested_by=place.requested_by[:100],
        address=(place.address or "")[:64] or None,
        created_at=utcnow(),
    )
    uow.session.add(row)
    uow.session.flush()
    return row


# ---- API tokens ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuedToken:
    approval: Approval
    token: str


def issue_token(
    uow: UnitOfWork,
    limit: Limits,
    place: Place,
    *,
    username: str,
    code: str,
    action: str,
    amount: Money,
    payment: Payment | None,
) -> IssuedToken:
    """A supervisor's approval as a single-use token ``ap_<id>_<secret>`` for one action,
    payment and amount, valid ``token_seconds`` (not committed)."""
    if action not in ACTIONS:
        raise InvalidInput(f"action must be one of {', '.join(ACTIONS)}, not {action!r}")
    if action in ("refund", "cancel") and payment is None:
        raise InvalidInput(f"an approval to {action} names the payment (payment_id)")
    user = approver(uow, place, username, code)
    row = _record(uow, place, user, action, amount, payment, method="token")
    secret = secrets.token_urlsafe(24)
    token = f"{TOKEN_PREFIX}_{row.id}_{secret}"
    row.token_hash = _token_hash(token)
    row.expires_at = row.created_at + timedelta(seconds=limit.token_seconds)
    return IssuedToken(row, token)


def spend_token(
    uow: UnitOfWork,
    token: str,
    place: Place,
    *,
    action: str,
    amount: Money,
    payment: Payment | None,
) -> Approval:
    """Spend an approval token on the action it was issued for (under a row lock)."""
    parts = token.strip().split("_", 2)
    if len(parts) != 3 or parts[0] != TOKEN_PREFIX:
        raise ApprovalRefused("the approval token is malformed: expected 'ap_<id>_<secret>'")
    row = uow.session.scalar(select(Approval).where(Approval.id == parts[1]).with_for_update())
    if (
        row is None
        or not row.token_hash
        or not hmac.compare_digest(row.token_hash, _token_hash(token))
    ):
        raise ApprovalRefused("the approval token is not valid")
    if (row.merchant_id, row.store_id) != (place.merchant_id, place.store_id):
        raise ApprovalRefused("the approval token is not valid")
    if row.used_at is not None:
        raise ApprovalRefused("the approval token was already used; ask for a new approval")
    if row.expires_at is None or row.expires_at <= utcnow():
        raise ApprovalRefused("the approval token has expired; ask for a new approval")
    wanted = (action, payment.id if payment else None, amount.minor, amount.currency)
    given = (row.action, row.payment_id, row.amount_minor, row.currency)
    if action == "payment":  # issued before the payment existed
        given = (row.action, wanted[1], row.amount_minor, row.currency)
    if wanted != given:
        raise ApprovalRefused(
            f"the approval token is for {row.action} of "
            f"{Money(row.amount_minor, row.currency)}"
            + (f" on payment {row.payment_id}" if row.payment_id else "")
            + ", not this request"
        )
    row.used_at = utcnow()
    return row


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def history(uow: UnitOfWork, payment_id: str) -> list[Approval]:
    """The approvals given for a payment, oldest first."""
    return list(
        uow.session.scalars(
            select(Approval)
            .where(Approval.payment_id == payment_id, Approval.used_at.is_not(None))
            .order_by(Approval.created_at)
        )
    )
