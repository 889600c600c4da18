"""``price``: apply promotions to a basket, deterministically, and explain every decision.

The combination rule:

1. Promotions are considered by priority, highest first, ties by id (the input order never
   matters), in three stages: discounts first, then points redemption (paying with points),
   then rewards (points, gifts, draw entries), so rewards see the amounts actually paid.
2. Each one must be eligible (targeting, coupon code, usage limits, budget left).
3. ``group``: at most one promotion per group applies, the first one that applies.
4. ``exclusive`` concerns discounts only: an exclusive discount applies only if no discount
   applied before it, and once it applies no later discount does. Points redemption is a
   way of paying and rewards are not discounts: exclusivity never stops them (groups hold).
5. Each discount is judged on what is still to pay after the earlier ones (a threshold looks
   at the discounted amount), is at most that, and is cut to what is left of its budget.
6. It is spread over its lines by largest remainder weighted by what each still has to pay,
   so no line goes below zero and the lines always sum to the total to pay.
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.domain.money import Money, allocate_minor
from gateway.domain.promotions.catalog import Catalog
from gateway.domain.promotions.eligibility import check_eligibility
from gateway.domain.promotions.model import Basket, Promotion, SaleContext
from gateway.domain.promotions.rejection import Reason, Rejection
from gateway.domain.promotions.rewards import Reward, SaleState, compute_reward
from gateway.domain.promotions.sale import AppliedPromotion, PricedLine, PricedSale


def price(
    basket: Basket, promotions: Catalog | Iterable[Promotion], ctx: SaleContext
) -> PricedSale:
    """Price ``basket`` with ``promotions`` (a prepared ``Catalog`` is fastest) for ``ctx``."""
    catalog = promotions if isinstance(promotions, Catalog) else Catalog(promotions)
    pricing = _Pricing(basket, ctx)
    chosen = [catalog.ordered[i] for i in catalog.candidates(basket, ctx)]
    for stage in (0, 1, 2):
        for promo in chosen:
            if promo.stage == stage:
                pricing.consider(promo)
    return pricing.result(catalog)


class _Pricing:
    """The state of one pricing run: amounts left, what applied, what was judged."""

    def __init__(self, basket: Basket, ctx: SaleContext) -> None:
        amounts = [line.amount_minor for line in basket.lines]
        if basket.fee_minor > 0:
            amounts.append(basket.fee_minor)
        self.sale = SaleState(basket, ctx, amounts)
        self.applied: list[AppliedPromotion] = []
        self.judged: dict[str, Rejection | None] = {}
        self.groups: dict[str, str] = {}
        self.exclusive: str | None = None
        self.first_discount: str | None = None

    def consider(self, promo: Promotion) -> None:
        found = check_eligibility(promo, self.sale.basket, self.sale.ctx) or self._combination(
            promo
        )
        if found is None:
            outcome = compute_reward(promo, self.sale)
            if isinstance(outcome, Rejection):
                found = outcome
            else:
                self._apply(promo, outcome)
        self.judged[promo.id] = found

    def _combination(self, promo: Promotion) -> Rejection | None:
        currency = self.sale.basket.currency
        if promo.group is not None and promo.group in self.groups:
            holder = self.groups[promo.group]
            return Rejection(promo.id, Reason.GROUP, (promo.group, holder), currency)
        if promo.stage != 0:
            return None
        if self.exclusive is not None:
            return Rejection(promo.id, Reason.EXCLUSIVE_TAKEN, (self.exclusive,), currency)
        if promo.exclusive and self.first_discount is not None:
            return Rejection(promo.id, Reason.EXCLUSIVE_LATE, (self.first_discount,), currency)
        return None

    def _apply(self, promo: Promotion, reward: Reward) -> None:
        discount, note = self._within_budget(promo, reward.discount_minor)
        per_line = self._spread(reward.lines, discount)
        basis = self._basis(reward) if reward.points else ()
        self.applied.append(
            AppliedPromotion(
                promo.id, promo.kind, promo.name, discount, per_line, reward.points, basis,
                reward.gift, promo.limits.budget_minor is not None and discount > 0, note,
                reward.points_redeemed, reward.referrer_points, reward.draw,
            )
        )  # fmt: skip
        if promo.group is not None:
            self.groups[promo.group] = promo.id
        if promo.stage == 0:
            self.first_discount = self.first_discount or promo.id
            if promo.exclusive:
                self.exclusive = promo.id

    def _within_budget(self, promo: Promotion, discount: int) -> tuple[int, str | None]:
        budget = promo.limits.budget_minor
        if budget is None or discount == 0:
            return discount, None
        left = budget - self.sale.ctx.usage_of(promo.id).global_money_minor
        if discount <= left:
            return discount, None
        money = Money(left, self.sale.basket.currency)
        return left, f"reduced to the {money} left in its budget"

    def _spread(self, lines: tuple[int, ...], discount: int) -> tuple[int, ...]:
        remaining = self.sale.remaining
        per_line = [0] * len(remaining)
        if discount > 0:
            shares = allocate_minor(discount, [remaining[i] for i in lines])
            for i, share in zip(lines, shares, strict=True):
                per_line[i] = share
                remaining[i] -= share
        return tuple(per_line)

    def _basis(self, reward: Reward) -> tuple[int, ...]:
        basis = [0] * len(self.sale.remaining)
        for i in reward.lines:
            basis[i] = self.sale.remaining[i]
        return tuple(basis)

    def result(self, catalog: Catalog) -> PricedSale:
        basket, ctx, judged = self.sale.basket, self.sale.ctx, self.judged
        lines = self._lines()
        return PricedSale(
            currency=basket.currency,
            lines=lines,
            applied=tuple(self.applied),
            total_before_minor=sum(line.original_minor for line in lines),
            total_after_minor=sum(self.sale.remaining),
            points=sum(a.points for a in self.applied),
            gifts=tuple(a.gift for a in self.applied if a.gift is not None),
            rejections_of=lambda: catalog.rejections(basket, ctx, judged),
            considered=frozenset(judged),
        )

    def _lines(self) -> tuple[PricedLine, ...]:
        basket, remaining = self.sale.basket, self.sale.remaining
        out = [
            PricedLine(ln.sku, ln.name, ln.category, ln.quantity, ln.amount_minor,
                       ln.amount_minor - remaining[i], remaining[i])
            for i, ln in enumerate(basket.lines)
        ]  # fmt: skip
        if basket.fee_minor > 0:
            fee = basket.fee_minor
            out.append(
                PricedLine("fee", "Service fee", "fee", 1, fee, fee - remaining[-1], remaining[-1])
            )
        return tuple(out)
