"""Approvals at the till: the API's single-use tokens, the cashier screen's PIN dialog, the
owner's limits, and scope: nothing happens without the approval it needs, and a refused or
expired one leaves the payment as it was."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import Approval, Payment, PaymentEvent, Refund, utcnow
from gateway.config import load_config
from gateway.domain.money import Money
from gateway.services.payments import qr_payments
from gateway.services.staff.auth import TillContext
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until
from tests.conftest import isolated_env
from tests.factories import merchant_with_stores, paid_by_bank
from tests.integration.test_cashier_pages import csrf, log_in, payment_id_of, sale_form
from tests.staff_helpers import second_factor_passed


@pytest.fixture
def shop(db: Database) -> dict[str, Any]:
    return merchant_with_stores(db, "A")


def paid(db: Database, shop: dict[str, Any], amount: str, store: int = 0) -> str:
    settings = load_config(env=isolated_env(), overrides={"database": {"url": db.url}})
    till = TillContext(shop["tills"][store], shop["stores"][store], shop["merchant_id"], "T")
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse(amount, "EUR"), settings=settings.payments
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        uow.commit()
        return payment.id


def api(client: FlaskClient, shop: dict[str, Any], path: str, store: int = 0, **kw: Any) -> Any:
    headers = {"Authorization": f"Bearer {shop['keys'][store]}", **kw.pop("headers", {})}
    return client.post(f"/api/v1{path}", headers=headers, **kw)


def refund(
    client: FlaskClient, shop: dict[str, Any], payment_id: str, amount: str, **headers: str
) -> Any:
    return api(
        client, shop, f"/payments/{payment_id}/refunds", json={"amount": amount},
        headers={"Idempotency-Key": f"refund-{amount}-{len(headers)}", **headers},
    )  # fmt: skip


def token(
    client: FlaskClient, shop: dict[str, Any], who: str = "supervisor", store: int = 0, **body: Any
) -> Any:
    credentials = {"approver": shop["staff"][who]["username"], "code": shop["pin"]}
    return api(client, shop, "/approvals", store, json={**credentials, **body})


def refunds_of(db: Database, payment_id: str) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return (
            uow.session.scalar(
                select(func.count()).select_from(Refund).where(Refund.payment_id == payment_id)
            )
            or 0
        )


def test_a_large_refund_through_the_api_needs_a_token_spent_once(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    client = app.test_client()
    payment_id = paid(db, shop, "80.00")
    asked = refund(client, shop, payment_id, "80.00")
    assert asked.status_code == 403
    problem = asked.get_json()
    assert problem["type"] == "/problems/approval-required"
    assert (problem["action"], problem["amount"], problem["payment_id"]) == (
        "refund", "80.00", payment_id
    )  # fmt: skip
    assert problem["detail"] == "a refund above 50.00 EUR needs a supervisor's approval"
    assert refunds_of(db, payment_id) == 0

    wrong = api(
        client, shop, "/approvals",
        json={"approver": shop["staff"]["supervisor"]["username"], "code": "0000",
              "action": "refund", "payment_id": payment_id, "amount": "80.00"},
    )  # fmt: skip
    assert wrong.status_code == 403
    assert wrong.get_json()["type"] == "/problems/approval-refused"

    issued = token(client, shop, action="refund", payment_id=payment_id, amount="80.00")
    assert issued.status_code == 201, issued.get_data(as_text=True)
    approval = issued.get_json()["token"]
    other_amount = refund(client, shop, payment_id, "70.00", **{"Approval-Token": approval})
    assert other_amount.status_code == 403
    assert "not this request" in other_amount.get_json()["detail"]
    done = refund(client, shop, payment_id, "80.00", **{"Approval-Token": approval})
    assert done.status_code == 201, done.get_data(as_text=True)
    assert refunds_of(db, payment_id) == 1
    again = api(
        client, shop, f"/payments/{payment_id}/refunds", json={"amount": "80.00"},
        headers={"Idempotency-Key": "another", "Approval-Token": approval},
    )  # fmt: skip
    assert again.status_code == 403 and "already used" in again.get_json()["detail"]

    history = client.get(
        f"/api/v1/payments/{payment_id}", headers={"Authorization": f"Bearer {shop['keys'][0]}"}
    ).get_json()["events"]
    approved = [e for e in history if e["kind"] == "approved"]
    assert len(approved) == 1
    assert approved[0]["detail"]["approver"] == shop["staff"]["supervisor"]["username"]
    assert approved[0]["detail"]["action"] == "refund"
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(Approval)).one()
        assert (row.payment_id, row.amount_minor, row.method) == (payment_id, 8000, "token")
        assert row.till_id == shop["tills"][0] and row.used_at is not None


def test_a_small_refund_needs_no_approval(app: Flask, db: Database, shop: dict[str, Any]) -> None:
    payment_id = paid(db, shop, "80.00")
    assert refund(app.test_client(), shop, payment_id, "50.00").status_code == 201


def test_an_expired_token_changes_nothing(app: Flask, db: Database, shop: dict[str, Any]) -> None:
    client = app.test_client()
    payment_id = paid(db, shop, "80.00")
    issued = token(client, shop, action="refund", payment_id=payment_id, amount="80.00")
    with db.unit_of_work() as uow:  # as if its two minutes had passed
        row = uow.session.scalars(select(Approval)).one()
        row.expires_at = utcnow()
        uow.commit()
    late = refund(client, shop, payment_id, "80.00", **{"Approval-Token": issued.json["token"]})
    assert late.status_code == 403 and "expired" in late.get_json()["detail"]
    assert refunds_of(db, payment_id) == 0


@pytest.mark.parametrize(
    ("who", "store", "status"),
    [
        ("cashier", 0, 403),  # a cashier does not approve
        ("auditor", 0, 403),
        ("supervisor", 1, 403),  # the supervisor of store 1 does not approve at store 2
        ("area-manager", 1, 201),
        ("owner", 1, 201),
    ],
)
def test_who_may_approve_where(
    app: Flask, db: Database, shop: dict[str, Any], who: str, store: int, status: int
) -> None:
    payment_id = paid(db, shop, "80.00", store)
    issued = token(
        app.test_client(), shop, who, store, action="refund", payment_id=payment_id, amount="80.00"
    )
    assert issued.status_code == status, issued.get_data(as_text=True)


def test_a_token_for_another_store_s_payment_confirms_nothing(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    other = paid(db, shop, "80.00", store=1)
    asked = token(app.test_client(), shop, action="refund", payment_id=other, amount="80.00")
    assert asked.status_code == 404


def test_a_large_payment_needs_approval(app: Flask, db: Database, shop: dict[str, Any]) -> None:
    client = app.test_client()
    body = {"amount": "3000.00", "currency": "EUR", "method": "qr"}
    refused = api(client, shop, "/payments", json=body)
    assert refused.status_code == 403
    assert refused.get_json()["action"] == "payment"
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Payment)) == 0
    issued = token(client, shop, action="payment", amount="3000.00", currency="EUR")
    created = api(
        client, shop, "/payments", json=body, headers={"Approval-Token": issued.json["token"]}
    )
    assert created.status_code == 201, created.get_data(as_text=True)
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(Approval)).one()
        assert row.payment_id == created.get_json()["id"]
        kinds = uow.session.scalars(
            select(PaymentEvent.kind).where(PaymentEvent.payment_id == row.payment_id)
        ).all()
        assert "approved" in kinds


def test_a_large_payment_retried_with_its_used_token_replays(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    """A QR payment's key is not looked up before the payment is made (one round trip less):
    its retry finds the approval token used, and still gets the first answer back."""
    client = app.test_client()
    body = {"amount": "3000.00", "currency": "EUR", "method": "qr"}
    issued = token(client, shop, action="payment", amount="3000.00", currency="EUR")
    headers = {"Approval-Token": issued.json["token"], "Idempotency-Key": "large-1"}
    first = api(client, shop, "/payments", json=body, headers=headers)
    again = api(client, shop, "/payments", json=body, headers=headers)
    assert first.status_code == again.status_code == 201, again.get_data(as_text=True)
    assert again.get_json() == first.get_json()
    assert again.headers["Idempotent-Replayed"] == "true"
    other = api(client, shop, "/payments", json=body, headers={**headers, "Idempotency-Key": "x"})
    assert other.status_code == 403  # a new key: the used token approves nothing
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_the_kreuzberg_till_cannot_refund_a_mitte_payment(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    mitte = paid(db, shop, "50.00", store=0)
    response = api(
        app.test_client(), shop, f"/payments/{mitte}/refunds", store=1,
        json={"amount": "50.00"}, headers={"Idempotency-Key": "cross-store"},
    )  # fmt: skip
    assert response.status_code == 404
    assert refunds_of(db, mitte) == 0


# ---- the cashier screen -------------------------------------------------------------------------


def sign_in(app: Flask, shop: dict[str, Any], who: str) -> FlaskClient:
    client = app.test_client()
    response = log_in(client, shop["staff"][who]["username"], shop["password"])
    assert response.status_code == 303
    second_factor_passed(client)
    return client


def form_fields(page: str) -> dict[str, str]:
    return dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', page))


def test_the_cashier_screen_asks_for_the_supervisor_s_pin(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    cashier = sign_in(app, shop, "cashier")
    payment_id = paid(db, shop, "80.00")
    form = form_fields(cashier.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True))
    url = f"/cashier/payments/{payment_id}/refund"
    dialog = cashier.post(url, data={**form, "amount": "80,00", "reason": "broken"})
    page = dialog.get_data(as_text=True)
    assert dialog.status_code == 403
    assert "Supervisor approval needed" in page and 'data-approval="refund"' in page
    assert "80,00" in page
    assert refunds_of(db, payment_id) == 0
    carried = form_fields(page)
    assert (carried["amount"], carried["reason"]) == ("80,00", "broken")

    supervisor = shop["staff"]["supervisor"]["username"]
    wrong = cashier.post(url, data={**carried, "approver": supervisor, "approver_code": "9999"})
    assert wrong.status_code == 403
    assert "name or PIN is wrong" in wrong.get_data(as_text=True)
    assert refunds_of(db, payment_id) == 0

    carried = form_fields(wrong.get_data(as_text=True))
    done = cashier.post(url, data={**carried, "approver": supervisor, "approver_code": shop["pin"]})
    assert done.status_code == 303
    assert refunds_of(db, payment_id) == 1
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(Approval)).one()
        assert (row.approver, row.method, row.action) == (supervisor, "pin", "refund")
        assert row.requested_by == f"staff:{shop['staff']['cashier']['username']}"


def test_a_cashier_of_mitte_cannot_open_or_refund_a_kreuzberg_payment(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    cashier = sign_in(app, shop, "cashier")
    kreuzberg = paid(db, shop, "5.00", store=1)
    assert cashier.get(f"/cashier/payments/{kreuzberg}").status_code == 404
    assert cashier.get(f"/cashier/payments/{kreuzberg}/refund").status_code == 404
    response = cashier.post(
        f"/cashier/payments/{kreuzberg}/refund",
        data={
            "amount": "5,00",
            "idempotency_key": "a" * 32,
            "csrf_token": csrf(cashier, "/cashier/login"),
        },
    )
    assert response.status_code == 404
    assert refunds_of(db, kreuzberg) == 0


# ---- the owner's limits -----------------------------------------------------------------------


def test_the_owner_sets_the_limits_in_the_portal(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    owner = sign_in(app, shop, "owner")
    page = owner.get("/portal/settings").get_data(as_text=True)
    assert 'value="50.00"' in page and 'value="2500.00"' in page
    token_field = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token_field
    form = {"csrf_token": token_field.group(1), "refund_above": "5,00", "payment_above": "100"}
    assert owner.post("/portal/settings", data=form).status_code == 303
    assert 'value="5.00"' in owner.get("/portal/settings").get_data(as_text=True)
    bad = owner.post("/portal/settings", data={**form, "refund_above": "lots"})
    assert bad.status_code == 422 and "not an amount" in bad.get_data(as_text=True)

    payment_id = paid(db, shop, "10.00")
    assert refund(app.test_client(), shop, payment_id, "6.00").status_code == 403
    manager = sign_in(app, shop, "area-manager")
    assert manager.get("/portal/settings").status_code == 403


# ---- cancelling a card payment the terminal approved ---------------------------------------------


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        yield simulator  # type: ignore[misc]


def test_cancelling_an_approved_card_payment_needs_a_supervisor(
    app: Flask, db: Database, demo: Any, terminal: ZvtSimulator
) -> None:
    till = first_till(db, demo)
    host = host_for(db, till, terminal.port)
    try:
        payment_id = card_payment(db, till, "18.00")
        until(lambda: read_payment(db, payment_id).status == "authorised", host)
        client = app.test_client()
        auth = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
        cancel = f"/api/v1/payments/{payment_id}/cancel"
        refused = client.post(cancel, headers=auth)
        assert refused.status_code == 403
        assert (refused.json["type"], refused.json["action"]) == (
            "/problems/approval-required", "cancel"
        )  # fmt: skip
        assert read_payment(db, payment_id).status == "authorised"
        supervisor = next(s for s in demo["staff"] if s["role"] == "supervisor")
        issued = client.post(
            "/api/v1/approvals",
            headers=auth,
            json={"approver": supervisor["username"], "code": supervisor["pin"],
                  "action": "cancel", "payment_id": payment_id},
        )  # fmt: skip
        assert issued.status_code == 201, issued.get_data(as_text=True)
        assert issued.json["amount"] == "18.00"
        done = client.post(cancel, headers={**auth, "Approval-Token": issued.json["token"]})
        assert done.status_code == 200, done.get_data(as_text=True)
        until(lambda: read_payment(db, payment_id).status == "cancelled", host)
        assert [b.kind for b in terminal.journal] == ["authorisation", "reversal"]
    finally:
        close(host)


def test_a_large_payment_at_the_cashier_screen_waits_for_the_supervisor(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    cashier = sign_in(app, shop, "cashier")
    assert cashier.get("/cashier/till").status_code == 303  # their store's one till is chosen
    dialog = cashier.post("/cashier/payments", data={**sale_form(cashier), "amount": "3000"})
    page = dialog.get_data(as_text=True)
    assert dialog.status_code == 403 and 'data-approval="payment"' in page
    assert "A payment above 2500.00 EUR needs a supervisor&#39;s approval." in page
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(Payment)) == 0
    owner = shop["staff"]["owner"]["username"]  # an owner may approve at any store
    done = cashier.post(
        "/cashier/payments",
        data={**form_fields(page), "approver": owner, "approver_code": shop["pin"]},
    )
    payment_id = payment_id_of(done)
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert (payment.amount_minor, payment.status) == (300000, "pending")
        assert uow.session.scalars(select(Approval.approver)).all() == [owner]
