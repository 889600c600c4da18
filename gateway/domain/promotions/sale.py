"""The priced sale: lines before and after discounts, what applied, what did not and why.

``refund_share`` reverses promotions in proportion to what a partial refund returns, exactly
in minor units: a full refund gives back every discount, point and budget unit; a partial one
never more than was applied (each share is rounded down).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import cached_property

from gateway.domain.promotions.rejection import Rejection
from gateway.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class PricedLine:
    """A basket line (or the service fee, sku "fee") with its discount; final = what is paid."""

    sku: str
    name: str
    category: str
    quantity: int
    original_minor: int
    discount_minor: int
    final_minor: int


@dataclass(frozen=True, slots=True)
class AppliedPromotion:
    """A promotion that applied. ``per_line`` is its discount on each priced line.

    ``points_basis`` is the amount paid per line that earned the points; ``budgeted`` says
    the discount counts against the promotion's money budget; ``note`` says why the discount
    is less than the rule alone would give (e.g. the budget ran short).
    """

    promotion_id: str
    kind: str
    name: str
    discount_minor: int
    per_line: tuple[int, ...]
    points: int = 0
    points_basis: tuple[int, ...] = ()
    gift: str | None = None
    budgeted: bool = False
    note: str | None = None
    points_redeemed: int = 0
    referrer_points: int = 0
    draw: bool = False


@dataclass(frozen=True, slots=True)
class RefundShare:
    """What one promotion gives back for a refund: discount, points earned to take back,
    budget to return and redeemed points to credit back to the customer."""

    promotion_id: str
    discount_minor: int
    points: int
    budget_minor: int
    points_redeemed: int = 0


@dataclass(frozen=True)
class PricedSale:
    """The outcome of ``price``. ``rejected`` is worked out on first use (see ``catalog``)."""

    currency: str
    lines: tuple[PricedLine, ...]
    applied: tuple[AppliedPromotion, ...]
    total_before_minor: int
    total_after_minor: int
    points: int
    gifts: tuple[str, ...]
    rejections_of: Callable[[], tuple[Rejection, ...]] = field(compare=False, repr=False)
    # Promotions the engine judged on this basket (the rest were ruled out by the index:
    # another store, currency or payment method, or none of their items in the basket).
    considered: frozenset[str] = field(default=frozenset(), compare=False, repr=False)

    @cached_property
    def rejected(self) -> tuple[Rejection, ...]:
        """Every promotion that did not apply, in the order they were considered."""
        return self.rejections_of()

    @property
    def discount_minor(self) -> int:
        return self.total_before_minor - self.total_after_minor

    @property
    def points_redeemed(self) -> int:
        return sum(a.points_redeemed for a in self.applied)

    def refund_share(self, refunded: Sequence[int]) -> tuple[RefundShare, ...]:
        """Per applied promotion, what to give back when ``refunded`` is returned.

        ``refunded[i]`` is the part of line ``i``'s *original* amount returned (e.g. one of
        three units: one unit's price); the original amount itself means the whole line.
        """
        self._check_refund(refunded)
        return tuple(self._share(a, refunded) for a in self.applied)

    def refund_share_of_total(self, refunded_minor: int) -> tuple[RefundShare, ...]:
        """Per applied promotion, what to give back when ``refunded_minor`` of the total paid
        is returned without naming lines: each figure times refunded / paid, rounded down
        (the whole total gives back everything exactly)."""
        paid = self.total_after_minor
        if not 0 <= refunded_minor <= paid:
            raise InvalidInput(f"a refund must be between 0 and {paid}")
        share = Fraction(refunded_minor, paid) if paid else Fraction(1)
        out = []
        for a in self.applied:
            discount = int(a.discount_minor * share)
            out.append(
                RefundShare(
                    a.promotion_id,
                    discount,
                    int(a.points * share),
                    discount if a.budgeted else 0,
                    int(a.points_redeemed * share),
                )
            )
        return tuple(out)

    def _check_refund(self, refunded: Sequence[int]) -> None:
        if len(refunded) != len(self.lines):
            raise InvalidInput(f"refund needs {len(self.lines)} line amounts, got {len(refunded)}")
        for line, amount in zip(self.lines, refunded, strict=True):
            if not 0 <= amount <= line.original_minor:
                raise InvalidInput(
                    f"refund of line {line.sku!r} must be between 0 and {line.original_minor}"
                )

    def _share(self, applied: AppliedPromotion, refunded: Sequence[int]) -> RefundShare:
        discount = sum(
            d * r // line.original_minor
            for d, r, line in zip(applied.per_line, refunded, self.lines, strict=True)
            if d
        )
        budget = discount if applied.budgeted else 0
        redeemed = 0
        if applied.points_redeemed:
            value = applied.discount_minor // applied.points_redeemed
            redeemed = discount // value
        points = self._points(applied, refunded)
        return RefundShare(applied.promotion_id, discount, points, budget, redeemed)

    def _points(self, applied: AppliedPromotion, refunded: Sequence[int]) -> int:
        basis = sum(applied.points_basis)
        if applied.points == 0 or basis == 0:
            return 0
        returned = sum(
            (Fraction(b * r, line.original_minor) for b, r, line in self._zip(applied, refunded)),
            Fraction(0),
        )
        return int(applied.points * returned / basis)

    def _zip(
        self, applied: AppliedPromotion, refunded: Sequence[int]
    ) -> list[tuple[int, int, PricedLine]]:
        return [
            (b, r, line)
            for b, r, line in zip(applied.points_basis, refunded, self.lines, strict=True)
            if b
        ]
