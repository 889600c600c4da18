"""Issue 14's audit, for what came after it: the supervisor who approved is on the action's
row of the audit trail; changing the approval limits, adding a webhook endpoint (a new signing
secret) and exporting or forgetting a customer need a fresh second factor; the limits, a
dashboard CSV download and an event replay are audited; the dashboard's CSV is formula-safe.
On SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, Merchant, Payment, Refund, StaffUser, Store
from gateway.adapters.passwords import hash_password
from gateway.adapters.webhook_models import WebhookEndpoint
from gateway.services.staff import audit, mfa
from merchant_portal.dashboard import Panel, to_csv
from tests.factories import merchant_with_stores
from tests.integration.test_approvals import form_fields, paid, refund, sign_in, token


@pytest.fixture
def shop(db: Database) -> dict[str, Any]:
    return merchant_with_stores(db, "A")


def audit_rows(db: Database, action: str) -> list[AuditEntry]:
    with db.unit_of_work(readonly=True) as uow:
        found = list(
            uow.session.scalars(
                select(AuditEntry).where(AuditEntry.action == action).order_by(AuditEntry.id)
            )
        )
        uow.session.expunge_all()
        return found


def stale_second_factor(client: FlaskClient) -> None:
    """The code was typed long ago (beyond ``[security] step_up_seconds``)."""
    with client.session_transaction() as session:
        session["mfa_at"] -= 100_000


def csrf_of(client: FlaskClient, path: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', client.get(path).get_data(as_text=True))
    assert found
    return found.group(1)


def test_the_approver_is_on_the_refund_s_audit_row(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    """Through the API (a token) and at the cashier screen (a PIN); a small refund needs and
    names nobody; a refused approval leaves no row."""
    client = app.test_client()
    supervisor = shop["staff"]["supervisor"]["username"]
    large = paid(db, shop, "80.00")
    issued = token(client, shop, action="refund", payment_id=large, amount="80.00")
    assert issued.status_code == 201
    assert refund(client, shop, large, "80.00", **{"Approval-Token": "ap_wrong"}).status_code == 403
    assert audit_rows(db, "refund.requested") == []
    done = refund(client, shop, large, "80.00", **{"Approval-Token": issued.get_json()["token"]})
    assert done.status_code == 201
    small = paid(db, shop, "5.00")
    assert refund(client, shop, small, "5.00").status_code == 201

    cashier = sign_in(app, shop, "cashier")
    at_till = paid(db, shop, "90.00")
    url = f"/cashier/payments/{at_till}/refund"
    form = form_fields(cashier.get(url).get_data(as_text=True))
    dialog = cashier.post(url, data={**form, "amount": "90,00"})
    assert dialog.status_code == 403
    carried = form_fields(dialog.get_data(as_text=True))
    approved = cashier.post(
        url, data={**carried, "approver": supervisor, "approver_code": shop["pin"]}
    )
    assert approved.status_code == 303

    by_payment = {row.after["payment_id"]: row for row in audit_rows(db, "refund.requested")}
    assert by_payment[large].approved_by == f"staff:{supervisor}"
    assert by_payment[large].actor.startswith("till:") and by_payment[large].role == "till"
    assert by_payment[large].store_id == shop["stores"][0]
    assert by_payment[at_till].role == "cashier"
    assert by_payment[at_till].approved_by == f"staff:{supervisor}"
    assert by_payment[at_till].actor == f"staff:{shop['staff']['cashier']['username']}"
    assert by_payment[small].approved_by is None
    with db.unit_of_work(readonly=True) as uow:
        assert audit.verify(uow).intact  # the approver is inside the hashed row


def test_saving_the_approval_limits_needs_a_fresh_code_and_is_audited(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    owner = sign_in(app, shop, "owner")
    form = {"csrf_token": csrf_of(owner, "/portal/settings"), "refund_above": "5,00"}
    form["payment_above"] = "100"
    stale_second_factor(owner)
    asked = owner.post(
        "/portal/settings", data=form, headers={"Referer": "http://localhost/portal/settings"}
    )
    assert asked.status_code == 303
    assert asked.headers["Location"] == "/portal/mfa/step-up?next=/portal/settings"
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Merchant, shop["merchant_id"]).approval_limits is None
    assert audit_rows(db, "settings.approval_limits") == []

    with owner.session_transaction() as session:
        session["mfa_at"] += 100_000  # as if the code was typed at the prompt just now
    assert owner.post("/portal/settings", data=form).status_code == 303
    (row,) = audit_rows(db, "settings.approval_limits")
    assert row.before is None
    assert row.after == {"refund_above_minor": 500, "payment_above_minor": 10000, "currency": "EUR"}
    assert (row.actor, row.role) == (f"staff:{shop['staff']['owner']['username']}", "owner")
    assert row.merchant_id == shop["merchant_id"]


def test_adding_a_webhook_endpoint_needs_a_fresh_code(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    manager = sign_in(app, shop, "area-manager")
    form = {
        "csrf_token": csrf_of(manager, "/portal/webhooks"),
        "url": "https://erp.example/hooks",
        "event_types": ["payment.*"],
    }
    stale_second_factor(manager)
    asked = manager.post(
        "/portal/webhooks", data=form, headers={"Referer": "http://localhost/portal/webhooks"}
    )
    assert asked.status_code == 303
    assert asked.headers["Location"] == "/portal/mfa/step-up?next=/portal/webhooks"
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(WebhookEndpoint)) == 0
    assert manager.get("/portal/webhooks").status_code == 200  # reading needs no fresh code


@pytest.mark.parametrize("action", ["export", "forget"])
def test_exporting_or_forgetting_a_customer_needs_a_fresh_code(
    app: Flask, db: Database, shop: dict[str, Any], action: str
) -> None:
    manager = sign_in(app, shop, "area-manager")
    form = {"csrf_token": csrf_of(manager, "/portal/customers"), "kind": "member"}
    form.update(value="M-1", note="their request of today")
    stale_second_factor(manager)
    back = "/portal/customers?kind=member&value=M-1"
    asked = manager.post(
        f"/portal/customers/{action}", data=form, headers={"Referer": f"http://localhost{back}"}
    )
    assert asked.status_code == 303
    assert asked.headers["Location"].startswith("/portal/mfa/step-up?next=/portal/customers")
    assert audit_rows(db, f"customer.{action}") == []


def test_the_dashboard_csv_is_audited_and_formula_safe(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    manager = sign_in(app, shop, "area-manager")
    response = manager.get("/portal/dashboard/turnover-day.csv?period=week")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Cache-Control"] == "no-store"
    (row,) = audit_rows(db, "csv.downloaded")
    assert (row.target_type, row.target_id) == ("report", "dashboard")
    assert row.after is not None and row.after["chart"] == "turnover-day"
    assert row.actor == f"staff:{shop['staff']['area-manager']['username']}"

    panel = Panel("stores", "Stores", ["Store", "@Total"], [['=HYPERLINK("x")', -250]])
    assert to_csv(panel).splitlines() == ["Store,'@Total", '"\'=HYPERLINK(""x"")",-250']


def test_a_replayed_event_is_audited_from_the_cli_and_the_portal(
    app: Flask, db: Database, demo: Any
) -> None:
    """A replay can apply a bank callback to a payment: who replayed it, from where, and what
    became of the event are on the trail."""
    from tests.integration.test_inbound_events import _kassa, pending_payment, stored_callback
    from tests.integration.test_portal_pages import log_in, staff

    payment = pending_payment(db)
    early = stored_callback(db, "evt_early", "KLATEREFERENC")
    with db.unit_of_work() as uow:  # the payment the bank meant, known only now
        uow.session.get_one(Payment, payment.id).reference = "KLATEREFERENC"
        uow.commit()
    assert "unmatched -> processed" in _kassa(db, "events", "replay", str(early)).stdout
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    page = client.get(f"/portal/events/{early}").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    replayed = client.post(f"/portal/events/{early}/replay", data={"csrf_token": token.group(1)})
    assert replayed.status_code == 303
    by_cli, by_portal = audit_rows(db, "event.replayed")
    assert (by_cli.source, by_cli.target_id) == ("cli", str(early))
    assert by_cli.before == {"status": "unmatched"}
    assert by_cli.after is not None and by_cli.after["status"] == "processed"
    assert by_cli.merchant_id == payment.merchant_id
    assert (by_portal.actor, by_portal.source) == (
        f"staff:{staff(demo, 'manager')[0]}",
        "127.0.0.1",
    )
    assert by_portal.merchant_id == payment.merchant_id


def test_the_audit_page_follows_the_reader_s_scope(
    app: Flask, db: Database, shop: dict[str, Any]
) -> None:
    """A store manager reads their store's rows only; an auditor (on file with a store, as
    every role of the factory) reads every store's, as the matrix says."""
    with db.unit_of_work() as uow:
        for n, store in enumerate(shop["stores"]):
            audit.record(
                uow, "test.in_a_store", actor=f"staff:mark{n}",
                merchant_id=shop["merchant_id"], store_id=store,
            )  # fmt: skip
        uow.commit()
    seen = {}
    for who in ("manager", "auditor"):
        client = sign_in(app, shop, who)
        response = client.get("/portal/audit.csv?action=test.in_a_store")
        assert response.status_code == 200
        seen[who] = sorted(re.findall(r"staff:mark\d", response.get_data(as_text=True)))
    assert seen == {"manager": ["staff:mark0"], "auditor": ["staff:mark0", "staff:mark1"]}


KREUZBERG_TOTP_SECRET = "KREUZBERGMANAGERTOTPSECRET234567"


def test_the_bank_money_api_answers_404_for_another_store_or_merchant(
    app: Flask, db: Database, demo: Any
) -> None:
    """The one money route of the API that a person (not a till) calls: a Kreuzberg manager
    and another merchant's manager, each with the right password and code, neither refund nor
    accept a Berlin Mitte payment, and learn nothing of it (404, as for no payment at all)."""
    from tests.factories import second_merchant
    from tests.integration.test_bank_money import expired_then_paid_at_the_bank
    from tests.staff_helpers import OTHER_TOTP_SECRET, totp_code

    payment_id = expired_then_paid_at_the_bank(db)  # Berlin Mitte's till T01
    with db.unit_of_work() as uow:
        kreuzberg = uow.session.scalars(select(Store).where(Store.name == "Berlin Kreuzberg")).one()
        user = StaffUser(
            merchant_id=kreuzberg.merchant_id, store_id=kreuzberg.id, role="manager",
            username="kreuzberg-manager", display_name="Kai Kreuzberg", active=True,
            password_hash=hash_password("kreuzberg-pw-1"),
        )  # fmt: skip
        uow.session.add(user)
        uow.session.flush()
        mfa.enrol_with_secret(uow, user, KREUZBERG_TOTP_SECRET)
        uow.commit()
    other = second_merchant(db)
    client = app.test_client()
    callers = [
        ("kreuzberg-manager", "kreuzberg-pw-1", KREUZBERG_TOTP_SECRET),
        (other["manager"], other["password"], OTHER_TOTP_SECRET),
    ]
    for username, password, secret in callers:
        for action in ("refund", "accept"):
            response = client.post(
                f"/api/v1/payments/{payment_id}/bank-money/{action}",
                json={"note": "trying another store's payment"},
                auth=(username, password),
                headers={"Kassa-OTP": totp_code(secret)},
            )
            assert response.status_code == 404, (username, action, response.get_json())
            assert response.get_json()["type"].endswith("not-found")
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        assert (payment.status, bool(payment.attention)) == ("expired", True)
        refunds = uow.session.scalar(
            select(func.count()).select_from(Refund).where(Refund.payment_id == payment_id)
        )
        assert refunds == 0
