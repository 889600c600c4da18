"""Refunds and recent payments on the cashier screen, through Flask's test client."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Refund
from gateway.domain.money import Money
from tests.integration.test_cashier_pages import at_till, payment_id_of, sale_form
from tests.integration.test_refunds import paid_payment


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def refund_form(client: FlaskClient, payment_id: str) -> tuple[str, dict[str, str]]:
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    key = re.search(r'name="idempotency_key" value="([^"]+)"', page)
    assert token and key, page
    return page, {"csrf_token": token.group(1), "idempotency_key": key.group(1)}


def refunds_of(db: Database, payment_id: str) -> list[tuple[int, str]]:
    with db.unit_of_work() as uow:
        rows = uow.session.scalars(select(Refund).where(Refund.payment_id == payment_id))
        return [(r.amount_minor, r.status) for r in rows]


def test_cashier_refunds_part_of_a_paid_payment_once(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo)
    payment_id = paid_payment(db, demo, "12.34")
    page, form = refund_form(client, payment_id)
    assert 'value="12.34"' in page  # all that is refundable, as the page's language writes it
    data = {**form, "amount": "2,34", "reason": "damaged"}
    first = client.post(f"/cashier/payments/{payment_id}/refund", data=data)
    again = client.post(f"/cashier/payments/{payment_id}/refund", data=data)  # double tap
    assert first.status_code == again.status_code == 303
    assert refunds_of(db, payment_id) == [(234, "requested")]
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    assert "Refund requested" in page and 'data-refund-status="requested"' in page


def test_cashier_cannot_refund_more_than_is_left(
    client: FlaskClient, demo: Any, db: Database
) -> None:
    at_till(client, demo)
    payment_id = paid_payment(db, demo, "5.00")
    _, form = refund_form(client, payment_id)
    response = client.post(
        f"/cashier/payments/{payment_id}/refund", data={**form, "amount": "5.01"}
    )
    assert response.status_code == 422
    assert "more than the 5.00 EUR still refundable" in response.get_data(as_text=True)
    assert refunds_of(db, payment_id) == []


def test_an_open_payment_offers_no_refund(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    payment_id = payment_id_of(
        client.post("/cashier/payments", data={**sale_form(client), "amount": "3.00"})
    )
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    assert "Only a paid payment can be refunded; this one is Pending" in page
    assert 'name="amount"' not in page


def test_recent_payments_list_the_tills_sales(client: FlaskClient, demo: Any, db: Database) -> None:
    at_till(client, demo)
    payment_id = paid_payment(db, demo, "7.50")
    page = client.get("/cashier/recent").get_data(as_text=True)
    assert f"/cashier/payments/{payment_id}/refund" in page
    assert "7.50" in page  # an English page (no Accept-Language)


def test_portal_detail_shows_refunds_and_attention(app: Any, demo: Any, db: Database) -> None:
    from gateway.adapters.models import Payment
    from gateway.services.payments import refunds
    from tests.integration.test_portal_pages import log_in as portal_log_in
    from tests.integration.test_portal_pages import staff as portal_staff

    payment_id = paid_payment(db, demo, "9.00")
    with db.unit_of_work() as uow:
        refunds.request_refund(
            uow,
            payment_id,
            uow.session.get_one(Payment, payment_id).merchant_id,
            amount=Money.parse("4.00", "EUR"),
            reason="wrong size",
            actor="staff:manager",
        )
        uow.session.get_one(Payment, payment_id).attention = "the bank reported 8.00 EUR"
        uow.commit()
    manager = app.test_client()
    portal_log_in(manager, *portal_staff(demo, "manager"))
    page = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert "Needs attention:</strong> the bank reported 8.00 EUR" in page
    assert 'id="refunds"' in page and "wrong size" in page and "4.00" in page
