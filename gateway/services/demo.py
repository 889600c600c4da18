"""Demo data: one merchant, two stores, three tills, a cashier and a manager."""

from __future__ import annotations

import json
import os
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, StaffUser, Store, Till, utcnow
from gateway.adapters.passwords import hash_password
from gateway.adapters.promotion_models import CouponCode, PromotionRow
from gateway.services.staff import mfa
from gateway.services.staff.auth import issue_till_key

DEMO_MERCHANT = "Kassa Demo Markt"
DEMO_COUPON = "spring-coupon"  # the batch coupon whose codes the demo prints
# The demo manager's TOTP secret, known so the demo and the tests can sign in (printed by
# `kassa demo-data`; add it to an authenticator app). Never a real account's.
DEMO_TOTP_SECRET = "KASSADEMOMANAGERTOTPSECRET234567"  # noqa: S105 - the demo's, public


def seed_demo(
    uow: UnitOfWork, credentials_file: Path, *, promotions: bool = True, history: bool = False
) -> dict[str, Any]:
    """Create the demo merchant once (with its promotions unless told not to, and a month of
    past sales when asked: ``kassa run`` and ``kassa demo-data`` do); later calls return the
    same credentials.

    The credentials are kept in ``credentials_file`` (mode 0600) because only hashes are in the
    database; if that file is gone, passwords and keys are issued anew.
    """
    database = uow.session.get_bind().engine.url.render_as_string(hide_password=True)
    saved = _load(credentials_file)
    merchant = uow.session.scalar(select(Merchant).where(Merchant.name == DEMO_MERCHANT))
    if merchant is not None and saved and saved.get("database") == database:
        return saved
    if merchant is None:
        merchant = _create_structure(uow)
        if promotions:
            _seed_promotions(uow, merchant.id)
    fresh = not uow.session.scalar(
        select(Till.id).join(Store).where(Store.merchant_id == merchant.id)
    )
    credentials = {"database": database, **_issue_credentials(uow, merchant)}
    if history and fresh:
        from gateway.services.demo_history import seed_history

        uow.session.flush()
        seed_history(uow, merchant.id, utcnow())
    uow.commit()
    _save(credentials_file, credentials)
    return credentials


def _create_structure(uow: UnitOfWork) -> Merchant:
    merchant = Merchant(
        name=DEMO_MERCHANT,
        qr_name="Kassa Demo Markt",
        qr_city="Berlin",
        country="DE",
        mcc="5411",
        postal_code="10117",
        qr_accounts=[
            {"tag": "26", "gui": "IO.KASSA.SANDBOX", "fields": {"01": "KASSA-DEMO-0001"}},
            {"tag": "27", "gui": "EU.EPI.WALLET", "fields": {"01": "DE89370400440532013000"}},
        ],
        default_currency="EUR",
        locale="de_DE",
        settlement_accounts=["DE89370400440532013000", "KASSA-DEMO-0001"],
    )
    uow.session.add(merchant)
    mitte = Store(merchant=merchant, name="Berlin Mitte", city="Berlin", timezone="Europe/Berlin")
    kreuzberg = Store(
        merchant=merchant, name="Berlin Kreuzberg", city="Berlin", timezone="Europe/Berlin"
    )
    uow.session.add_all([mitte, kreuzberg])
    uow.session.flush()
    return merchant


# The demo's wallet promotions: what a bank's programme typically runs in a store.
DEMO_PROMOTIONS: list[dict[str, Any]] = [
    {"key": "wallet-2-off-20", "name": "Wallet QR: 2.00 off from 20.00", "kind": "threshold",
     "spec": {"tiers": [[2000, 200], [5000, 600]], "priority": 20,
              "targeting": {"payment_methods": ["qr"], "currency": "EUR"},
              "limits": {"budget_minor": 50_000, "per_customer_per_day": 1}}},
    {"key": "welcome-3", "name": "Welcome: 3.00 off your first purchase", "kind": "new_customer",
     "spec": {"amount_off_minor": 300, "priority": 30, "targeting": {"currency": "EUR"},
              "limits": {"budget_minor": 30_000}}},
    {"key": "coffee-3-for-2", "name": "Coffee: 3 for 2", "kind": "multi_buy",
     "spec": {"buy": 2, "get": 1, "priority": 10, "targeting": {"categories": ["coffee"]}}},
    {"key": "points", "name": "1 point per euro", "kind": "points",
     "spec": {"points": 1, "per_minor": 100, "expiry_days": 365}},
    {"key": "pay-with-points", "name": "Pay with points (1 point = 0.01)",
     "kind": "points_redeem", "spec": {"point_value_minor": 1, "min_points": 50}},
    {"key": "friends", "name": "Bring a friend: 5.00 off, 200 points", "kind": "referral",
     "spec": {"amount_off_minor": 500, "referrer_points": 200, "max_referrals": 10,
              "max_referrals_per_day": 3, "targeting": {"currency": "EUR"}}},
    {"key": "spring-coupon", "name": "Spring coupon: 10 % off (max 5.00)", "kind": "coupon",
     "spec": {"batch": True, "percent_bp": 1000, "cap_minor": 500}},
    {"key": "lucky-draw", "name": "Lucky draw from 10.00", "kind": "draw",
     "spec": {"min_spend_minor": 1000, "table": {"budget_minor": 20_000, "prizes": [
         {"id": "mug", "name": "Kassa mug", "probability_ppm": 50_000, "value_minor": 400,
          "daily_cap": 20},
         {"id": "voucher", "name": "10.00 voucher", "probability_ppm": 5_000,
          "value_minor": 1000, "daily_cap": 2}]}}},
]  # fmt: skip


def _seed_promotions(uow: UnitOfWork, merchant_id: int) -> None:
    """The demo's promotions, live at once, and an A/B test of a 10 % wallet offer."""
    from gateway.services.promotions import promotion_admin as admin

    actor = "demo"
    for item in DEMO_PROMOTIONS:
        admin.create_promotion(
            uow, merchant_id, key=item["key"], name=item["name"], kind=item["kind"],
            spec=item["spec"], starts_at=None, ends_at=None, actor=actor,
        )  # fmt: skip
        admin.activate(uow, merchant_id, item["key"], actor=actor)
    admin.create_experiment(
        uow, merchant_id, key="wallet-10", name="Does 10 % off bring wallet customers back?",
        variants=[("control", 1), ("ten-percent", 1)], holdout_bp=1000, control="control",
    )  # fmt: skip
    admin.create_promotion(
        uow, merchant_id, key="wallet-10-off", name="Wallet QR: 10 % off (test group)",
        kind="percent", spec={"percent_bp": 1000, "cap_minor": 1000, "priority": 15,
                              "targeting": {"payment_methods": ["qr"]}},
        starts_at=None, ends_at=None, actor=actor, experiment_key="wallet-10",
        variant="ten-percent",
    )  # fmt: skip
    admin.activate(uow, merchant_id, "wallet-10-off", actor=actor)
    coupon = admin.get_promotion(uow, merchant_id, DEMO_COUPON)
    admin.issue_coupons(uow, coupon, count=20, actor=actor)


def demo_coupon_codes(uow: UnitOfWork, limit: int = 3) -> list[str]:
    """A few of the demo's spring-coupon codes that can still be redeemed (none if the demo
    was seeded without promotions); what ``kassa demo-data`` and ``kassa run`` print."""
    query = (
        select(CouponCode.code)
        .join(PromotionRow, PromotionRow.id == CouponCode.promotion_id)
        .join(Merchant, Merchant.id == PromotionRow.merchant_id)
        .where(
            Merchant.name == DEMO_MERCHANT,
            PromotionRow.key == DEMO_COUPON,
            CouponCode.status == "available",
            CouponCode.customer_id.is_(None),
            CouponCode.expires_at.is_(None),
        )
        .order_by(CouponCode.id)
        .limit(limit)
    )
    return list(uow.session.scalars(query))


def _issue_credentials(uow: UnitOfWork, merchant: Merchant) -> dict[str, Any]:
    stores = list(uow.session.scalars(select(Store).where(Store.merchant_id == merchant.id)))
    tills_wanted = [
        (stores[0], "T01", "Till 1"),
        (stores[0], "T02", "Till 2"),
        (stores[1], "T01", "Till 1"),
    ]
    out: dict[str, Any] = {"merchant": merchant.name, "tills": [], "staff": []}
    for store, label, name in tills_wanted:
        till = uow.session.scalar(
            select(Till).where(Till.store_id == store.id, Till.label == label)
        )
        key = issue_till_key()
        if till is None:
            till = Till(
                store_id=store.id,
                label=label,
                name=name,
                active=True,
                api_key_id=key.key_id,
                api_key_hash=key.key_hash,
            )
            uow.session.add(till)
        else:
            till.api_key_id, till.api_key_hash = key.key_id, key.key_hash
        out["tills"].append({"store": store.name, "till": label, "api_key": key.key})
    staff: list[tuple[str, str, str, Store | None]] = [
        ("cashier", "cashier", "Clara Cashier", stores[0]),
        ("manager", "manager", "Max Manager", None),
    ]
    for username, role, display, home in staff:
        password = secrets.token_urlsafe(9)
        user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username))
        if user is None:
            user = StaffUser(
                merchant_id=merchant.id,
                username=username,
                role=role,
                display_name=display,
                store_id=home.id if home else None,
                active=True,
                password_hash="",
            )
            uow.session.add(user)
        user.password_hash = hash_password(password)
        entry = {"username": username, "password": password, "role": role}
        if mfa.needs_second_factor(role):
            uow.session.flush()
            mfa.enrol_with_secret(uow, user, DEMO_TOTP_SECRET)
            entry["totp_secret"] = DEMO_TOTP_SECRET
        out["staff"].append(entry)
    out["staff"].append(_supervisor(uow, merchant, stores[0]))
    for entry in out["staff"]:
        if entry["role"] == "manager":
            entry["pin"] = _give_pin(uow, entry["username"])
    return out


def _supervisor(uow: UnitOfWork, merchant: Merchant, home: Store) -> dict[str, Any]:
    """A supervisor at the first store, who approves refunds and cancels with a PIN."""
    username = "supervisor"
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username))
    if user is None:
        user = StaffUser(
            merchant_id=merchant.id,
            username=username,
            role="supervisor",
            display_name="Sam Supervisor",
            store_id=home.id,
            active=True,
            password_hash="",
        )
        uow.session.add(user)
    password = secrets.token_urlsafe(9)
    user.password_hash = hash_password(password)
    uow.session.flush()
    pin = _give_pin(uow, username)
    return {"username": username, "password": password, "role": "supervisor", "pin": pin}


def _give_pin(uow: UnitOfWork, username: str) -> str:
    pin = f"{secrets.randbelow(10**6):06d}"
    user = uow.session.scalars(select(StaffUser).where(StaffUser.username == username)).one()
    user.approval_pin_hash = hash_password(pin)
    return pin


def _load(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        return data
    except (FileNotFoundError, ValueError):
        return None


def _save(path: Path, credentials: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(credentials, f, indent=2)
    tmp.replace(path)
