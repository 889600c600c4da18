"""What a caller may see: one merchant, and within it one store or all of them.

Every query that loads a payment, refund, sale, till or device for a person or a till is
narrowed by :func:`narrow`, so a Berlin Mitte cashier or till never finds a Kreuzberg payment
and another merchant's ids answer "not found" (404), never "forbidden" (which would confirm
that the id exists).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement


@dataclass(frozen=True, slots=True)
class Scope:
    """A merchant, and the one store the caller is bound to (None: every store)."""

    merchant_id: int
    store_id: int | None = None

    @property
    def merchant_wide(self) -> bool:
        return self.store_id is None

    def covers(self, merchant_id: int, store_id: int | None) -> bool:
        """Whether an object of this merchant and store is inside the scope."""
        if merchant_id != self.merchant_id:
            return False
        return self.store_id is None or store_id == self.store_id


def as_scope(scope: Scope | int) -> Scope:
    """A bare merchant id (the CLI, jobs and workers act for the whole merchant) or a scope."""
    return scope if isinstance(scope, Scope) else Scope(scope)


def narrow(scope: Scope | int, merchant_column: Any, store_column: Any) -> ColumnElement[bool]:
    """The WHERE condition that keeps rows inside the scope: the one place scope is checked."""
    scope = as_scope(scope)
    condition: ColumnElement[bool] = merchant_column == scope.merchant_id
    if scope.store_id is not None:
        condition = condition & (store_column == scope.store_id)
    return condition
