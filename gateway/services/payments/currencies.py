"""Which currencies a till may take payments in: its store's list, else its merchant's, else
the merchant's default currency (``[payments.currencies]``, README "Configuration").

Checked when a QR or card payment is created, before anything is issued or sent to a device:
a QR code in KWD for a merchant whose bank account is in EUR could never be paid.
"""

from __future__ import annotations

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Store
from gateway.domain.money import Money
from gateway.errors import CurrencyRefused
from gateway.services.staff.auth import TillContext
from gateway.settings import AcceptedCurrencies


def accepted_currencies(
    uow: UnitOfWork, till: TillContext, settings: AcceptedCurrencies
) -> tuple[str, ...]:
    store = uow.session.get_one(Store, till.store_id)
    merchant = uow.session.get_one(Merchant, till.merchant_id)
    return (
        settings.stores.get(store.name)
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
