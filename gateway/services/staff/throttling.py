"""Sign-in throttling: growing delays, then a temporary lockout, per account and per address.

Failures are counted in the database (the web tier keeps no memory), keyed by the typed
username (known or not, so an unknown name answers like a known one) and by the client's
address. After ``free`` failures each further one makes the key wait twice as long as the last
(1, 2, 4 … seconds, up to ``max_delay``); at ``lockout`` failures it waits ``lockout_seconds``.
A success clears the account's count; a key quiet for ``lockout_seconds`` starts again from
zero. Time is always passed in, so tests need no sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import LoginThrottle
from gateway.errors import TooManyAttempts
from gateway.services.monitoring import rules as monitoring


@dataclass(frozen=True, slots=True)
class Limits:
    free: int
    lockout: int


@dataclass(frozen=True, slots=True)
class ThrottlePolicy:
    account: Limits = Limits(5, 10)
    address: Limits = Limits(20, 100)
    max_delay_seconds: int = 60
    lockout_seconds: int = 900

    def wait_after(self, failures: int, limits: Limits) -> int:
        if failures >= limits.lockout:
            return self.lockout_seconds
        if failures < limits.free:
            return 0
        return int(min(self.max_delay_seconds, 2 ** (failures - limits.free)))


def keys(username: str, address: str) -> dict[str, str]:
    return {
        "account": f"account:{username.strip().lower()[:150]}",
        "address": f"address:{address[:150]}",
    }


def check(uow: UnitOfWork, username: str, address: str, now: datetime) -> None:
    """Refuse (429) while either the account or the address has to wait."""
    rows = uow.session.scalars(
        select(LoginThrottle).where(LoginThrottle.key.in_(keys(username, address).values()))
    )
    waits = [row.locked_until - now for row in rows if row.locked_until and row.locked_until > now]
    if waits:
        seconds = math.ceil(max(waits).total_seconds())
        raise TooManyAttempts(
            f"too many failed sign-ins: wait {seconds} seconds and try again",
            retry_after=seconds,
        )


def failed(
    uow: UnitOfWork, username: str, address: str, now: datetime, policy: ThrottlePolicy
) -> int:
    """Count one failure for the account and the address; returns the account's count."""
    counts = {}
    for kind, key in keys(username, address).items():
        row = uow.session.scalars(
            select(LoginThrottle).where(LoginThrottle.key == key).with_for_update()
        ).first()
        if row is None:
            row = LoginThrottle(key=key, failures=0, last_failure_at=now)
            uow.session.add(row)
        if now - row.last_failure_at > timedelta(seconds=policy.lockout_seconds):
            row.failures = 0  # quiet for a lockout's length: start counting again
        row.failures += 1
        row.last_failure_at = now
        limits = policy.account if kind == "account" else policy.address
        wait = policy.wait_after(row.failures, limits)
        row.locked_until = now + timedelta(seconds=wait) if wait else None
        counts[kind] = row.failures
    uow.session.flush()
    monitoring.on_login_failed(uow, username, address, now)
    return counts["account"]


def succeeded(uow: UnitOfWork, username: str) -> None:
    key = keys(username, "")["account"]
    row = uow.session.get(LoginThrottle, key)
    if row is not None:
        uow.session.delete(row)
