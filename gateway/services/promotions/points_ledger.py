"""Loyalty points as lots: earned together, spent soonest-expiring first, gone when expired.

Every change is a ``PointsMovement`` naming the lots it touched, so a redemption that is never
paid goes back to exactly the lots it came from, and a customer's balance can be explained.
The callers hold the customer's row lock (``sales.pay_sale``) or the sale's (``redemptions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import utcnow
from gateway.adapters.promotion_models import PointsLot, PointsMovement, Sale


def spend(uow: UnitOfWork, customer_id: int, sale_id: str, points: int, now: datetime) -> bool:
    """Take ``points`` from the customer's unexpired lots, soonest-expiring first; False (and
    nothing taken) if they do not have that many."""
    lots = uow.session.scalars(
        select(PointsLot)
        .where(
            PointsLot.customer_id == customer_id,
            PointsLot.remaining > 0,
            (PointsLot.expires_at.is_(None)) | (PointsLot.expires_at > now),
        )
        .order_by(PointsLot.expires_at.is_(None), PointsLot.expires_at, PointsLot.id)
    ).all()
    if sum(lot.remaining for lot in lots) < points:
        return False
    left, taken = points, []
    for lot in lots:
        n = min(lot.remaining, left)
        lot.remaining -= n
        taken.append([lot.id, n])
        left -= n
        if left == 0:
            break
    uow.session.add(
        PointsMovement(
            customer_id=customer_id, sale_id=sale_id, kind="redeem", points=-points, lots=taken
        )
    )
    return True


def put_back(uow: UnitOfWork, sale_id: str) -> None:
    """A sale that was never paid: its redeemed points return to the lots they came from."""
    for movement in uow.session.scalars(
        select(PointsMovement).where(
            PointsMovement.sale_id == sale_id, PointsMovement.kind == "redeem"
        )
    ).all():
        for lot_id, points in movement.lots:
            lot = uow.session.get(PointsLot, lot_id)
            if lot is not None:
                lot.remaining += points
        uow.session.add(
            PointsMovement(
                customer_id=movement.customer_id, sale_id=sale_id, kind="release",
                points=-movement.points, lots=movement.lots,
            )
        )  # fmt: skip


def earn(
    uow: UnitOfWork,
    customer_id: int,
    sale_id: str,
    promotion_id: int,
    points: int,
    at: datetime,
    *,
    source: str = "earned",
    expiry_days: int | None = None,
) -> None:
    uow.session.add(
        PointsLot(
            customer_id=customer_id, sale_id=sale_id, promotion_id=promotion_id, source=source,
            points=points, remaining=points, earned_at=at,
            expires_at=at + timedelta(days=expiry_days) if expiry_days else None,
        )
    )  # fmt: skip


def take_back(
    uow: UnitOfWork, customer_id: int, sale_id: str, promotion_id: int, points: int
) -> int:
    """Take back up to ``points`` a refunded sale earned (what is left of them: points
    already spent stay spent). Returns how many were taken."""
    lot = uow.session.scalar(
        select(PointsLot).where(
            PointsLot.customer_id == customer_id,
            PointsLot.sale_id == sale_id,
            PointsLot.promotion_id == promotion_id,
        )
    )
    if lot is None:
        return 0
    taken = min(lot.remaining, points)
    lot.remaining -= taken
    uow.session.add(
        PointsMovement(
            customer_id=customer_id, sale_id=sale_id, kind="take_back", points=-taken,
            lots=[[lot.id, taken]],
        )
    )  # fmt: skip
    return taken


def credit(uow: UnitOfWork, sale: Sale, points: int) -> None:
    """Redeemed points a refund gives back, as a lot expiring with the soonest lot they came
    from (never later than the points would have)."""
    assert sale.customer_id is not None
    redeem = uow.session.scalar(
        select(PointsMovement).where(
            PointsMovement.sale_id == sale.id, PointsMovement.kind == "redeem"
        )
    )
    dated = [e for e in _expiries(uow, redeem.lots if redeem else []) if e is not None]
    lot = PointsLot(
        customer_id=sale.customer_id, sale_id=sale.id, source="refund", points=points,
        remaining=points, earned_at=utcnow(), expires_at=min(dated) if dated else None,
    )  # fmt: skip
    uow.session.add(lot)
    uow.session.flush()
    uow.session.add(
        PointsMovement(
            customer_id=sale.customer_id, sale_id=sale.id, kind="refund", points=points,
            lots=[[lot.id, points]],
        )
    )  # fmt: skip


def _expiries(uow: UnitOfWork, lots: Iterable[Any]) -> list[datetime | None]:
    return [
        lot.expires_at
        for lot_id, _ in lots
        if (lot := uow.session.get(PointsLot, lot_id)) is not None
    ]
