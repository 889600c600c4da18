"""Promotions in pricing order, indexed by what they target, so most are skipped cheaply.

The index covers currency, payment method, store and the lines targeted (sku/category). A
promotion the index leaves out is certain to fail ``check_eligibility``; its reason is only
worked out when someone reads ``PricedSale.rejected``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from gateway.domain.promotions.eligibility import check_eligibility
from gateway.domain.promotions.model import Basket, Promotion, SaleContext
from gateway.domain.promotions.rejection import Rejection
from gateway.errors import InvalidInput


def _positions(wanted: Sequence[frozenset[str]]) -> dict[str, frozenset[int]]:
    """For each value, the positions whose targeting names it."""
    found: dict[str, set[int]] = {}
    for i, values in enumerate(wanted):
        for value in values:
            found.setdefault(value, set()).add(i)
    return {v: frozenset(positions) for v, positions in found.items()}


class _Index:
    """Positions allowed for a value of one targeting field (empty field: any value)."""

    def __init__(self, wanted: Sequence[frozenset[str]]) -> None:
        self.any = frozenset(i for i, values in enumerate(wanted) if not values)
        self.by_value = {v: self.any | found for v, found in _positions(wanted).items()}

    def allowing(self, value: str | None) -> frozenset[int]:
        if value is None:
            return self.any
        return self.by_value.get(value, self.any)


class Catalog:
    """The active promotions, sorted by priority (highest first, then id) and indexed."""

    def __init__(self, promotions: Iterable[Promotion]) -> None:
        self.ordered: tuple[Promotion, ...] = tuple(
            sorted(promotions, key=lambda p: (-p.priority, p.id))
        )
        ids = {p.id for p in self.ordered}
        if len(ids) != len(self.ordered):
            raise InvalidInput("promotion ids must be unique")
        targets = [p.targeting for p in self.ordered]
        self._methods = _Index([t.payment_methods for t in targets])
        self._stores = _Index([t.stores for t in targets])
        self._currencies = _Index(
            [frozenset({t.currency}) if t.currency else frozenset() for t in targets]
        )
        self._whole = frozenset(i for i, t in enumerate(targets) if t.whole_basket)
        self._skus = _positions([t.skus for t in targets])
        self._categories = _positions([t.categories for t in targets])

    def candidates(self, basket: Basket, ctx: SaleContext) -> list[int]:
        """Positions, in pricing order, of the promotions the index cannot rule out."""
        found = (
            self._methods.allowing(ctx.payment_method)
            & self._stores.allowing(ctx.store_id)
            & self._currencies.allowing(basket.currency)
        )
        scoped = set(self._whole)
        for line in basket.lines:
            scoped.update(self._skus.get(line.sku, ()))
            scoped.update(self._categories.get(line.category, ()))
        return sorted(found & scoped)

    def rejections(
        self, basket: Basket, ctx: SaleContext, judged: Mapping[str, Rejection | None]
    ) -> tuple[Rejection, ...]:
        """Every rejection in pricing order: ``judged`` ones as given (``None``: applied),
        the rest (left out by the index) judged now."""
        out: list[Rejection] = []
        for promo in self.ordered:
            if promo.id in judged:
                found = judged[promo.id]
            else:
                found = check_eligibility(promo, basket, ctx)
                if found is None:
                    raise AssertionError(f"index left out eligible promotion {promo.id!r}")
            if found is not None:
                out.append(found)
        return tuple(out)
