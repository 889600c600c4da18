"""What a sale reads of its merchant, kept by each web process for as long as it is current.

A sale reads its merchant (the QR profile, accepted currencies, approval limits, anomaly
thresholds) and asks whether the merchant has an active webhook endpoint: two statements that
nearly always answer what they answered for the last sale. The merchant's ``revision`` moves,
by the database's own triggers (migration 0023), with every change of the merchant's row or of
its endpoints' status, subscriptions or owner, whoever makes it; the till's key check, made on
every API request anyway, reads it. A process keeps what one statement read together with the
revision it read, and uses it only while the key check reads the same revision: a change made
by any process is seen by the next sale that starts after it commits. The web tier still keeps
no state that PostgreSQL does not decide.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from sqlalchemy import bindparam, inspect, select
from sqlalchemy.orm import make_transient_to_detached

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant
from gateway.services.staff.auth import TillContext
from gateway.services.webhooks import outbox

MAX_MERCHANTS = 4096  # kept per process; past it the process starts over (merchants are few)


@dataclass(frozen=True, slots=True)
class _Kept:
    revision: int
    merchant: Merchant  # detached, never in a session: each sale merges a copy of it
    any_endpoint: bool


_kept: dict[int, _Kept] = {}


def merchant_for_sale(uow: UnitOfWork, till: TillContext) -> Merchant:
    """The till's merchant in ``uow``'s session (later ``get``s of it ask nothing), read from
    the database unless this process keeps it at the revision the till's key check read. A
    merchant known to have no active webhook endpoint is noted for the unit of work, so its
    events ask nothing either (:func:`outbox.note_none_active`)."""
    session = uow.session
    present = session.identity_map.get(
        inspect(Merchant).identity_key_from_primary_key((till.merchant_id,))
    )
    if present is not None:
        return present  # type: ignore[no-any-return]
    kept = _kept.get(till.merchant_id)
    if kept is not None and till.merchant_revision == kept.revision:
        merchant = session.merge(kept.merchant, load=False)
        any_endpoint = kept.any_endpoint
    else:
        merchant, any_endpoint = session.execute(_load(), {"merchant_id": till.merchant_id}).one()
        any_endpoint = bool(any_endpoint)
        if len(_kept) >= MAX_MERCHANTS:
            _kept.clear()
        _kept[merchant.id] = _Kept(merchant.revision, _snapshot(merchant), any_endpoint)
    uow.keep(merchant)
    if not any_endpoint:
        outbox.note_none_active(uow, merchant.id)
    return merchant


def forget_all() -> None:
    """Drop everything kept (tests that rewrite a database under a running process)."""
    _kept.clear()


@lru_cache(maxsize=1)
def _load() -> Any:
    """The merchant and whether it has an active endpoint, in one statement (one snapshot, so
    the revision read belongs to both); a merchant already in the session is read afresh."""
    return (
        select(Merchant, outbox.any_active(Merchant.id))
        .where(Merchant.id == bindparam("merchant_id"))
        .execution_options(populate_existing=True)
    )


_COLUMNS = tuple(attr.key for attr in inspect(Merchant).column_attrs)


def _snapshot(merchant: Merchant) -> Merchant:
    """A detached copy of ``merchant``'s columns (JSON values copied too, so that nothing a
    session does to its own object reaches the copy)."""
    snapshot = Merchant(**{key: copy.deepcopy(getattr(merchant, key)) for key in _COLUMNS})
    make_transient_to_detached(snapshot)
    return snapshot
