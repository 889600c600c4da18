"""A merchant's stores as staff pages need them: names, time zones, the list to choose from."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Store


def merchant_stores(uow: UnitOfWork, merchant_id: int) -> list[Store]:
    return list(
        uow.session.scalars(
            select(Store).where(Store.merchant_id == merchant_id).order_by(Store.name)
        )
    )


def store_timezones(uow: UnitOfWork, merchant_id: int) -> set[str]:
    return set(uow.session.scalars(select(Store.timezone).where(Store.merchant_id == merchant_id)))


def store_names(uow: UnitOfWork, store_ids: Iterable[int]) -> dict[int, str]:
    rows = uow.session.execute(select(Store.id, Store.name).where(Store.id.in_(set(store_ids))))
    return {store_id: name for store_id, name in rows}
