"""Fault injection: per-merchant knobs that make the sandbox behave like a bad day at a bank.

=================  ======  ==========================================================
knob               type    effect
=================  ======  ==========================================================
``delay_ms``       int     wait this long before each callback attempt
``duplicate``      int     after a callback is accepted, send it N more times (same id)
``out_of_order``   bool    deliver the pending callbacks in shuffled order
``drop_first``     int     drop the first N attempts of each callback (retries follow)
``wrong_signature`` bool   sign callbacks with a random key instead of the merchant's
``api_5xx``        int     answer the next N API calls with 503
``refund_fail``    bool    refunds end in ``refund.failed`` (sandbox extension)
``drop_all``       bool    drop every attempt of every callback while on (sandbox extension)
``drop_percent``   int     drop every attempt of this share of callbacks, chosen by their
                           id, while on (sandbox extension)
=================  ======  ==========================================================
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from sandbox_bank.errors import InvalidRequest, NotFound
from sandbox_bank.models import Merchant

DEFAULTS: dict[str, int | bool] = {
    "delay_ms": 0,
    "duplicate": 0,
    "out_of_order": False,
    "drop_first": 0,
    "wrong_signature": False,
    "api_5xx": 0,
    "refund_fail": False,
    "drop_all": False,
    "drop_percent": 0,
}
_LIMITS = {
    "delay_ms": 60_000,
    "duplicate": 10,
    "drop_first": 100,
    "api_5xx": 10_000,
    "drop_percent": 100,
}


def effective(merchant: Merchant) -> dict[str, int | bool]:
    """The merchant's knobs, defaults filled in."""
    return DEFAULTS | {k: v for k, v in (merchant.faults or {}).items() if k in DEFAULTS}


def validate(update: Any) -> dict[str, int | bool]:
    """Check a ``PUT`` body: known knobs only, booleans as booleans, counts within limits."""
    if not isinstance(update, Mapping):
        raise InvalidRequest('faults are a JSON object such as {"drop_first": 2}')
    unknown = set(update) - set(DEFAULTS)
    if unknown:
        raise InvalidRequest(
            f"unknown fault knobs: {', '.join(sorted(unknown))}; known: {', '.join(DEFAULTS)}"
        )
    clean: dict[str, int | bool] = {}
    for key, value in update.items():
        if isinstance(DEFAULTS[key], bool):
            if not isinstance(value, bool):
                raise InvalidRequest(f"{key} must be true or false, not {value!r}")
        elif (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not (0 <= value <= _LIMITS[key])
        ):
            raise InvalidRequest(f"{key} must be a whole number from 0 to {_LIMITS[key]}")
        clean[key] = value
    return clean


def drops(knobs: Mapping[str, int | bool], event_id: str, attempt: int) -> str | None:
    """Why this attempt of callback ``event_id`` is dropped, or None if it is sent.

    ``drop_percent`` picks callbacks by a hash of their id, so the same callbacks stay lost on
    every retry (a lost callback, not a slow one) and a run is repeatable.
    """
    if attempt <= int(knobs["drop_first"]):
        return "dropped (sandbox fault drop_first)"
    if knobs["drop_all"]:
        return "dropped (sandbox fault drop_all)"
    share = int.from_bytes(hashlib.sha256(event_id.encode()).digest()[:4], "big") % 100
    if share < int(knobs["drop_percent"]):
        return "dropped (sandbox fault drop_percent)"
    return None


def merchant(session: Session, merchant_id: str) -> Merchant:
    found = session.get(Merchant, merchant_id)
    if found is None:
        raise NotFound(f"the sandbox bank knows no merchant {merchant_id!r}")
    return found


def update(session: Session, merchant_id: str, changes: Any) -> dict[str, int | bool]:
    """Merge ``changes`` into the merchant's knobs and commit."""
    target = merchant(session, merchant_id)
    target.faults = effective(target) | validate(changes)  # a new dict, so the change is seen
    session.commit()
    return effective(target)


def clear(session: Session, merchant_id: str) -> dict[str, int | bool]:
    target = merchant(session, merchant_id)
    target.faults = dict(DEFAULTS)
    session.commit()
    return effective(target)


def take_api_failure(session: Session, target: Merchant) -> bool:
    """Use up one injected API failure; True if this call must answer 503."""
    knobs = effective(target)
    remaining = int(knobs["api_5xx"])
    if remaining <= 0:
        return False
    target.faults = knobs | {"api_5xx": remaining - 1}
    session.commit()
    return True
