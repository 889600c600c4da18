"""The thresholds each merchant's rules use, and each store's opening hours.

The defaults are ``[monitoring]`` from the configuration: every process hands them over once at
start (:func:`configure`, as it configures password hashing), because the hooks that check the
rules run deep inside payments and refunds, which carry no settings. A merchant's own values,
set by a manager in the portal, are stored over them (only those that differ).
"""

from __future__ import annotations

from typing import Any

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Store
from gateway.domain.monitoring import (
    OpeningHours,
    Thresholds,
    format_opening_hours,
    parse_opening_hours,
)
from gateway.errors import InvalidInput, NotFound
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope
from gateway.settings import MonitoringSettings

_defaults = Thresholds()


def configure(settings: MonitoringSettings) -> None:
    """This process's default thresholds (``[monitoring]``); called once at start."""
    global _defaults
    _defaults = Thresholds(**settings.model_dump())


def defaults() -> Thresholds:
    return _defaults


def for_merchant(uow: UnitOfWork, merchant_id: int) -> Thresholds:
    """The defaults with the merchant's own values over them."""
    merchant = uow.session.get(Merchant, merchant_id)
    own = (merchant.monitoring_thresholds if merchant else None) or {}
    if not own:
        return _defaults  # frozen: shared as it is, not copied (each payment's move asks)
    try:
        return _defaults.with_overrides(own)
    except InvalidInput:
        return _defaults  # stored under an older version of the rules: the defaults hold


def set_thresholds(
    uow: UnitOfWork, merchant_id: int, values: dict[str, Any], actor: str
) -> Thresholds:
    """Store the merchant's thresholds (checked; only what differs from the defaults is kept),
    audited; not committed."""
    chosen = _defaults.with_overrides(values)
    merchant = uow.session.get_one(Merchant, merchant_id)
    before = merchant.monitoring_thresholds or {}
    merchant.monitoring_thresholds = chosen.differences(_defaults) or None
    audit.record(
        uow,
        "monitoring.thresholds_changed",
        actor=actor,
        merchant_id=merchant_id,
        target=("merchant", merchant_id),
        before=before,
        after=merchant.monitoring_thresholds or {},
    )
    return chosen


def set_opening_hours(
    uow: UnitOfWork, scope: Scope, store_id: int, text: str, actor: str
) -> OpeningHours:
    """A store's opening hours from text like ``mon-fri 08:00-20:00; sat 09:00-14:00``
    (empty: none), audited; not committed."""
    store = uow.session.get(Store, store_id)
    if store is None or not scope.covers(store.merchant_id, store.id):
        raise NotFound(f"no store {store_id} for this merchant")
    hours = parse_opening_hours(text)
    before = format_opening_hours(store.opening_hours)
    store.opening_hours = hours or None
    audit.record(
        uow,
        "store.opening_hours_changed",
        actor=actor,
        merchant_id=store.merchant_id,
        store_id=store.id,
        target=("store", store.id),
        before={"opening_hours": before},
        after={"opening_hours": format_opening_hours(hours)},
    )
    return hours
