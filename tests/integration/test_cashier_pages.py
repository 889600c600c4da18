"""The cashier screen through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, StaffUser, Till
from gateway.adapters.passwords import hash_password
from tests.factories import paid_by_bank, second_merchant


def csrf(client: FlaskClient, path: str) -> str:
    page = client.get(path)
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.get_data(as_text=True))
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def log_in(client: FlaskClient, username: str, password: str) -> Any:
    token = csrf(client, "/cashier/login")
    return client.post(
        "/cashier/login",
        data={"username": username, "password": password, "csrf_token": token},
    )


def staff(demo: dict[str, Any], role: str) -> tuple[str, str]:
    user = next(s for s in demo["staff"] if s["role"] == role)
    return user["username"], user["password"]


def at_till(client: FlaskClient, demo: dict[str, Any], label: str = "T01") -> None:
    """Sign in as the demo cashier and choose a till of their store."""
    assert log_in(client, *staff(demo, "cashier")).status_code == 303
    page = client.get("/cashier/till").get_data(as_text=True)
    till_id = re.search(rf'value="(\d+)">\s*<span class="till-label">{label}<', page)
    assert till_id, page
    token = csrf(client, "/cashier/till")
    response = client.post("/cashier/till", data={"till_id": till_id.group(1), "csrf_token": token})
    assert response.status_code == 303


def sale_form(client: FlaskClient) -> dict[str, str]:
    page = client.get("/cashier/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert token and key, page
    return {"csrf_token": token.group(1), "idempotency_key": key.group(1)}


def count_payments(db: Database) -> int:
    with db.unit_of_work() as uow:
        return uow.session.scalar(select(func.count()).select_from(Payment)) or 0


def payment_id_of(response: Any) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    match = re.fullmatch(r"/cashier/payments/([0-9a-f-]{36})", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def test_signed_out_cashier_is_sent_to_sign_in(client: FlaskClient, demo: Any) -> None:
    response = client.get("/cashier/")
    assert response.status_code == 302 and response.headers["Location"] == "/cashier/login"
    status = client.get("/cashier/payments/nope/status")
    assert status.status_code == 401 and status.json == {
        "error": "signed_out",
        "login_url": "/cashier/login",
    }


def test_login_then_choose_till_then_sale_form(client: FlaskClient, demo: Any) -> None:
    response = log_in(client, *staff(demo, "cashier"))
    assert response.status_code == 303 and response.headers["Location"] == "/cashier/"
    assert client.get("/cashier/").headers["Location"] == "/cashier/till"  # two tills in store
    page = client.get("/cashier/till").get_data(as_text=True)
    assert "T01" in page and "T02" in page and "Berlin Mitte" in page
    assert "Kreuzberg" not in page  # another store's till
    at_till(client, demo, "T02")
    form = client.get("/cashier/")
    text = form.get_data(as_text=True)
    assert form.status_code == 200
    assert "Kassa Demo Markt" in text and "Till T02" in text and ">EUR<" in text
    assert "Content-Security-Policy" in form.headers
    assert "script-src 'self'" in form.headers["Content-Security-Policy"]


def test_wrong_password_is_refused_in_words(client: FlaskClient, demo: Any) -> None:
    username, _ = staff(demo, "cashier")
    response = log_in(client, username, "not-the-password")
    assert response.status_code == 401
    assert "wrong username or password" in response.get_data(as_text=True)
    assert client.get("/cashier/").status_code == 302  # still signed out


def test_login_starts_a_fresh_session(client: FlaskClient, demo: Any) -> None:
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    log_in(client, *staff(demo, "cashier"))
    with client.session_transaction() as session:
        assert "planted" not in session and isinstance(session["staff_id"], int)


def test_logout_needs_post_and_ends_the_session(client: FlaskClient, demo: Any) -> None:
    at_till(client, demo)
    assert client.get("/cashier/logout").status_code == 405
    token = csrf(client, "/cashier/")
    assert client.post("/cashier/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/cashier/").headers["Location"] == "/cashier/login"


def test_forms_without_csrf_token_are_rejected(client: FlaskClient, demo: Any, db: Any) -> None:
    username, password = staff(demo, "cashier")
    response = client.post("/cashier/login", data={"username": username, "password": password})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    at_till(client, demo)
    fields = sale_form(client)
    del fields["csrf_token"]
    response = client.post("/cashier/payments", data={**fields, "amount": "5.00"})
    assert response.status_code == 400
    assert count_payments(db) == 0


def test_double_submit_with_the_same_key_creates_one_payment(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo)
    fields = sale_form(client)
    first = client.post("/cashier/payments", data={**fields, "amount": "12,50"})
    second = client.post("/cashier/payments", data={**fields, "amount": "12,50"})
    assert payment_id_of(first) == payment_id_of(second)
    assert count_payments(db) == 1
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id_of(first))
        assert (payment.amount_minor, payment.currency, payment.status) == (1250, "EUR", "pending")
        assert payment.created_by == "staff:cashier"
    # The same form sent again with another amount is not a replay: nothing new is charged.
    changed = client.post("/cashier/payments", data={**fields, "amount": "99.00"})
    assert changed.status_code == 422
    assert "already used for another payment" in changed.get_data(as_text=True)
    assert count_payments(db) == 1
    fresh = sale_form(client)
    assert fresh["idempotency_key"] != fields["idempotency_key"]


def test_itemised_lines_add_up_exactly(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    data = {
        **sale_form(client),
        "amount": "",
        "line_description": ["Coffee", "Cake", ""],
        "line_amount": ["0.10", "0,20", ""],
        "reference": "R-77",
    }
    response = client.post("/cashier/payments", data=data)
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id_of(response))
        assert (payment.amount_minor, payment.bill_number) == (30, "R-77")  # never 0.30000000004


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"amount": ""}, "Enter the amount to charge."),
        ({"amount": "12.345"}, "“12.345” is not an amount in EUR: use digits with at most 2"),
        ({"amount": "1.234,50"}, "without thousands separators"),
        ({"amount": "abc"}, "“abc” is not an amount in EUR"),
        ({"amount": "0"}, "must be greater than zero"),
        ({"line_description": ["Tea"], "line_amount": [""]}, "Line 1 (Tea) has no amount."),
        (
            {"amount": "5.00", "line_description": ["A"], "line_amount": ["4.00"]},
            "The lines add up to 4.00 EUR but the amount says 5.00",
        ),
    ],
)
def test_bad_amounts_are_explained_inline(
    client: FlaskClient, demo: Any, db: Database, fields: dict[str, Any], message: str
) -> None:
    at_till(client, demo)
    form = sale_form(client)
    response = client.post("/cashier/payments", data={**form, **fields})
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert message in page and 'role="alert"' in page
    assert f'value="{form["idempotency_key"]}"' in page  # retry with the same key is safe
    assert count_payments(db) == 0


def test_payment_screen_qr_and_status(client: FlaskClient, demo: Any) -> None:
    at_till(client, demo)
    response = client.post("/cashier/payments", data={**sale_form(client), "amount": "1234.5"})
    payment_id = payment_id_of(response)
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert "€1,234.50" in page  # the page's language (English), not the merchant's locale
    assert "Kassa Demo Markt" in page and 'data-screen="open"' in page
    assert f"/cashier/payments/{payment_id}/qr.svg" in page
    svg = client.get(f"/cashier/payments/{payment_id}/qr.svg")
    assert svg.status_code == 200 and svg.mimetype == "image/svg+xml"
    assert client.get(f"/cashier/payments/{payment_id}/qr.png").mimetype == "image/png"
    assert client.get(f"/cashier/payments/{payment_id}/qr.gif").status_code == 404
    status = client.get(f"/cashier/payments/{payment_id}/status").json
    assert status["status"] == "pending" and status["screen"] == "open" and status["open"]
    assert 290 <= status["seconds_left"] <= 300
    assert status["amount"] == "1234.50"


def test_paid_payment_shows_paid(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    payment_id = payment_id_of(
        client.post("/cashier/payments", data={**sale_form(client), "amount": "3"})
    )
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    status = client.get(f"/cashier/payments/{payment_id}/status").json
    assert (status["status"], status["screen"], status["open"]) == ("paid", "paid", False)
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert 'data-screen="paid"' in page


def test_cancel_from_the_screen(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    payment_id = payment_id_of(
        client.post("/cashier/payments", data={**sale_form(client), "amount": "3"})
    )
    token = csrf(client, f"/cashier/payments/{payment_id}")
    response = client.post(f"/cashier/payments/{payment_id}/cancel", data={"csrf_token": token})
    assert response.headers["Location"] == f"/cashier/payments/{payment_id}"
    assert client.get(f"/cashier/payments/{payment_id}/status").json["screen"] == "cancelled"
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert payment.status == "cancelled"


def test_cancelling_a_paid_payment_is_refused_in_words(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo)
    payment_id = payment_id_of(
        client.post("/cashier/payments", data={**sale_form(client), "amount": "3"})
    )
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    token = csrf(client, f"/cashier/payments/{payment_id}")
    client.post(f"/cashier/payments/{payment_id}/cancel", data={"csrf_token": token})
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert "Could not cancel: payment is paid and cannot become cancelled." in page


def test_merchants_never_see_each_others_payments(app: Any, demo: Any, db: Database) -> None:
    other = second_merchant(db)
    with db.unit_of_work() as uow:
        uow.session.add(
            StaffUser(
                merchant_id=other["merchant_id"],
                username="other-cashier",
                display_name="Otto",
                role="cashier",
                active=True,
                password_hash=hash_password("other-cashier-pw"),
            )
        )
        uow.commit()
    demo_client, other_client = app.test_client(), app.test_client()
    at_till(demo_client, demo)
    demo_payment = payment_id_of(
        demo_client.post("/cashier/payments", data={**sale_form(demo_client), "amount": "7"})
    )
    # The other merchant's cashier has one till: it is chosen without asking.
    assert log_in(other_client, "other-cashier", "other-cashier-pw").status_code == 303
    assert other_client.get("/cashier/").headers["Location"] == "/cashier/till"
    assert other_client.get("/cashier/till").headers["Location"] == "/cashier/"
    other_payment = payment_id_of(
        other_client.post("/cashier/payments", data={**sale_form(other_client), "amount": "8"})
    )
    for client, foreign in ((other_client, demo_payment), (demo_client, other_payment)):
        for suffix in ("", "/status", "/qr.svg", "/qr.png"):
            response = client.get(f"/cashier/payments/{foreign}{suffix}")
            assert response.status_code == 404, suffix
        token = csrf(client, "/cashier/")
        response = client.post(f"/cashier/payments/{foreign}/cancel", data={"csrf_token": token})
        assert response.status_code == 404
    with db.unit_of_work() as uow:
        statuses = {p.id: p.status for p in uow.session.scalars(select(Payment))}
    assert statuses == {demo_payment: "pending", other_payment: "pending"}


def test_a_till_that_is_switched_off_must_be_chosen_again(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo, "T01")
    with db.unit_of_work() as uow:
        for till in uow.session.scalars(select(Till).where(Till.label == "T01")):
            till.active = False
        uow.commit()
    # Only T02 is left in the cashier's store: it is chosen automatically.
    assert client.get("/cashier/").headers["Location"] == "/cashier/till"
    assert client.get("/cashier/till").headers["Location"] == "/cashier/"
    assert "Till T02" in client.get("/cashier/").get_data(as_text=True)
