"""A merchant's stores as staff pages need them: names, time zones, the list to choose from."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Store
from gateway.errors import InvalidInput, NotFound


def chosen_merchant(uow: UnitOfWork, merchant_id: int | None) -> int:
    """The merchant a command acts for: the one named, or the only one there is."""
    if merchant_id is not None:
        if uow.session.get(Merchant, merchant_id) is None:
            raise NotFound(f"no merchant {merchant_id}")
        return merchant_id
    ids = list(uow.session.scalars(select(Merchant.id).order_by(Merchant.id).limit(2)))
    if len(ids) != 1:
        raise InvalidInput(
            "no merchant yet" if not ids else "several merchants: choose one with --merchant ID"
        )
    return int(ids[0])


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
