"""`kassa audit …` (check and read the audit trail) and `kassa admin …` (staff, stores, tills
and their API keys).

Errors are :class:`~gateway.errors.KassaError`; the ``kassa`` group turns them into one line on
stderr and exit code 2. Every admin action is written to the audit trail with source ``cli``.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from gateway.services.staff.audit_context import Acting, set_acting


@contextmanager
def _unit_of_work(readonly: bool = False) -> Iterator[Any]:
    from gateway.adapters import passwords
    from gateway.adapters.db import Database
    from gateway.config import load_config

    settings = load_config()
    passwords.configure(settings.security.argon2_time_cost, settings.security.argon2_memory_kib)
    set_acting(Acting(f"cli:{_operator()}"))
    database = Database(settings.database.url)
    try:
        database.require_current_schema()
        with database.unit_of_work(readonly=readonly) as uow:
            yield uow
    finally:
        database.dispose()


def _operator() -> str:
    """Who runs the command, as the operating system knows them."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@click.group("audit")
def audit() -> None:
    """The audit trail: who did what, chained by hashes so that an edit shows."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every row's hash and every chain (one per store, per merchant, and global); exit 1
    naming each broken chain and its first broken row, 0 when all are intact."""
    from gateway.services.staff import audit as trail

    with _unit_of_work(readonly=True) as uow:
        result = trail.verify(uow)
    if result.intact:
        click.echo(f"audit trail intact: {result.checked} rows checked in {result.chains} chains")
        return
    for broken in result.breaks:
        where = f"row {broken.row_id}" if broken.row_id else "its head"
        click.echo(
            f"audit trail BROKEN in chain {broken.chain} at {where}: {broken.reason} "
            f"({broken.intact_before} rows before it in that chain are intact)",
            err=True,
        )
    click.echo(
        f"{len(result.breaks)} of {result.chains} chains broken; {result.checked} rows add up",
        err=True,
    )
    sys.exit(1)


MERCHANT = click.option(
    "--merchant", "merchant_id", type=int, help="Merchant id (default: the only merchant)."
)


def _merchant(uow: Any, merchant_id: int | None) -> int:
    from gateway.services.staff.stores import chosen_merchant

    return chosen_merchant(uow, merchant_id)


def _person(uow: Any, username: str) -> Any:
    from gateway.errors import NotFound
    from gateway.services.staff.auth import staff_by_username

    user = staff_by_username(uow, username)
    if user is None:
        raise NotFound(f"no staff member {username!r}")
    return user


def _store_named(uow: Any, merchant_id: int, name: str) -> Any:
    from gateway.errors import NotFound
    from gateway.services.staff.stores import merchant_stores

    for store in merchant_stores(uow, merchant_id):
        if store.name == name:
            return store
    raise NotFound(f"no store {name!r}")


@click.group("admin")
def admin() -> None:
    """Staff, stores, tills and till API keys (every change is in the audit trail)."""


@admin.group("staff")
def admin_staff() -> None:
    """Staff members: list, create, deactivate, reset a password or second factor."""


@admin_staff.command("list")
@MERCHANT
def staff_list(merchant_id: int | None) -> None:
    from gateway.services.staff import admin as service

    with _unit_of_work(readonly=True) as uow:
        for user in service.list_staff(uow, _merchant(uow, merchant_id)):
            state = "active" if user.active else "deactivated"
            mfa = "mfa" if user.totp_enrolled_at else "-"
            click.echo(f"{user.id:>5}  {user.username:<20} {user.role:<10} {mfa:<4} {state}")


@admin_staff.command("create")
@click.option("--username", required=True)
@click.option("--role", required=True, help="cashier, supervisor, manager, owner or auditor.")
@click.option("--name", "display_name", default="", help="Display name (default: username).")
@click.option("--store", "store_name", default=None, help="Home store's name (default: all).")
@MERCHANT
def staff_create(
    username: str, role: str, display_name: str, store_name: str | None, merchant_id: int | None
) -> None:
    """Add a staff member; prints a temporary password to change at first sign-in."""
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        merchant = _merchant(uow, merchant_id)
        store = _store_named(uow, merchant, store_name).id if store_name else None
        made = service.create_staff(
            uow, merchant, username=username, display_name=display_name, role=role,
            store_id=store,
        )  # fmt: skip
        uow.commit()
        click.echo(f"{made.user.username}: temporary password {made.password} (shown once)")


@admin_staff.command("deactivate")
@click.option("--username", required=True)
def staff_deactivate(username: str) -> None:
    """Lock a staff member out; every session of theirs ends at once."""
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        user = _person(uow, username)
        service.set_active(uow, user.merchant_id, user.id, False)
        uow.commit()
    click.echo(f"{username} deactivated")


@admin_staff.command("reactivate")
@click.option("--username", required=True)
def staff_reactivate(username: str) -> None:
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        user = _person(uow, username)
        service.set_active(uow, user.merchant_id, user.id, True)
        uow.commit()
    click.echo(f"{username} reactivated")


@admin_staff.command("reset-password")
@click.option("--username", required=True)
def staff_reset_password(username: str) -> None:
    """A temporary password (to change at the next sign-in); every session ends."""
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        user = _person(uow, username)
        password = service.reset_password(uow, user.merchant_id, user.id)
        uow.commit()
    click.echo(f"{username}: temporary password {password} (shown once)")


@admin_staff.command("reset-mfa")
@click.option("--username", required=True)
def staff_reset_mfa(username: str) -> None:
    """Forget a lost authenticator: the person enrols again at the next sign-in."""
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        user = _person(uow, username)
        service.reset_second_factor(uow, user.merchant_id, user.id)
        uow.commit()
    click.echo(f"{username} sets up a new second factor at the next sign-in")


@admin.group("store")
def admin_store() -> None:
    """Stores."""


@admin_store.command("create")
@click.option("--name", required=True)
@click.option("--city", required=True)
@click.option("--timezone", default="Europe/Berlin", show_default=True)
@MERCHANT
def store_create(name: str, city: str, timezone: str, merchant_id: int | None) -> None:
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        store = service.create_store(
            uow, _merchant(uow, merchant_id), name=name, city=city, timezone=timezone
        )
        uow.commit()
        click.echo(f"store {store.id}: {store.name}")


@admin.group("till")
def admin_till() -> None:
    """Tills and their API keys."""


@admin_till.command("create")
@click.option("--store", "store_name", required=True, help="The store's name.")
@click.option("--label", required=True, help="e.g. T03 (printed on receipts and QR codes).")
@click.option("--name", default="")
@MERCHANT
def till_create(store_name: str, label: str, name: str, merchant_id: int | None) -> None:
    """Add a till; prints its API key (shown once)."""
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        merchant = _merchant(uow, merchant_id)
        store = _store_named(uow, merchant, store_name)
        made = service.create_till(uow, merchant, store.id, label=label, name=name)
        uow.commit()
        click.echo(f"till {store.name}/{made.till.label}: API key {made.key.key} (shown once)")


TILL = click.option("--till", "till_name", required=True, metavar="STORE/TILL")


@admin_till.command("rotate-key")
@TILL
@click.option(
    "--grace-seconds",
    type=click.IntRange(0, 10 * 365 * 86400),
    default=None,
    help="How long the old key keeps working (default: [security] key_grace_seconds).",
)
def till_rotate_key(till_name: str, grace_seconds: int | None) -> None:
    """A new API key (shown once); the old one overlaps for the grace period, then stops."""
    from datetime import timedelta

    from gateway.config import load_config
    from gateway.services.devices.end_of_day import till_by_name
    from gateway.services.staff import admin as service

    grace = timedelta(
        seconds=load_config().security.key_grace_seconds if grace_seconds is None else grace_seconds
    )
    with _unit_of_work() as uow:
        till = till_by_name(uow, till_name)
        key = service.rotate_key(uow, till.store.merchant_id, till.id, grace=grace)
        uow.commit()
    click.echo(f"till {till_name}: new API key {key.key} (shown once); old key works for {grace}")


@admin_till.command("revoke-key")
@TILL
def till_revoke_key(till_name: str) -> None:
    """Stop the till's keys now (a lost or stolen till); the till is deactivated."""
    from gateway.services.devices.end_of_day import till_by_name
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        till = till_by_name(uow, till_name)
        service.revoke_key(uow, till.store.merchant_id, till.id)
        uow.commit()
    click.echo(f"till {till_name}: keys revoked, till deactivated")


@admin_till.command("reactivate")
@TILL
def till_reactivate(till_name: str) -> None:
    """Bring a revoked till back with a new API key (shown once)."""
    from gateway.services.devices.end_of_day import till_by_name
    from gateway.services.staff import admin as service

    with _unit_of_work() as uow:
        till = till_by_name(uow, till_name)
        key = service.reactivate_till(uow, till.store.merchant_id, till.id)
        uow.commit()
    click.echo(f"till {till_name}: active again, API key {key.key} (shown once)")


@admin.command("totp-code")
@click.option("--secret", required=True, help="A TOTP secret (base32), e.g. the demo's.")
def totp_code(secret: str) -> None:
    """Print the current code for a TOTP secret, as an authenticator app shows it (demo aid)."""
    from gateway.adapters.models import utcnow
    from gateway.services.staff.mfa import code_at

    try:
        code = code_at(secret, utcnow())
    except ValueError:  # not base32 (binascii.Error is one), or too short to be a secret
        raise click.BadParameter("not a TOTP secret (base32, at least 16 letters)") from None
    click.echo(code)
