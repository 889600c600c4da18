"""Builders for real rows the tests need beyond the demo data."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import Merchant, Payment, StaffUser, Store, Till, utcnow
from gateway.adapters.passwords import hash_password
from gateway.domain.money import Money
from gateway.services.payments import qr_payments
from gateway.services.staff import mfa
from gateway.services.staff.auth import issue_till_key
from tests.staff_helpers import OTHER_TOTP_SECRET


def second_merchant(db: Database, password: str = "other-secret-pw") -> dict[str, Any]:
    """Another merchant with one store, one till and a manager: for isolation tests."""
    key = issue_till_key()
    with db.unit_of_work() as uow:
        merchant = Merchant(
            name="Other Shop",
            qr_name="Other Shop",
            qr_city="Hamburg",
            country="DE",
            mcc="5812",
            qr_accounts=[{"tag": "26", "gui": "IO.KASSA.SANDBOX", "fields": {"01": "OTHER-1"}}],
            default_currency="EUR",
            locale="de_DE",
        )
        store = Store(merchant=merchant, name="Hamburg", city="Hamburg", timezone="Europe/Berlin")
        uow.session.add_all([merchant, store])
        uow.session.flush()
        uow.session.add(
            Till(
                store_id=store.id,
                label="H01",
                name="Till",
                active=True,
                api_key_id=key.key_id,
                api_key_hash=key.key_hash,
            )
        )
        manager = StaffUser(
            merchant_id=merchant.id,
            username="other-manager",
            display_name="Olga Other",
            role="manager",
            active=True,
            password_hash=hash_password(password),
        )
        uow.session.add(manager)
        uow.session.flush()
        mfa.enrol_with_secret(uow, manager, OTHER_TOTP_SECRET)
        uow.commit()
        return {
            "merchant_id": merchant.id,
            "api_key": key.key,
            "manager": "other-manager",
            "password": password,
        }


def paid_by_bank(
    uow: UnitOfWork,
    payment_id: str,
    *,
    money: Money | None = None,
    bank_payment_id: str | None = None,
) -> Payment:
    """Apply the bank's word that the customer paid, as a ``payment.succeeded`` callback does
    (the same public function, under the payment's row lock); not committed."""
    payment = uow.session.scalars(
        select(Payment).where(Payment.id == payment_id).with_for_update()
    ).one()
    qr_payments.record_bank_payment(
        uow,
        payment,
        money=money or Money(payment.amount_minor, payment.currency),
        bank_payment_id=bank_payment_id or f"bank-{payment.reference}",
        paid_at=utcnow(),
        actor="test:bank",
        detail={},
    )
    return payment
