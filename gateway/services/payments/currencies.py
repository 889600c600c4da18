"""Which currencies a till may take payments in: its store's list, else its merchant's, else
the merchant's default currency (``[payments.currencies]``, README "Configuration").

Checked when a QR or card payment is created, before anything is issued or sent to a device:
a QR code in KWD for a merchant whose bank account is in EUR could never be paid.
"""

from __future__ import annotations

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Store
from gateway.domain.money import Money
from gateway.errors import CurrencyRefused
from gateway.services.payments import merchant_cache
from gateway.services.staff.auth import TillContext
from gateway.settings import AcceptedCurrencies


def accepted_currencies(
    uow: UnitOfWork, till: TillContext, settings: AcceptedCurrencies
) -> tuple[str, ...]:
    if till.store_name is not None:  # read with the till's key
        merchant = merchant_cache.merchant_for_sale(uow, till)
        return (
            settings.stores.get(till.store_name)
            or settings.merchants.get(merchant.name)
            or (merchant.default_currency,)
        )
    # One round trip for both; the merchant stays in the session for the payment's QR profile
    # and approval limits.
    merchant, store_name = uow.session.execute(
        select(Merchant, Store.name)
        .join(Store, Store.merchant_id == Merchant.id)
        .where(Store.id == till.store_id, Merchant.id == till.merchant_id)
    ).one()
    uow.keep(merchant)
    return (
        settings.stores.get(store_name)
        or settings.merchants.get(merchant.name)
        or (merchant.default_currency,)
    )


def check_accepted(
    uow: UnitOfWork, till: TillContext, money: Money, settings: AcceptedCurrencies
) -> None:
    """Refuse (422) a payment in a currency the till's store and merchant do not accept."""
    accepted = accepted_currencies(uow, till, settings)
    if money.currency not in accepted:
        raise CurrencyRefused(
            f"currency: this store accepts {', '.join(accepted)} only, not {money.currency}",
            accepted=list(accepted),
        )
