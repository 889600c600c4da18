"""The gateway's exception hierarchy.

Every error carries a message a person can act on. Entry points map them: the API to RFC 9457
problem bodies (``type``/``status`` below), the CLI to one line on stderr and exit code 2, the
cashier screen to a message.
"""

from __future__ import annotations

from typing import Any


class KassaError(Exception):
    """Base of every error the gateway raises on purpose."""

    type = "about:blank"
    title = "Error"
    status = 400

    def __init__(self, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra

    def __str__(self) -> str:
        return self.message


class InvalidInput(KassaError):
    """Input that can never be valid: wrong format, wrong type, out of range."""

    type = "/problems/invalid-input"
    title = "Invalid input"
    status = 422


class InvalidMoney(InvalidInput):
    type = "/problems/invalid-money"
    title = "Invalid amount or currency"


class InvalidQrPayload(InvalidInput):
    type = "/problems/invalid-qr-payload"
    title = "Invalid EMV QR payload"


class NotFound(KassaError):
    type = "/problems/not-found"
    title = "Not found"
    status = 404


class Unauthorised(KassaError):
    type = "/problems/unauthorised"
    title = "Unauthorised"
    status = 401


class Forbidden(KassaError):
    type = "/problems/forbidden"
    title = "Forbidden"
    status = 403


class TooManyAttempts(KassaError):
    """Too many failed sign-ins: wait ``retry_after`` seconds (sent as Retry-After)."""

    type = "/problems/too-many-attempts"
    title = "Too many attempts"
    status = 429


class Conflict(KassaError):
    type = "/problems/conflict"
    title = "Conflict"
    status = 409


class IllegalTransition(Conflict):
    """A payment was asked to move to a state it cannot reach from where it is."""

    type = "/problems/illegal-transition"
    title = "Illegal payment state transition"


class CurrencyNotAccepted(Conflict):
    """The till's card terminal takes another currency: nothing was sent to it."""

    type = "/problems/card-currency-not-accepted"
    title = "The card terminal does not take this currency"


class IdempotencyKeyReused(KassaError):
    type = "/problems/idempotency-key-reused"
    title = "Idempotency key reused with a different request"
    status = 422


class IdempotencyRequestInProgress(Conflict):
    type = "/problems/idempotency-request-in-progress"
    title = "A request with this idempotency key is still being processed"


class ConfigurationError(KassaError):
    type = "/problems/configuration"
    title = "Configuration error"
    status = 500


class BankError(KassaError):
    """Something went wrong talking to the bank."""

    type = "/problems/bank"
    title = "Bank error"
    status = 502


class BankUnavailable(BankError):
    """The bank did not answer, or answered 5xx: try again later (the job table does)."""

    type = "/problems/bank-unavailable"
    title = "Bank unavailable"
    status = 503


class BankRejected(BankError):
    """The bank refused the request: retrying the same request will not help."""

    type = "/problems/bank-rejected"
    title = "Bank rejected the request"
    status = 422


class BankNotConfigured(BankError):
    type = "/problems/bank-not-configured"
    title = "Bank connection not configured"
    status = 503


class ApprovalRequired(Forbidden):
    """The action needs a supervisor's approval first: nothing was done."""

    type = "/problems/approval-required"
    title = "A supervisor's approval is required"


class ApprovalRefused(Forbidden):
    """The approval offered was wrong, spent, expired or for another action: nothing was done."""

    type = "/problems/approval-refused"
    title = "Approval refused"
    # Set when the supervisor's name or PIN was wrong: the throttle name to count it under.
    wrong_credentials: str | None = None
