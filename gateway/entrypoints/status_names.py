"""The words people read for the codes Kassa stores: payment and refund statuses, settlement
outcomes, promotion states, inbound events, devices. The code stays the stored value (and the
JSON API's), the page shows its name in the request's language: ``{{ p.status | status_name }}``.
A code without a name here is shown as itself, spaces for underscores.

:data:`MSGIDS` is each code's name untranslated (its msgid, for a catalogue's ``gettext`` in
any language); :data:`NAMES` the same names translated lazily, in the request's language.
"""

from __future__ import annotations

from gateway.adapters.i18n import lazy_gettext


def _l(msgid: str) -> str:
    """Marks a name for the catalogues (``make translations`` extracts ``_l``), as it is."""
    return msgid


MSGIDS: dict[str, str] = {
    # payments (gateway/domain/payment.py)
    "created": _l("Created"),
    "pending": _l("Pending"),
    "authorised": _l("Authorised"),
    "paid": _l("Paid"),
    "settled": _l("Settled"),
    "failed": _l("Failed"),
    "expired": _l("Expired"),
    "cancelled": _l("Cancelled"),
    "partially_refunded": _l("Partially refunded"),
    "refunded": _l("Refunded"),
    "unknown": _l("Unknown"),
    # refunds
    "requested": _l("Requested"),
    "submitted": _l("Submitted"),
    "succeeded": _l("Succeeded"),
    # settlement outcomes and days (gateway/domain/reconciliation/model.py)
    "matched": _l("Matched"),
    "matched_fee_difference": _l("Matched, fee differs"),
    "amount_mismatch": _l("Amount mismatch"),
    "currency_mismatch": _l("Currency mismatch"),
    "settled_twice": _l("Settled twice"),
    "paid_not_settled": _l("Paid, not settled"),
    "awaiting_settlement": _l("Awaiting settlement"),
    "settled_unknown": _l("Settled, unknown to Kassa"),
    "refund_not_settled": _l("Refund not settled"),
    "written_off": _l("Written off"),
    "exceptions": _l("Exceptions"),
    "reconciled": _l("Reconciled"),
    "line": _l("Bank line"),
    "payment": _l("Payment"),
    "refund": _l("Refund"),
    # promotions
    "draft": _l("Draft"),
    "activated": _l("Activated"),
    "resumed": _l("Resumed"),
    "scheduled": _l("Scheduled"),
    "active": _l("Active"),
    "live": _l("Live"),
    "finished": _l("Finished"),
    "paused": _l("Paused"),
    "ended": _l("Ended"),
    "invalid": _l("Invalid"),
    # sales (gateway/services/promotions/sales.py)
    "priced": _l("Priced"),
    "reserved": _l("Reserved"),
    # inbound events (gateway/services/bank/callbacks.py)
    "received": _l("Received"),
    "processed": _l("Processed"),
    "unmatched": _l("Unmatched"),
    "unknown_type": _l("Unknown type"),
    "duplicate": _l("Duplicate"),
    "callback": _l("Callback"),
    "poll": _l("Poll answer"),
    "settlement_file": _l("Settlement file"),
    # devices
    "idle": _l("Idle"),
    "busy": _l("Busy"),
    "connected": _l("Connected"),
    "disconnected": _l("Disconnected"),
    "error": _l("Error"),
    "ready": _l("Ready"),
}
NAMES = {code: lazy_gettext(msgid) for code, msgid in MSGIDS.items()}


# The titles of gateway.errors' classes, for the HTML error pages (the JSON API keeps English).
ERROR_TITLES = {
    "Error": lazy_gettext("Error"),
    "Invalid input": lazy_gettext("Invalid input"),
    "Invalid amount or currency": lazy_gettext("Invalid amount or currency"),
    "The merchant does not accept this currency": lazy_gettext(
        "The merchant does not accept this currency"
    ),
    "Invalid EMV QR payload": lazy_gettext("Invalid EMV QR payload"),
    "Not found": lazy_gettext("Not found"),
    "Unauthorised": lazy_gettext("Unauthorised"),
    "Forbidden": lazy_gettext("Forbidden"),
    "Too many attempts": lazy_gettext("Too many attempts"),
    "Conflict": lazy_gettext("Conflict"),
    "Illegal payment state transition": lazy_gettext("Illegal payment state transition"),
    "The card terminal does not take this currency": lazy_gettext(
        "The card terminal does not take this currency"
    ),
    "Idempotency key reused with a different request": lazy_gettext(
        "Idempotency key reused with a different request"
    ),
    "A request with this idempotency key is still being processed": lazy_gettext(
        "A request with this idempotency key is still being processed"
    ),
    "Configuration error": lazy_gettext("Configuration error"),
    "Bank error": lazy_gettext("Bank error"),
    "Bank unavailable": lazy_gettext("Bank unavailable"),
    "Bank rejected the request": lazy_gettext("Bank rejected the request"),
    "Bank connection not configured": lazy_gettext("Bank connection not configured"),
    "A supervisor's approval is required": lazy_gettext("A supervisor's approval is required"),
    "Approval refused": lazy_gettext("Approval refused"),
}


def error_title(title: str) -> str:
    """An error class's title in the request's language (as it is if it has no entry)."""
    known = ERROR_TITLES.get(title)
    return str(known) if known is not None else title


def status_name(code: str | None) -> str:
    """The name of a stored code in the request's language (the code itself if unnamed)."""
    if not code:
        return ""
    name = NAMES.get(code)
    return str(name) if name is not None else code.replace("_", " ")
