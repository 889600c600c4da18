"""What managers see of their devices: each till's terminal and reader as last reported."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import DeviceStatus, Store, Till


def device_statuses(uow: UnitOfWork, merchant_id: int) -> list[Any]:
    """Rows of (status, till label, store name, store time zone), by store, till and kind."""
    return list(
        uow.session.execute(
            select(DeviceStatus, Till.label, Store.name, Store.timezone)
            .join(Till, Till.id == DeviceStatus.till_id)
            .join(Store, Store.id == Till.store_id)
            .where(Store.merchant_id == merchant_id)
            .order_by(Store.name, Till.label, DeviceStatus.kind)
        ).all()
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
