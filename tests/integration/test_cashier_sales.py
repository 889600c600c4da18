"""The basket with promotions on the cashier screen, through Flask's test client, on SQLite
and PostgreSQL: price a basket, read why each promotion did or did not apply, pay by QR."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, Payment, StaffUser
from gateway.adapters.passwords import hash_password
from gateway.adapters.promotion_models import PromotionRow, Sale
from gateway.entrypoints.cashier.sales import sku_of
from tests.factories import paid_by_bank, second_merchant
from tests.integration.test_cashier_pages import at_till, log_in, payment_id_of

SALE_URL = re.compile(r"/cashier/sales/([0-9a-f-]{36})")


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def add_promotion(db: Database, key: str, kind: str, spec: dict[str, Any]) -> None:
    """A live promotion of the demo merchant, written straight into the table."""
    with db.unit_of_work() as uow:
        merchant_id = uow.session.scalars(select(Merchant.id).order_by(Merchant.id)).first()
        uow.session.add(
            PromotionRow(
                merchant_id=merchant_id, key=key, name=spec.get("name", key), kind=kind,
                spec=spec, state="active", created_by="test",
            )
        )  # fmt: skip
        uow.commit()


def threshold_promotions(db: Database) -> None:
    add_promotion(db, "two-off", "threshold", {"name": "2 off 20", "tiers": [[2000, 200]]})
    add_promotion(db, "five-off", "threshold", {"name": "5 off 50", "tiers": [[5000, 500]]})


def basket_form(client: FlaskClient, path: str = "/cashier/basket") -> tuple[str, dict[str, str]]:
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert token and key, page
    return page, {"csrf_token": token.group(1), "idempotency_key": key.group(1)}


def basket(**customer: str) -> dict[str, Any]:
    """Tea 3 × 4,50 and a cake at 12.50: 26.00 in all."""
    return {
        "line_name": ["Tea", "Cake", ""],
        "line_category": ["drinks", "", ""],
        "line_quantity": ["3", "1", "1"],
        "line_price": ["4,50", "12.50", ""],
        "line_sku": ["", "", ""],
        **customer,
    }


def sale_id_of(response: Any) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    match = SALE_URL.fullmatch(response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


def csrf_of(client: FlaskClient, path: str) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert match
    return match.group(1)


def count_sales(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(Sale)) or 0)


def test_cashier_prices_a_basket_sees_why_and_pays_by_qr(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    threshold_promotions(db)
    at_till(client, demo)
    assert 'href="/cashier/basket">Basket with promotions<' in client.get("/cashier/").text
    page, fields = basket_form(client)
    assert page.count('name="line_name"') == 5 and "Check promotions" in page

    first = client.post("/cashier/basket", data={**fields, **basket(member_code="M-0042")})
    again = client.post("/cashier/basket", data={**fields, **basket(member_code="M-0042")})
    sale_id = sale_id_of(first)
    assert sale_id_of(again) == sale_id and count_sales(db) == 1  # a double click: one sale
    with db.unit_of_work(readonly=True) as uow:
        sale = uow.session.get_one(Sale, sale_id)
        assert [(ln["sku"], ln["quantity"]) for ln in sale.lines] == [("tea", 3), ("cake", 1)]
        assert (sale.status, sale.total_before_minor, sale.total_after_minor) == (
            "priced",
            2600,
            2400,
        )
        assert sale.request["digests"] and "M-0042" not in str(sale.request)

    text = client.get(f"/cashier/sales/{sale_id}").text
    assert "Promotions applied" in text and "2 off 20" in text and "saves €2.00" in text
    assert "Customer saves €2.00" in text and "€24.00" in text
    rejected = text[text.index("Not applied") :]
    assert "5 off 50" in rejected and "spend 24.00 EUR more to save 5.00 EUR" in rejected
    assert "Pay by wallet QR" in text and "Pay by card" in text
    assert f'href="/cashier/basket?sale={sale_id}"' in text

    token = csrf_of(client, f"/cashier/sales/{sale_id}")
    pay = {"csrf_token": token, "method": "qr"}
    payment_id = payment_id_of(client.post(f"/cashier/sales/{sale_id}/pay", data=pay))
    assert payment_id_of(client.post(f"/cashier/sales/{sale_id}/pay", data=pay)) == payment_id
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert (payment.amount_minor, payment.sale_id, payment.method) == (2400, sale_id, "qr")
    screen = client.get(f"/cashier/payments/{payment_id}").text
    assert "Customer saves €2.00" in screen and "2 off 20" in screen
    assert 'src="/cashier/payments/' in screen  # the QR code

    card = client.post(f"/cashier/sales/{sale_id}/pay", data={**pay, "method": "card"})
    assert card.status_code == 409 and "price the basket again" in card.text


def test_the_cashier_sees_what_a_card_would_cost_when_an_offer_is_for_wallet_qr(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    add_promotion(
        db,
        "qr3",
        "threshold",
        {
            "name": "Wallet 3 off 10",
            "tiers": [[1000, 300]],
            "targeting": {"payment_methods": ["qr"]},
        },
    )
    at_till(client, demo)
    _, fields = basket_form(client)
    sale_id = sale_id_of(client.post("/cashier/basket", data={**fields, **basket()}))
    text = client.get(f"/cashier/sales/{sale_id}").text
    assert "Customer saves €3.00" in text and "€23.00" in text
    assert re.search(r"By card: <span class=\"num\">€26.00</span>", text)


def test_change_basket_starts_from_the_earlier_lines(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo)
    _, fields = basket_form(client)
    data = {**basket(coupon_codes="SPRING, k7qx"), "line_sku": ["tea-1", "", ""]}
    sale_id = sale_id_of(client.post("/cashier/basket", data={**fields, **data}))
    page = client.get(f"/cashier/basket?sale={sale_id}").text
    for value in ("Tea", "drinks", "3", "4.50", "tea-1", "Cake", "12.50", "cake", "SPRING, k7qx"):
        assert f'value="{value}"' in page, value
    assert page.count('name="line_name"') == 5


def test_a_bad_price_keeps_what_was_typed(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    _, fields = basket_form(client)
    typed = basket(member_code="M-7", redeem_points="15", use_last_tap="1")
    typed["line_price"] = ["4,5,0", "12.50", ""]
    response = client.post("/cashier/basket", data={**fields, **typed})
    text = response.text
    assert response.status_code == 422 and count_sales(db) == 0
    assert "The unit price of line 1 (tea) “4,5,0” is not an amount" in text
    for value in ("Tea", "4,5,0", "12.50", "M-7", "15", fields["idempotency_key"]):
        assert f'value="{value}"' in text, value
    assert re.search(r'name="use_last_tap" value="1"\s+checked', text)

    for wrong, message in (
        ({"line_quantity": ["0", "1", "1"]}, "quantity of line 1 (tea) “0” is not a whole number"),
        ({"line_name": ["", "Cake", ""]}, "Line 1 has no item name"),
        ({"line_price": ["4.50", "", ""]}, "Line 2 (Cake) has no unit price"),
        ({"redeem_points": "lots"}, "Points to redeem “lots” is not a whole number"),
        ({"line_name": [""] * 3, "line_category": [""] * 3, "line_price": [""] * 3}, "is empty"),
        ({"use_last_tap": "1"}, "no card or phone was tapped on this till"),
    ):
        response = client.post("/cashier/basket", data={**fields, **basket(), **wrong})
        assert response.status_code == 422 and message in response.text, message
    assert count_sales(db) == 0
    sale_id_of(client.post("/cashier/basket", data={**fields, **basket()}))  # the same form


def test_promotions_that_pay_for_everything_need_no_payment(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    add_promotion(db, "free", "percent", {"name": "Opening day", "percent_bp": 10_000})
    at_till(client, demo)
    _, fields = basket_form(client)
    sale_id = sale_id_of(client.post("/cashier/basket", data={**fields, **basket()}))
    token = csrf_of(client, f"/cashier/sales/{sale_id}")
    paid = client.post(f"/cashier/sales/{sale_id}/pay", data={"csrf_token": token, "method": "qr"})
    assert paid.status_code == 303 and paid.headers["Location"] == f"/cashier/sales/{sale_id}"
    text = client.get(paid.headers["Location"]).text
    assert "Paid by promotions" in text and "Pay by wallet QR" not in text
    assert "Customer saves €26.00" in text
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Sale, sale_id).status == "paid"
        assert uow.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_the_paid_screen_tells_the_lucky_draw(client: FlaskClient, demo: Any, db: Database) -> None:
    mug = {"id": "mug", "name": "Kassa mug", "probability_ppm": 1_000_000, "value_minor": 400}
    table = {"prizes": [mug], "budget_minor": 10_000}
    add_promotion(db, "draw", "draw", {"name": "Spring draw", "table": table})
    at_till(client, demo)
    _, fields = basket_form(client)
    sale_id = sale_id_of(client.post("/cashier/basket", data={**fields, **basket()}))
    assert "Spring draw" in client.get(f"/cashier/sales/{sale_id}").text
    token = csrf_of(client, f"/cashier/sales/{sale_id}")
    pay = {"csrf_token": token, "method": "qr"}
    payment_id = payment_id_of(client.post(f"/cashier/sales/{sale_id}/pay", data=pay))
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        paid_by_bank(uow, payment.id, bank_payment_id="B-1")
        uow.commit()
    screen = client.get(f"/cashier/payments/{payment_id}").text
    paid = screen[screen.index('class="state state-paid') :]
    assert "Lucky draw: won Kassa mug" in paid[: paid.index("</section>")]


def test_another_merchants_sale_is_not_found(app: Any, demo: Any, db: Database) -> None:
    other = second_merchant(db)
    with db.unit_of_work() as uow:
        uow.session.add(
            StaffUser(
                merchant_id=other["merchant_id"], username="other-cashier", display_name="Otto",
                role="cashier", active=True, password_hash=hash_password("other-cashier-pw"),
            )
        )  # fmt: skip
        uow.commit()
    demo_client, other_client = app.test_client(), app.test_client()
    at_till(demo_client, demo)
    _, fields = basket_form(demo_client)
    sale_id = sale_id_of(demo_client.post("/cashier/basket", data={**fields, **basket()}))
    assert log_in(other_client, "other-cashier", "other-cashier-pw").status_code == 303
    assert other_client.get("/cashier/till").headers["Location"] == "/cashier/"  # its one till
    token = csrf_of(other_client, "/cashier/basket")
    assert other_client.get(f"/cashier/sales/{sale_id}").status_code == 404
    assert other_client.get(f"/cashier/basket?sale={sale_id}").status_code == 404
    paying = other_client.post(
        f"/cashier/sales/{sale_id}/pay", data={"csrf_token": token, "method": "qr"}
    )
    assert paying.status_code == 404 and "Tea" not in paying.text


def test_skus_are_slugs_of_the_names() -> None:
    assert sku_of("Flat white (large)", 1) == "flat-white-large"
    assert sku_of("Crème brûlée", 2) == "creme-brulee"
    assert sku_of("茶", 3) == "item-3"


def test_a_returning_customer_is_shown_their_referral_code(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    from gateway.adapters.promotion_models import Customer

    at_till(client, demo)
    _, fields = basket_form(client)
    first = sale_id_of(client.post("/cashier/basket", data={**fields, **basket(member_code="M-7")}))
    assert "data-referral-code" not in client.get(f"/cashier/sales/{first}").text  # new customer
    token = csrf_of(client, f"/cashier/sales/{first}")
    payment_id = payment_id_of(
        client.post(f"/cashier/sales/{first}/pay", data={"csrf_token": token, "method": "qr"})
    )
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        paid_by_bank(uow, payment.id, bank_payment_id="B-7")
        uow.commit()
    _, fields = basket_form(client)
    again = sale_id_of(client.post("/cashier/basket", data={**fields, **basket(member_code="M-7")}))
    with db.unit_of_work(readonly=True) as uow:
        code = uow.session.scalars(select(Customer.referral_code)).one()
    assert re.search(
        rf"data-referral-code[^>]*>{code}<", client.get(f"/cashier/sales/{again}").text
    )


def test_a_service_fee_is_waived_on_a_new_customers_first_order(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    add_promotion(db, "no-fee", "fee_waiver", {"name": "No fee on your first order"})
    at_till(client, demo)
    _, fields = basket_form(client)
    first = client.post("/cashier/basket", data={**fields, **basket(member_code="M-9", fee="1,50")})
    text = client.get(f"/cashier/sales/{sale_id_of(first)}").text
    assert "Service fee" in text and "Customer saves €1.50" in text
    assert 'To pay <span class="num">€26.00</span>' in text
    _, fields = basket_form(client)
    anonymous = client.post("/cashier/basket", data={**fields, **basket(fee="1,50")})
    text = client.get(f"/cashier/sales/{sale_id_of(anonymous)}").text
    assert 'To pay <span class="num">€27.50</span>' in text
    assert "needs an identified customer" in text
    _, fields = basket_form(client)
    bad = client.post("/cashier/basket", data={**fields, **basket(fee="1,5,0")})
    assert bad.status_code == 422 and "The service fee" in bad.text
