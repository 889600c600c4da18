"""What managers see of their devices: each till's terminal and reader as last reported."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import CardBatch, DeviceStatus, Payment, Store, Till
from gateway.services.staff.scope import Scope, narrow


def payment_version(uow: UnitOfWork, payment_id: str, scope: Scope | int) -> int | None:
    """The payment's version (it changes with every write: state, the terminal's text), or
    None if it is not inside the scope: the cheapest look for a live screen."""
    return uow.session.scalar(
        select(Payment.version).where(
            Payment.id == payment_id, narrow(scope, Payment.merchant_id, Payment.store_id)
        )
    )


def device_statuses(uow: UnitOfWork, scope: Scope | int) -> list[Any]:
    """Rows of (status, till label, store name, store time zone), by store, till and kind."""
    return list(
        uow.session.execute(
            select(DeviceStatus, Till.label, Store.name, Store.timezone)
            .join(Till, Till.id == DeviceStatus.till_id)
            .join(Store, Store.id == Till.store_id)
            .where(narrow(scope, Store.merchant_id, Till.store_id))
            .order_by(Store.name, Till.label, DeviceStatus.kind)
        ).all()
    )


# A device whose host has not written its heartbeat for this long is silent (the portal's
# devices page marks it stale after the same time: merchant_portal/views.py STALE_SECONDS).
SILENT_SECONDS = 30


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """Every merchant's devices counted, for ``/metrics``: (kind, state) -> how many, and
    kind -> how many have a host that has gone silent."""

    by_state: list[tuple[str, str, int]]
    silent: list[tuple[str, int]]


def device_health(uow: UnitOfWork, now: datetime) -> DeviceHealth:
    """The device hosts' last reports counted by kind and state (one grouped query each)."""
    kind, state = DeviceStatus.kind, DeviceStatus.state
    by_state = uow.session.execute(select(kind, state, func.count()).group_by(kind, state)).all()
    cutoff = now - timedelta(seconds=SILENT_SECONDS)
    silent = uow.session.execute(
        select(kind, func.count()).where(DeviceStatus.last_seen_at < cutoff).group_by(kind)
    ).all()
    return DeviceHealth(
        [(str(k), str(s), int(n)) for k, s, n in by_state], [(str(k), int(n)) for k, n in silent]
    )


def recent_device_logs(
    root: Path, rows: list[Any], *, since: float, limit: int
) -> list[tuple[str, str, list[str]]]:
    """(store, till, lines) of each till's raw device log since ``since`` (epoch seconds), at
    most ``limit`` lines each, newest last, in the store's time zone. ``rows`` are
    :func:`device_statuses` rows. The log lives on the device host's disk, so it shows when
    the web tier runs beside the device host (or shares its data directory)."""
    from drivers.device_log import device_directory, format_entry, read_entries

    out = []
    for store, till, tz in dict.fromkeys((store, till, tz) for _, till, store, tz in rows):
        zone = ZoneInfo(tz) if tz else None
        entries = read_entries(device_directory(root, store, till), since)[-limit:]
        out.append((store, till, [format_entry(e, timezone=zone) for e in entries]))
    return out


@dataclass(frozen=True, slots=True)
class TillBatch:
    """A till on the Devices page: its terminal's last closed batch, and whether one waits."""

    till_id: int
    till: str
    store: str
    timezone: str
    last: CardBatch | None
    waiting: bool


def till_batches(uow: UnitOfWork, scope: Scope | int) -> list[TillBatch]:
    """Each till of the merchant with its last end of day, by store and till."""
    from gateway.services.devices.end_of_day import waiting_end_of_day

    tills = uow.session.execute(
        select(Till.id, Till.label, Store.name, Store.timezone)
        .join(Store, Store.id == Till.store_id)
        .where(narrow(scope, Store.merchant_id, Till.store_id), Till.active.is_(True))
        .order_by(Store.name, Till.label)
    ).all()
    out = []
    for till_id, label, store, timezone in tills:
        last = uow.session.scalars(
            select(CardBatch)
            .where(CardBatch.till_id == till_id)
            .order_by(CardBatch.closed_at.desc(), CardBatch.id.desc())
            .limit(1)
        ).first()
        out.append(
            TillBatch(till_id, label, store, timezone, last, waiting_end_of_day(uow, till_id))
        )
    return out
