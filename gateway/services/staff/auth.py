"""Who is calling: tills by API key, staff by username and password."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, StaffUser, Store, Till, utcnow
from gateway.adapters.passwords import verify_password
from gateway.errors import Unauthorised
from gateway.services.staff import permissions
from gateway.services.staff.permissions import TILL, effective_store
from gateway.services.staff.scope import Scope

KEY_PREFIX = "kt"
ROLES = permissions.ROLES


@dataclass(frozen=True, slots=True)
class TillContext:
    till_id: int
    store_id: int
    merchant_id: int
    label: str
    # Read with the key (None when the till was found otherwise): the store's name (its
    # accepted currencies) and the merchant's revision, which says whether what this process
    # keeps of the merchant is still current (gateway.services.payments.merchant_cache).
    store_name: str | None = field(default=None, compare=False)
    merchant_revision: int | None = field(default=None, compare=False)

    role = TILL

    @property
    def actor(self) -> str:
        return f"till:{self.label}"

    @property
    def scope(self) -> Scope:
        """A till's key acts only within its own store."""
        return Scope(self.merchant_id, self.store_id)

    def can(self, permission: str) -> bool:
        return permissions.allowed(TILL, permission, store_id=self.store_id)


@dataclass(frozen=True, slots=True)
class StaffContext:
    user_id: int
    merchant_id: int
    store_id: int | None
    username: str
    display_name: str
    role: str
    # Sessions carry this; a bump (logout, password change, deactivation) ends them all.
    session_version: int = 1
    must_change_password: bool = False
    mfa_enrolled: bool = False
    language: str | None = None  # None: follow the browser

    @property
    def actor(self) -> str:
        return f"staff:{self.username}"

    def can_manage(self) -> bool:
        """Managers and owners (older callers); ask :meth:`can` for a named permission."""
        return self.can("payment.resolve")

    @property
    def scope(self) -> Scope:
        """The merchant, and the store this person is bound to (owners and auditors: none)."""
        return Scope(self.merchant_id, effective_store(self.role, self.store_id))

    def can(self, permission: str) -> bool:
        return permissions.allowed(self.role, permission, store_id=self.store_id)


@dataclass(frozen=True, slots=True)
class IssuedKey:
    key_id: str
    key: str
    key_hash: str


def issue_till_key() -> IssuedKey:
    """A new API key ``kt_<id>_<secret>``; only its SHA-256 is stored.

    The secret has 256 bits of entropy, so a fast hash is enough (unlike passwords) and lets
    every API request be checked in microseconds.
    """
    key_id = secrets.token_hex(6)
    key = f"{KEY_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    return IssuedKey(key_id, key, _key_hash(key))


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Built once (a statement's construction costs more than its execution's cache lookup); plain
# columns, no ORM object.
_TILL_BY_KEY_ID = (
    select(
        Till.id,
        Till.store_id,
        Store.merchant_id,
        Till.label,
        Till.active,
        Till.api_key_id,
        Till.api_key_hash,
        Till.previous_key_id,
        Till.previous_key_hash,
        Till.previous_key_expires_at,
        Store.name.label("store_name"),
        Merchant.revision.label("merchant_revision"),
    )
    .join(Store, Store.id == Till.store_id)
    .join(Merchant, Merchant.id == Store.merchant_id)
    .where(or_(Till.api_key_id == bindparam("key_id"), Till.previous_key_id == bindparam("key_id")))
)


def authenticate_till(uow: UnitOfWork | Connection, authorization: str | None) -> TillContext:
    """The till whose API key ``authorization`` carries, read through ``uow`` (a unit of work,
    or a bare Core connection: the access guard's cheaper road on every API request)."""
    if not authorization or not authorization.startswith("Bearer "):
        raise Unauthorised("send the till's API key as 'Authorization: Bearer kt_…'")
    key = authorization[len("Bearer ") :].strip()
    parts = key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_PREFIX:
        raise Unauthorised("the API key is malformed: expected 'kt_<id>_<secret>'")
    # One statement, checked afresh on every API request: revoking, rotating or deactivating a
    # till takes effect on the next request.
    reader = uow if isinstance(uow, Connection) else uow.session
    till = reader.execute(_TILL_BY_KEY_ID, {"key_id": parts[1]}).first()
    if till is None or not _key_matches(till, parts[1], _key_hash(key)):
        raise Unauthorised("the API key is not valid")
    if not till.active:
        raise Unauthorised(f"till {till.label} is deactivated")
    return TillContext(
        till.id,
        till.store_id,
        till.merchant_id,
        till.label,
        store_name=till.store_name,
        merchant_revision=till.merchant_revision,
    )


def _key_matches(till: Any, key_id: str, key_hash: str) -> bool:
    """The till's current key, or its previous one until the rotation's grace period ends."""
    if till.api_key_id == key_id:
        return hmac.compare_digest(till.api_key_hash, key_hash)
    expires = till.previous_key_expires_at
    return (
        till.previous_key_id == key_id
        and till.previous_key_hash is not None
        and expires is not None
        and expires > utcnow()
        and hmac.compare_digest(till.previous_key_hash, key_hash)
    )


def authenticate_staff(uow: UnitOfWork, username: str, password: str) -> StaffContext:
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    ok = verify_password(user.password_hash if user else None, password)
    if user is None or not ok or not user.active:
        raise Unauthorised("wrong username or password")
    return staff_context(user)


def staff_context(user: StaffUser) -> StaffContext:
    return StaffContext(
        user.id,
        user.merchant_id,
        user.store_id,
        user.username,
        user.display_name,
        user.role,
        session_version=user.session_version,
        must_change_password=user.password_change_required,
        mfa_enrolled=user.totp_enrolled_at is not None,
        language=user.language,
    )


def staff_by_username(uow: UnitOfWork, username: str) -> StaffUser | None:
    return uow.session.scalar(select(StaffUser).where(StaffUser.username == username.strip()))


def load_staff(uow: UnitOfWork, user_id: int) -> StaffContext | None:
    user = uow.session.get(StaffUser, user_id)
    if user is None or not user.active:
        return None
    return staff_context(user)


def tills_for_staff(uow: UnitOfWork, staff: StaffContext) -> list[TillContext]:
    """The tills a staff member may work at: their store's, or all of the merchant's."""
    query = (
        select(Till, Store.merchant_id)
        .join(Store, Store.id == Till.store_id)
        .where(Store.merchant_id == staff.merchant_id, Till.active.is_(True))
        .order_by(Store.id, Till.label)
    )
    if staff.scope.store_id is not None:
        query = query.where(Till.store_id == staff.scope.store_id)
    return [TillContext(t.id, t.store_id, m, t.label) for t, m in uow.session.execute(query)]


def till_for_staff(uow: UnitOfWork, staff: StaffContext, till_id: int) -> TillContext:
    for till in tills_for_staff(uow, staff):
        if till.till_id == till_id:
            return till
    raise Unauthorised("this till is not one you may work at")
