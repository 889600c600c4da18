"""What the sandbox bank refuses, and why, as RFC 9457 problem types.

They extend the gateway's :class:`~gateway.errors.KassaError`, so the ``kassa`` CLI prints them
as one line with exit code 2, and the sandbox's own views turn them into problem bodies.
"""

from __future__ import annotations

from gateway.errors import KassaError

_BASE = "/problems/sandbox-bank/"


class BankError(KassaError):
    """Base of every error the sandbox bank answers on purpose."""

    type = _BASE + "error"
    title = "Sandbox bank error"
    status = 400


class SandboxConfigurationError(BankError):
    type = _BASE + "configuration"
    title = "Sandbox bank configuration error"
    status = 500


class BadRequest(BankError):
    type = _BASE + "bad-request"
    title = "Bad request"
    status = 400


class PaymentRejected(BankError):
    """The wallet refuses to pay this QR code (expired, wrong currency, unknown merchant…)."""

    type = _BASE + "payment-rejected"
    title = "Payment rejected"
    status = 422


class InvalidQrCode(PaymentRejected):
    type = _BASE + "invalid-qr-payload"
    title = "Invalid EMV QR payload"


class AlreadyPaid(BankError):
    type = _BASE + "already-paid"
    title = "Already paid"
    status = 409


class InsufficientFunds(BankError):
    type = _BASE + "insufficient-funds"
    title = "Insufficient funds"
    status = 402


class Unauthorised(BankError):
    type = _BASE + "unauthorised"
    title = "Unauthorised"
    status = 401


class NotFound(BankError):
    type = _BASE + "not-found"
    title = "Not found"
    status = 404


class RefundExceedsPayment(BankError):
    type = _BASE + "refund-exceeds-payment"
    title = "Refund exceeds what was paid"
    status = 409


class Conflict(BankError):
    type = _BASE + "conflict"
    title = "Conflict"
    status = 409


class IdempotencyKeyMissing(BankError):
    type = _BASE + "idempotency-key-missing"
    title = "Idempotency-Key header required"
    status = 400


class IdempotencyKeyReused(BankError):
    type = _BASE + "idempotency-key-reused"
    title = "Idempotency key reused with a different request"
    status = 422


class InvalidRequest(BankError):
    type = _BASE + "invalid-request"
    title = "Invalid request"
    status = 422


class ServiceUnavailable(BankError):
    """Injected by the ``api_5xx`` fault: the bank is briefly down."""

    type = _BASE + "unavailable"
    title = "Service unavailable"
    status = 503
