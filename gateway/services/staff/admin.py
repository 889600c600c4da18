"""Staff, stores, tills and till keys: create, deactivate, reset, rotate, revoke.

Every function checks that what it touches belongs to ``merchant_id`` (another merchant's
ids answer "not found", so nothing is confirmed), writes one audit row, and leaves the commit
to the caller. Ending sessions works by bumping the person's session version.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import StaffUser, Store, Till, utcnow
from gateway.adapters.passwords import hash_password, verify_password
from gateway.errors import Conflict, InvalidInput, NotFound, Unauthorised
from gateway.services.staff import audit, mfa
from gateway.services.staff.auth import ROLES, IssuedKey, issue_till_key

MIN_PASSWORD = 10
# Who may hand out which role: never one above one's own.
RANK = {"cashier": 0, "supervisor": 1, "auditor": 2, "manager": 2, "owner": 3}


def grantable_roles(own_role: str) -> list[str]:
    mine = RANK.get(own_role, -1)
    return [role for role in ROLES if RANK.get(role, 99) <= mine]


USERNAME_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789._-")


def check_password(password: str, username: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password has at least {MIN_PASSWORD} characters")
    if username.lower() in password.lower():
        raise InvalidInput("a password must not contain the username")


def change_password(
    uow: UnitOfWork, staff_id: int, current: str, new: str, *, repeat: str | None = None
) -> StaffUser:
    """A person changes their own password; every other session of theirs ends."""
    user = uow.session.get(StaffUser, staff_id)
    if user is None or not user.active:
        raise Unauthorised("sign in again")
    if not verify_password(user.password_hash, current):
        raise InvalidInput("the current password is not right")
    if repeat is not None and repeat != new:
        raise InvalidInput("the two new passwords differ")
    if new == current:
        raise InvalidInput("choose a password different from the current one")
    check_password(new, user.username)
    user.password_hash = hash_password(new)
    user.password_change_required = False
    user.session_version += 1
    audit.record(uow, "password.changed", target=("staff", user.id), merchant_id=user.merchant_id)
    return user


def _staff(uow: UnitOfWork, merchant_id: int, staff_id: int) -> StaffUser:
    user = uow.session.get(StaffUser, staff_id)
    if user is None or user.merchant_id != merchant_id:
        raise NotFound(f"no staff member {staff_id} here")
    return user


def _store(uow: UnitOfWork, merchant_id: int, store_id: int) -> Store:
    store = uow.session.get(Store, store_id)
    if store is None or store.merchant_id != merchant_id:
        raise NotFound(f"no store {store_id} here")
    return store


def _till(uow: UnitOfWork, merchant_id: int, till_id: int) -> Till:
    till = uow.session.get(Till, till_id)
    if till is None or till.store.merchant_id != merchant_id:
        raise NotFound(f"no till {till_id} here")
    return till


def staff_view(user: StaffUser) -> dict[str, object]:
    return {
        "username": user.username,
        "display_name": user.display_name,
        "role": user.role,
        "store_id": user.store_id,
        "active": user.active,
    }


@dataclass(frozen=True, slots=True)
class NewStaff:
    user: StaffUser
    password: str  # shown once; the person must change it at first sign-in


def temporary_password() -> str:
    return secrets.token_urlsafe(12)


def create_staff(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    username: str,
    display_name: str,
    role: str,
    store_id: int | None,
    granted_by_role: str | None = None,
) -> NewStaff:
    """A new staff member with a temporary password; ``granted_by_role`` (the creator's role,
    None from the CLI) limits the role to one not above the creator's."""
    username = username.strip().lower()
    if not (2 <= len(username) <= 64) or set(username) - USERNAME_CHARS:
        raise InvalidInput("a username is 2–64 of a–z, 0–9, dot, dash and underscore")
    if role not in ROLES:
        raise InvalidInput(f"a role is one of {', '.join(ROLES)}, not {role!r}")
    if granted_by_role is not None and role not in grantable_roles(granted_by_role):
        raise InvalidInput(f"a {granted_by_role} cannot give the role {role}")
    display_name = display_name.strip()[:100] or username
    if store_id is not None:
        _store(uow, merchant_id, store_id)
    if uow.session.scalar(select(StaffUser.id).where(StaffUser.username == username)):
        raise Conflict(f"the username {username!r} is taken")
    password = temporary_password()
    user = StaffUser(
        merchant_id=merchant_id,
        store_id=store_id,
        username=username,
        display_name=display_name,
        role=role,
        active=True,
        password_hash=hash_password(password),
        password_change_required=True,
        session_version=1,
        recovery_codes=[],
    )
    uow.session.add(user)
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict(f"the username {username!r} is taken") from None
    audit.record(
        uow,
        "staff.created",
        target=("staff", user.id),
        after=staff_view(user),
        merchant_id=merchant_id,
        store_id=store_id,
    )
    return NewStaff(user, password)


def set_active(uow: UnitOfWork, merchant_id: int, staff_id: int, active: bool) -> StaffUser:
    """Deactivate (every session ends at once) or reactivate a staff member."""
    user = _staff(uow, merchant_id, staff_id)
    before = staff_view(user)
    user.active = active
    user.session_version += 1
    action = "staff.reactivated" if active else "staff.deactivated"
    audit.record(
        uow,
        action,
        target=("staff", user.id),
        before=before,
        after=staff_view(user),
        merchant_id=merchant_id,
        store_id=user.store_id,
    )
    return user


def set_language(
    uow: UnitOfWork, merchant_id: int, staff_id: int, language: str | None
) -> StaffUser:
    """The language of this person's pages; None (or empty) follows their browser."""
    from gateway.adapters.i18n import LOCALES

    language = language or None
    if language is not None and language not in LOCALES:
        raise InvalidInput(f"language must be one of {', '.join(LOCALES)} or empty")
    user = _staff(uow, merchant_id, staff_id)
    before = user.language
    user.language = language
    audit.record(
        uow, "staff.language_changed", target=("staff", user.id),
        before={"language": before}, after={"language": language},
        merchant_id=merchant_id, store_id=user.store_id,
    )  # fmt: skip
    return user


def reset_password(uow: UnitOfWork, merchant_id: int, staff_id: int) -> str:
    """A temporary password (shown once), to be changed at the next sign-in."""
    user = _staff(uow, merchant_id, staff_id)
    password = temporary_password()
    user.password_hash = hash_password(password)
    user.password_change_required = True
    user.session_version += 1
    audit.record(
        uow, "password.reset", target=("staff", user.id), merchant_id=merchant_id,
        store_id=user.store_id,
    )  # fmt: skip
    return password


def reset_second_factor(uow: UnitOfWork, merchant_id: int, staff_id: int) -> StaffUser:
    """Forget a lost authenticator: the person enrols again at their next sign-in."""
    user = _staff(uow, merchant_id, staff_id)
    mfa.reset(uow, user)
    user.session_version += 1
    audit.record(uow, "mfa.reset", target=("staff", user.id), merchant_id=merchant_id)
    return user


def create_store(
    uow: UnitOfWork, merchant_id: int, *, name: str, city: str, timezone: str
) -> Store:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    name, city = name.strip(), city.strip()
    if not name or len(name) > 100 or not city or len(city) > 100:
        raise InvalidInput("a store needs a name and a city (each up to 100 characters)")
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"{timezone!r} is not a time zone such as Europe/Berlin") from None
    store = Store(merchant_id=merchant_id, name=name, city=city, timezone=timezone)
    uow.session.add(store)
    uow.session.flush()
    audit.record(
        uow,
        "store.created",
        target=("store", store.id),
        after={"name": name, "city": city, "timezone": timezone},
        merchant_id=merchant_id,
        store_id=store.id,
    )
    return store


@dataclass(frozen=True, slots=True)
class TillWithKey:
    till: Till
    key: IssuedKey  # the key itself is shown once


def create_till(
    uow: UnitOfWork, merchant_id: int, store_id: int, *, label: str, name: str
) -> TillWithKey:
    store = _store(uow, merchant_id, store_id)
    label = label.strip()
    if not label or len(label) > 25 or not label.isascii():
        raise InvalidInput("a till label is 1–25 ASCII characters, e.g. T03")
    taken = uow.session.scalar(
        select(Till.id).where(Till.store_id == store.id, Till.label == label)
    )
    if taken:
        raise Conflict(f"{store.name} already has a till {label}")
    key = issue_till_key()
    till = Till(
        store_id=store.id,
        label=label,
        name=name.strip()[:100] or label,
        active=True,
        api_key_id=key.key_id,
        api_key_hash=key.key_hash,
    )
    uow.session.add(till)
    uow.session.flush()
    audit.record(
        uow,
        "till.created",
        target=("till", till.id),
        after={"label": label, "store": store.name, "key_id": key.key_id},
        merchant_id=merchant_id,
        store_id=store.id,
    )
    return TillWithKey(till, key)


def rotate_key(
    uow: UnitOfWork,
    merchant_id: int,
    till_id: int,
    *,
    grace: timedelta,
    now: datetime | None = None,
) -> IssuedKey:
    """A new key for the till; the current one keeps working for ``grace``, then stops."""
    till = _till(uow, merchant_id, till_id)
    now = now or utcnow()
    key = issue_till_key()
    old_id = till.api_key_id
    if grace > timedelta(0):
        till.previous_key_id, till.previous_key_hash = till.api_key_id, till.api_key_hash
        till.previous_key_expires_at = now + grace
    else:
        till.previous_key_id = till.previous_key_hash = till.previous_key_expires_at = None
    till.api_key_id, till.api_key_hash = key.key_id, key.key_hash
    uow.session.flush()
    audit.record(
        uow,
        "till.key_rotated",
        target=("till", till.id),
        before={"key_id": old_id},
        after={
            "key_id": key.key_id,
            "old_key_until": (now + grace).isoformat() if grace > timedelta(0) else None,
        },
        merchant_id=merchant_id,
        store_id=till.store_id,
    )
    return key


def revoke_key(uow: UnitOfWork, merchant_id: int, till_id: int) -> Till:
    """Stop the till's keys at once (current and any overlapping old one); the till is
    deactivated until a new key is issued with :func:`rotate_key`."""
    till = _till(uow, merchant_id, till_id)
    before = {"key_id": till.api_key_id, "previous_key_id": till.previous_key_id}
    dead = issue_till_key()  # nobody learns this key: the till has no working key
    till.api_key_id, till.api_key_hash = dead.key_id, dead.key_hash
    till.previous_key_id = till.previous_key_hash = till.previous_key_expires_at = None
    till.active = False
    audit.record(
        uow, "till.key_revoked", target=("till", till.id), before=before,
        after={"active": False}, merchant_id=merchant_id, store_id=till.store_id,
    )  # fmt: skip
    return till


def reactivate_till(uow: UnitOfWork, merchant_id: int, till_id: int) -> IssuedKey:
    """Bring a revoked till back with a fresh key (shown once)."""
    till = _till(uow, merchant_id, till_id)
    key = rotate_key(uow, merchant_id, till_id, grace=timedelta(0))
    till.active = True
    audit.record(
        uow, "till.reactivated", target=("till", till.id), merchant_id=merchant_id,
        store_id=till.store_id,
    )  # fmt: skip
    return key


def list_staff(uow: UnitOfWork, merchant_id: int) -> list[StaffUser]:
    return list(
        uow.session.scalars(
            select(StaffUser)
            .where(StaffUser.merchant_id == merchant_id)
            .order_by(StaffUser.username)
        )
    )


def staff_member(uow: UnitOfWork, merchant_id: int, staff_id: int) -> StaffUser:
    return _staff(uow, merchant_id, staff_id)


def list_tills(uow: UnitOfWork, merchant_id: int) -> list[Till]:
    return list(
        uow.session.scalars(
            select(Till)
            .join(Store, Store.id == Till.store_id)
            .where(Store.merchant_id == merchant_id)
            .order_by(Store.name, Till.label)
        )
    )
