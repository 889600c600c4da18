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


# Everyone a merchant built by ``merchant_with_stores`` has, by principal name: the role, and
# whether they are bound to the first store (owners and auditors see every store anyway).
STAFF_OF_A_MERCHANT: dict[str, tuple[str, bool]] = {
    "cashier": ("cashier", True),
    "supervisor": ("supervisor", True),
    "manager": ("manager", True),  # a store manager
    "area-manager": ("manager", False),  # a manager for every store
    "owner": ("owner", False),
    "auditor": ("auditor", True),
}


def merchant_with_stores(
    db: Database, tag: str, *, password: str = "staff-secret-pw", pin: str = "2468"
) -> dict[str, Any]:
    """A merchant with two stores, a till in each (its API key returned), and one staff
    member of each role (``STAFF_OF_A_MERCHANT``, usernames ``<tag>-<name>``), all with
    ``password``; approvers also get the approval PIN ``pin``."""
    out: dict[str, Any] = {"tag": tag, "stores": [], "tills": [], "keys": [], "staff": {}}
    with db.unit_of_work() as uow:
        merchant = Merchant(
            name=f"Shop {tag}",
            qr_name=f"Shop {tag}"[:25],
            qr_city="Berlin",
            country="DE",
            mcc="5411",
            qr_accounts=[{"tag": "26", "gui": "IO.KASSA.SANDBOX", "fields": {"01": f"M-{tag}"}}],
            default_currency="EUR",
            locale="de_DE",
            settlement_accounts=[f"ACCOUNT-{tag}"],
        )
        uow.session.add(merchant)
        uow.session.flush()
        out["merchant_id"] = merchant.id
        for n in (1, 2):
            store = Store(merchant=merchant, name=f"{tag} store {n}", city="Berlin")
            uow.session.add(store)
            uow.session.flush()
            key = issue_till_key()
            till = Till(
                store_id=store.id,
                label=f"T{n}",
                name=f"Till {n}",
                active=True,
                api_key_id=key.key_id,
                api_key_hash=key.key_hash,
            )
            uow.session.add(till)
            uow.session.flush()
            out["stores"].append(store.id)
            out["tills"].append(till.id)
            out["keys"].append(key.key)
        password_hash = hash_password(password)
        pin_hash = hash_password(pin)
        for name, (role, bound) in STAFF_OF_A_MERCHANT.items():
            user = StaffUser(
                merchant_id=merchant.id,
                store_id=out["stores"][0] if bound else None,
                username=f"{tag}-{name}",
                display_name=f"{tag} {name}",
                role=role,
                active=True,
                password_hash=password_hash,
                approval_pin_hash=pin_hash if role in ("supervisor", "manager", "owner") else None,
            )
            uow.session.add(user)
            uow.session.flush()
            out["staff"][name] = {"username": user.username, "id": user.id}
        uow.commit()
    out["password"], out["pin"] = password, pin
    return out
