"""What managers see of their devices: each till's terminal and reader as last reported."""

from __future__ import annotations

from typing import Any

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
