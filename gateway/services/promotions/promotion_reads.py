"""What managers see of their promotions: the list with each one's status and budget used, its
change history, the sales it applied to, its batch coupon codes, and the merchant's A/B tests.
Read-only queries over the rows ``promotion_admin`` writes; the status comes from its
``status_of``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant
from gateway.adapters.promotion_models import (
    CouponCode,
    Experiment,
    PromotionChange,
    PromotionRow,
    Sale,
    SalePromotion,
)
from gateway.services.promotions.promotion_admin import spec_problem, status_of


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


@dataclass(frozen=True, slots=True)
class PromotionSummary:
    """One line of the promotions list: what it is, whether it runs, and what it has used."""

    key: str
    name: str
    kind: str
    state: str
    status: str
    starts_at: datetime | None
    ends_at: datetime | None
    currency: str
    budget_minor: int | None
    count_limit: int | None
    used_count: int
    committed_minor: int
    reserved_minor: int
    experiment: str | None
    variant: str | None
    given_minor: int = 0  # discounts given on paid sales, net of refunds (budgeted or not)
    problem: str | None = None  # why the stored spec is not valid (shown flagged, never priced)

    @property
    def used_minor(self) -> int:
        return self.committed_minor + self.reserved_minor

    @property
    def used_share(self) -> int:
        """Percent of the budget used (reserved included), 0–100; 0 without a budget."""
        if not self.budget_minor:
            return 0
        return min(100, self.used_minor * 100 // self.budget_minor)

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "name": self.name,
            "kind": self.kind,
            "state": self.state,
            "status": self.status,
            "starts_at": _iso(self.starts_at),
            "ends_at": _iso(self.ends_at),
            "currency": self.currency,
            "budget_minor": self.budget_minor,
            "count_limit": self.count_limit,
            "used_count": self.used_count,
            "committed_minor": self.committed_minor,
            "reserved_minor": self.reserved_minor,
            "given_minor": self.given_minor,
            "experiment": self.experiment,
            "variant": self.variant,
        }


def _uses(uow: UnitOfWork, promotion_ids: list[int]) -> dict[int, int]:
    """Uses held or paid, per promotion (a promotion without limits keeps no counter)."""
    rows = uow.session.execute(
        select(SalePromotion.promotion_id, func.count())
        .where(
            SalePromotion.promotion_id.in_(promotion_ids),
            SalePromotion.state.in_(("reserved", "committed")),
        )
        .group_by(SalePromotion.promotion_id)
    )
    return {pid: int(n) for pid, n in rows}


def _committed(uow: UnitOfWork, promotion_ids: list[int]) -> dict[int, tuple[int, int]]:
    """Per promotion: budget money and discounts given on paid sales, net of refunds."""
    if not promotion_ids:
        return {}
    rows = uow.session.execute(
        select(
            SalePromotion.promotion_id,
            func.sum(SalePromotion.budget_minor - SalePromotion.returned_budget_minor),
            func.sum(SalePromotion.discount_minor - SalePromotion.returned_discount_minor),
        )
        .where(SalePromotion.promotion_id.in_(promotion_ids), SalePromotion.state == "committed")
        .group_by(SalePromotion.promotion_id)
    )
    return {pid: (int(budget or 0), int(given or 0)) for pid, budget, given in rows}


def summarise(
    uow: UnitOfWork, rows: Sequence[PromotionRow], now: datetime
) -> list[PromotionSummary]:
    if not rows:
        return []
    merchant = uow.session.get_one(Merchant, rows[0].merchant_id)
    committed = _committed(uow, [r.id for r in rows])
    uses = _uses(uow, [r.id for r in rows])
    experiment_keys = dict(
        uow.session.execute(
            select(Experiment.id, Experiment.key).where(
                Experiment.id.in_({r.experiment_id for r in rows if r.experiment_id})
            )
        ).all()
    )
    out = []
    for row in rows:
        done, given = committed.get(row.id, (0, 0))
        problem = spec_problem(row)
        out.append(
            PromotionSummary(
                key=row.key,
                name=row.name,
                kind=row.kind,
                state=row.state,
                status=status_of(row, now),
                starts_at=row.starts_at,
                ends_at=row.ends_at,
                # An unknown stored currency cannot format money: the merchant's, flagged.
                currency=(row.currency if row.currency and not problem else None)
                or merchant.default_currency,
                budget_minor=row.budget_minor,
                count_limit=row.count_limit,
                used_count=uses.get(row.id, 0),
                committed_minor=done,
                reserved_minor=max(0, row.used_money_minor - done),
                experiment=experiment_keys.get(row.experiment_id) if row.experiment_id else None,
                variant=row.variant,
                given_minor=given,
                problem=problem,
            )
        )
    return out


def list_promotions(uow: UnitOfWork, merchant_id: int, *, now: datetime) -> list[PromotionSummary]:
    """The merchant's promotions, newest first, with their status and budget used."""
    rows = list(
        uow.session.scalars(
            select(PromotionRow)
            .where(PromotionRow.merchant_id == merchant_id)
            .order_by(PromotionRow.created_at.desc(), PromotionRow.id.desc())
        )
    )
    return summarise(uow, rows, now)


def history(uow: UnitOfWork, promotion: PromotionRow) -> list[PromotionChange]:
    return list(
        uow.session.scalars(
            select(PromotionChange)
            .where(PromotionChange.promotion_id == promotion.id)
            .order_by(PromotionChange.created_at.desc(), PromotionChange.id.desc())
        )
    )


def recent_sales(
    uow: UnitOfWork, promotion: PromotionRow, limit: int = 20
) -> list[tuple[SalePromotion, Sale]]:
    """The latest sales this promotion applied to, with what it gave on each."""
    rows = uow.session.execute(
        select(SalePromotion, Sale)
        .join(Sale, Sale.id == SalePromotion.sale_id)
        .where(SalePromotion.promotion_id == promotion.id)
        .order_by(SalePromotion.created_at.desc(), SalePromotion.id.desc())
        .limit(limit)
    )
    return [(sp, sale) for sp, sale in rows]


def list_experiments(uow: UnitOfWork, merchant_id: int) -> list[Experiment]:
    return list(
        uow.session.scalars(
            select(Experiment)
            .where(Experiment.merchant_id == merchant_id)
            .order_by(Experiment.created_at.desc(), Experiment.id.desc())
        )
    )


def count_coupons(uow: UnitOfWork, promotion: PromotionRow) -> int:
    return int(
        uow.session.scalar(select(func.count()).where(CouponCode.promotion_id == promotion.id)) or 0
    )


def coupon_codes(uow: UnitOfWork, promotion: PromotionRow) -> list[CouponCode]:
    return list(
        uow.session.scalars(
            select(CouponCode)
            .where(CouponCode.promotion_id == promotion.id)
            .order_by(CouponCode.created_at, CouponCode.code)
        )
    )
