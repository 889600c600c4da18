"""Auditing a lucky draw: every roll recomputed from its recorded seed, key and stock.

A draw's outcome depends only on the promotion's prize table, its secret seed, the draw key
(the sale id) and the stock it saw (prize budget used, prizes won that day), all stored with
the entry. Replaying them must give the recorded roll and outcome; any difference means the
record was altered. The seed stays secret while the promotion runs (whoever knows it can
predict the rolls); once it has ended it may be published so customers can check for
themselves with the recipe in ``gateway.domain.promotions.draw``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.promotion_models import DrawEntry
from gateway.domain.promotions import draw as lucky
from gateway.domain.promotions.model import LuckyDraw
from gateway.domain.promotions.spec import promotion_from_spec
from gateway.errors import Conflict, InvalidInput
from gateway.services.promotions.promotion_admin import get_promotion, status_of


@dataclass(frozen=True, slots=True)
class AuditedDraw:
    sale_id: str
    drawn_at: datetime
    roll: int
    outcome: str
    prize: str | None
    replayed_roll: int
    replayed_outcome: str

    @property
    def agrees(self) -> bool:
        return (self.roll, self.outcome) == (self.replayed_roll, self.replayed_outcome)


def audit_draws(uow: UnitOfWork, merchant_id: int, key: str) -> list[AuditedDraw]:
    """Every paid draw of promotion ``key``, oldest first, beside its replay."""
    row = get_promotion(uow, merchant_id, key)
    promotion = promotion_from_spec(row.key, row.kind, row.spec)
    if not isinstance(promotion, LuckyDraw):
        raise InvalidInput(f"promotion {key!r} is a {row.kind} promotion, not a lucky draw")
    out = []
    for entry in uow.session.scalars(
        select(DrawEntry)
        .where(DrawEntry.promotion_id == row.id, DrawEntry.state == "committed")
        .order_by(DrawEntry.created_at, DrawEntry.id)
    ):
        stock = lucky.PrizeStock(entry.stock["budget_used_minor"], entry.stock["won_today"])
        replay = lucky.draw(promotion.table, entry.seed, entry.draw_key, stock)
        out.append(
            AuditedDraw(
                entry.sale_id, entry.created_at, entry.roll, entry.outcome, entry.prize_name,
                replay.roll, replay.outcome,
            )
        )  # fmt: skip
    return out


def published_seed(uow: UnitOfWork, merchant_id: int, key: str, now: datetime) -> str | None:
    """The draw's seed, once the promotion has finished; refused while it can still draw."""
    row = get_promotion(uow, merchant_id, key)
    if status_of(row, now) != "finished":
        raise Conflict(
            f"the seed of {key!r} stays secret while the promotion can still draw: end it first"
        )
    return row.draw_seed
