"""The merchant portal through Flask's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, Till
from gateway.domain.money import Money
from gateway.services.payments import cancellation, qr_payments
from gateway.services.staff.auth import TillContext
from tests.factories import paid_by_bank, second_merchant
from tests.staff_helpers import KNOWN_TOTP, complete_second_factor


def log_in(client: FlaskClient, username: str, password: str) -> Any:
    page = client.get("/portal/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    response = client.post(
        "/portal/login",
        data={"username": username, "password": password, "csrf_token": token.group(1)},
    )
    if response.status_code == 303 and username in KNOWN_TOTP:
        complete_second_factor(client, username)
    return response


def staff(demo: dict[str, Any], role: str) -> tuple[str, str]:
    user = next(s for s in demo["staff"] if s["role"] == role)
    return user["username"], user["password"]


def till_of(db: Database, label: str = "T01") -> TillContext:
    """The first till with this label: the demo's T01 is in Berlin Mitte."""
    with db.unit_of_work() as uow:
        till = uow.session.scalars(
            select(Till).where(Till.label == label).order_by(Till.id)
        ).first()
        assert till is not None
        return TillContext(till.id, till.store_id, till.store.merchant_id, till.label)


def create(db: Database, till: TillContext, amount: str = "10.00", **fields: Any) -> str:
    settings = qr_payments.PaymentSettings()
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse(amount, "EUR"), settings=settings, **fields
        )
        uow.commit()
        return payment.id


def shown_ids(page: str) -> list[str]:
    return re.findall(r'data-payment-id="([^"]+)"', page)


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def manager(client: FlaskClient, demo: Any) -> FlaskClient:
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    return client


def test_signed_out_visitor_is_sent_to_sign_in(client: FlaskClient, demo: Any) -> None:
    response = client.get("/portal/")
    assert response.status_code == 302 and response.headers["Location"] == "/portal/login"


def test_manager_signs_in_and_sees_payments(client: FlaskClient, demo: Any, db: Any) -> None:
    payment_id = create(db, till_of(db), "1234.56", bill_number="INV-9")
    response = log_in(client, *staff(demo, "manager"))
    assert response.status_code == 303 and response.headers["Location"] == "/portal/"
    page = client.get("/portal/payments").get_data(as_text=True)
    assert shown_ids(page) == [payment_id]
    assert "€1,234.56" in page and "badge-open" in page and "Pending" in page
    assert "Berlin Mitte" in page and "T01" in page and "INV-9" in page


def test_wrong_password_is_refused(client: FlaskClient, demo: Any) -> None:
    username, _ = staff(demo, "manager")
    response = log_in(client, username, "wrong")
    assert response.status_code == 401
    assert "wrong username or password" in response.get_data(as_text=True)


def test_login_without_csrf_token_is_rejected(client: FlaskClient, demo: Any) -> None:
    response = client.post(
        "/portal/login",
        data=dict(zip(("username", "password"), staff(demo, "manager"), strict=True)),
    )
    assert response.status_code == 400
    assert client.get("/portal/").status_code == 302


def test_cashiers_get_a_friendly_403(client: FlaskClient, demo: Any) -> None:
    assert log_in(client, *staff(demo, "cashier")).status_code == 303
    for path in ("/portal/", "/portal/payments/anything"):
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 403
        assert "This area is for managers" in page and "/cashier/" in page


def test_detail_shows_fields_and_event_history(
    manager: FlaskClient, demo: Any, db: Database
) -> None:
    payment_id = create(db, till_of(db), "3.50", bill_number="B-1")
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id)
        uow.commit()
    response = manager.get(f"/portal/payments/{payment_id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "€3.50" in page and "B-1" in page and payment_id in page and "badge-paid" in page
    history = page[page.index('id="history"') :]
    rows = re.findall(r"<tr>\s*<td[^>]*>.*?</tr>", history, re.S)
    assert len(rows) == 3
    assert "created" in rows[0] and "staff:" not in rows[0] and "till:T01" in rows[0]
    assert "qr issued" in rows[1] and "created" in rows[1] and "pending" in rows[1]
    assert "paid" in rows[2] and "test:bank" in rows[2]


def test_unknown_payment_is_a_friendly_404(manager: FlaskClient) -> None:
    response = manager.get("/portal/payments/does-not-exist")
    assert response.status_code == 404 and "Not found" in response.get_data(as_text=True)


def test_managers_see_only_their_own_merchant(app: Any, demo: Any, db: Database) -> None:
    other = second_merchant(db)
    demo_payment = create(db, till_of(db), "1.00")
    other_payment = create(db, till_of(db, "H01"), "2.00")
    demo_manager, other_manager = app.test_client(), app.test_client()
    log_in(demo_manager, *staff(demo, "manager"))
    log_in(other_manager, other["manager"], other["password"])
    assert shown_ids(demo_manager.get("/portal/payments").get_data(as_text=True)) == [demo_payment]
    assert shown_ids(other_manager.get("/portal/payments").get_data(as_text=True)) == [
        other_payment
    ]
    assert demo_manager.get(f"/portal/payments/{other_payment}").status_code == 404
    assert other_manager.get(f"/portal/payments/{demo_payment}").status_code == 404
    assert other_manager.get(f"/portal/payments/{other_payment}").status_code == 200


def test_filter_by_status(manager: FlaskClient, demo: Any, db: Database) -> None:
    till = till_of(db)
    open_id, cancelled_id = create(db, till), create(db, till)
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, cancelled_id, till.merchant_id, "test")
        uow.commit()
    assert shown_ids(manager.get("/portal/payments?status=cancelled").get_data(as_text=True)) == [
        cancelled_id
    ]
    assert shown_ids(manager.get("/portal/payments?status=pending").get_data(as_text=True)) == [
        open_id
    ]
    assert set(shown_ids(manager.get("/portal/payments").get_data(as_text=True))) == {
        open_id,
        cancelled_id,
    }
    bad = manager.get("/portal/payments?status=stolen").get_data(as_text=True)
    assert "“stolen” is not a payment status." in bad and shown_ids(bad) == []


def test_filter_by_date_range(manager: FlaskClient, demo: Any, db: Database) -> None:
    till = till_of(db)
    days = {
        create(db, till): datetime(2024, 3, 1, 10, tzinfo=UTC),
        create(db, till): datetime(2024, 3, 2, 23, 59, tzinfo=UTC),
        create(db, till): datetime(2024, 3, 3, 0, 0, tzinfo=UTC),
    }
    with db.unit_of_work() as uow:
        for payment_id, moment in days.items():
            uow.session.get_one(Payment, payment_id).created_at = moment
        uow.commit()
    first, second, third = days
    page = manager.get("/portal/payments?from=2024-03-02&to=2024-03-02").get_data(as_text=True)
    assert shown_ids(page) == [second]
    page = manager.get("/portal/payments?from=2024-03-02").get_data(as_text=True)
    assert shown_ids(page) == [third, second]  # newest first
    page = manager.get("/portal/payments?to=2024-03-01").get_data(as_text=True)
    assert shown_ids(page) == [first]
    bad = manager.get("/portal/payments?from=2024-03-05&to=2024-03-01").get_data(as_text=True)
    assert "The From date is after the To date." in bad
    bad = manager.get("/portal/payments?from=yesterday").get_data(as_text=True)
    assert "From date “yesterday” is not a date like 2024-05-31." in bad


def test_pages_of_fifty_newest_first(manager: FlaskClient, demo: Any, db: Database) -> None:
    till = till_of(db)
    ids = [create(db, till, f"{n}.00") for n in range(1, 53)]
    with db.unit_of_work() as uow:
        for n, payment_id in enumerate(ids):
            uow.session.get_one(Payment, payment_id).created_at = datetime(
                2024, 1, 1, 0, n, tzinfo=UTC
            )
        uow.commit()
    first = manager.get("/portal/payments").get_data(as_text=True)
    assert shown_ids(first) == ids[::-1][:50]
    assert "1–50 of 52" in first and 'href="/portal/payments?page=2"' in first
    second = manager.get("/portal/payments?page=2").get_data(as_text=True)
    assert shown_ids(second) == [ids[1], ids[0]] and "51–52 of 52" in second
