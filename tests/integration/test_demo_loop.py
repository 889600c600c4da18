"""The README's demo loop tells the truth: its basket meets the promotions it names, the coupon
codes `make run` prints exist, and the banner gives every till's key and the one-sign-in rule.

The basket is read from README.md itself, so the prices cannot drift from what is tested.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from gateway.adapters.db import Database
from gateway.domain.money import Money
from gateway.entrypoints.cli import _banner
from gateway.services.demo import demo_coupon_codes, seed_demo
from gateway.services.promotions import sales
from gateway.services.promotions.customers import IdentityInput
from gateway.services.staff.auth import authenticate_till

README = Path(__file__).resolve().parents[2] / "README.md"
SETTINGS = sales.PromotionSettings(identity_key=b"test-identity-key")
STEP_6 = re.compile(
    r"three coffees at (?P<coffee>\d+\.\d\d) \(category\s+`coffee`\) and a cake at "
    r"(?P<cake>\d+\.\d\d), type a wallet id such as `(?P<wallet>[^`]+)`"
)


@pytest.fixture
def demo_with_promotions(db: Database, tmp_path: Path) -> dict[str, Any]:
    with db.unit_of_work() as uow:
        creds = seed_demo(uow, tmp_path / "demo-credentials.json")
        return {**creds, "coupon_codes": demo_coupon_codes(uow)}


def readme_basket() -> dict[str, str]:
    text = " ".join(README.read_text(encoding="utf-8").split())  # one line, single spaces
    found = STEP_6.search(text)
    assert found is not None, "README step 6 no longer names the basket this test prices"
    return found.groupdict()


def price(db: Database, demo: dict[str, Any], coupon_codes: tuple[str, ...] = ()) -> Any:
    basket = readme_basket()
    request = sales.SaleRequest(
        lines=(
            sales.LineInput("coffee", "Coffee", "coffee", 3, Money.parse(basket["coffee"], "EUR")),
            sales.LineInput("cake", "Cake", "cake", 1, Money.parse(basket["cake"], "EUR")),
        ),
        currency="EUR",
        customer=IdentityInput(wallet_id=basket["wallet"]),
        coupon_codes=coupon_codes,
        payment_method="qr",  # as the cashier's basket page quotes it
    )
    with db.unit_of_work() as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
        sale = sales.price_sale(uow, till, request, SETTINGS)
        applied = {a["promotion_id"]: a for a in sale.applied}
        uow.rollback()  # a quote only; nothing kept
    return applied


def test_the_readme_basket_gets_the_promotions_step_6_names(
    db: Database, demo_with_promotions: dict[str, Any]
) -> None:
    applied = price(db, demo_with_promotions)
    assert {"coffee-3-for-2", "wallet-2-off-20", "welcome-3", "lucky-draw"} <= set(applied)
    coffee = readme_basket()["coffee"]
    assert applied["coffee-3-for-2"]["discount_minor"] == int(coffee.replace(".", ""))
    assert applied["wallet-2-off-20"]["discount_minor"] == 200
    assert applied["welcome-3"]["discount_minor"] == 300


def test_the_printed_coupon_codes_exist_and_apply(
    db: Database, demo_with_promotions: dict[str, Any]
) -> None:
    codes = demo_with_promotions["coupon_codes"]
    assert len(codes) == 3 and len(set(codes)) == 3
    applied = price(db, demo_with_promotions, coupon_codes=(codes[0],))
    assert "spring-coupon" in applied and "wallet-2-off-20" in applied


def test_the_banner_gives_every_till_key_the_coupons_and_the_sign_in_rule() -> None:
    creds = {
        "staff": [
            {"username": "cashier", "password": "c-pass", "role": "cashier"},
            {"username": "manager", "password": "m-pass", "role": "manager", "pin": "4711"},
            {"username": "supervisor", "password": "s-pass", "role": "supervisor", "pin": "0815"},
        ],
        "tills": [
            {"store": "Berlin Mitte", "till": "T01", "api_key": "kt_one"},
            {"store": "Berlin Mitte", "till": "T02", "api_key": "kt_two"},
            {"store": "Berlin Kreuzberg", "till": "T01", "api_key": "kt_three"},
        ],
        "coupon_codes": ["AAAA1111", "BBBB2222"],
    }
    text = _banner("http://k", "http://b", creds, devices=True)
    for key in ("kt_one", "kt_two", "kt_three"):
        assert key in text
    assert "Berlin Kreuzberg T01 key: kt_three" in text
    assert "AAAA1111, BBBB2222" in text
    assert "login cashier / c-pass" in text and "login manager / m-pass" in text
    assert "second browser profile" in text
    assert "supervisor PIN 0815" in text and "manager PIN 4711" in text  # approvals at the till
