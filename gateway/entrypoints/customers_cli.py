"""`kassa customers …`: what Kassa holds about one customer (export), forgetting them, and
the stores' VAT rates that e-receipts print.

A customer is named by their wallet id or member code; Kassa looks them up by its keyed hash
and never stores either in clear. Both actions are audited. Bad input is one line on stderr
and exit code 2 (the ``kassa`` group turns :class:`~gateway.errors.KassaError` into that).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click

from gateway.entrypoints.input_guard import MAX_ROW_ID
from gateway.errors import InvalidInput

MERCHANT = click.option(
    "--merchant",
    "merchant_id",
    type=click.IntRange(1, MAX_ROW_ID),
    help="Merchant id (default: the only merchant).",
)
WALLET = click.option("--wallet", "wallet_id", help="The customer's wallet id.")
MEMBER = click.option("--member", "member_code", help="The customer's member code.")


@click.group("customers")
def customers() -> None:
    """A customer's data: export everything held about them, or forget them."""


@contextmanager
def _unit_of_work(readonly: bool = False) -> Iterator[tuple[Any, bytes]]:
    from gateway.adapters.db import Database
    from gateway.config import identity_key, load_config

    settings = load_config()
    database = Database(settings.database.url)
    try:
        database.require_current_schema()
        with database.unit_of_work(readonly=readonly) as uow:
            yield uow, identity_key(settings)
    finally:
        database.dispose()


def _customer(
    uow: Any, key: bytes, merchant_id: int | None, wallet: str | None, member: str | None
) -> Any:
    from gateway.services.promotions.customers import IdentityInput
    from gateway.services.promotions.privacy import find
    from gateway.services.staff.stores import chosen_merchant

    if bool(wallet) == bool(member):
        raise InvalidInput("name the customer by exactly one of --wallet or --member")
    merchant = chosen_merchant(uow, merchant_id)
    return find(uow, key, merchant, IdentityInput(wallet_id=wallet, member_code=member))


@customers.command("export")
@MERCHANT
@WALLET
@MEMBER
def export_command(merchant_id: int | None, wallet_id: str | None, member_code: str | None) -> None:
    """Print everything Kassa holds about the customer as JSON (audited)."""
    from gateway.services.promotions import privacy

    with _unit_of_work() as (uow, key):
        customer = _customer(uow, key, merchant_id, wallet_id, member_code)
        data = privacy.export(uow, customer, actor="cli")
        uow.commit()
    click.echo(json.dumps(data, indent=2, ensure_ascii=False))


@customers.command("forget")
@MERCHANT
@WALLET
@MEMBER
@click.option("--reason", required=True, help="Why (e.g. the customer's request of a date).")
@click.option("--yes", is_flag=True, help="Do it: without --yes only what would go is shown.")
def forget_command(
    merchant_id: int | None,
    wallet_id: str | None,
    member_code: str | None,
    reason: str,
    yes: bool,
) -> None:
    """Anonymise the customer: their identities, points and the link from their sales go;
    payments, refunds and sales' amounts stay (audited)."""
    from gateway.services.promotions import privacy

    if not reason.strip():
        raise InvalidInput("--reason must say why the customer is forgotten")
    with _unit_of_work() as (uow, key):
        customer = _customer(uow, key, merchant_id, wallet_id, member_code)
        if not yes:
            held = privacy.export(uow, customer, actor="cli")
            click.echo(
                f"would forget customer {customer.id}: {len(held['identities'])} identities, "
                f"{len(held['sales'])} sales kept without their customer, "
                f"{len(held['points_lots'])} points lots; run again with --yes"
            )
            uow.commit()  # the look at their data is audited too
            return
        counts = privacy.forget(uow, customer, actor="cli", reason=reason.strip())
        uow.commit()
    click.echo(json.dumps({"forgotten": True, **counts}))


@customers.command("vat-rates")
@click.option("--store", "store_id", type=click.IntRange(1, MAX_ROW_ID), required=True)
@click.argument("rates", nargs=-1)
def vat_rates_command(store_id: int, rates: tuple[str, ...]) -> None:
    """Set the VAT rates a store's e-receipts print: CATEGORY=PERCENT pairs, "default" for
    every other category (e.g. default=19 food=7). No pairs: the store prints no VAT."""
    from gateway.domain.receipt import parse_rates
    from gateway.services import receipts

    try:
        parsed = parse_rates(rates)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    with _unit_of_work() as (uow, _key):
        store = receipts.set_vat_rates(uow, store_id, parsed)
        uow.commit()
        click.echo(json.dumps({"store": store.name, "vat_rates": store.vat_rates}))
