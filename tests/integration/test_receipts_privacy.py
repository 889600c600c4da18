"""E-receipts, consumption records and customers' privacy, on SQLite and PostgreSQL: the
receipt link a paid sale shows opens its receipt over HTTP without signing in; links that
ended or never were are 404; consent gates a points promotion; export says everything held
and no clear identity; forgetting keeps the money and loses the person; the CLI's exit codes;
the retention job; and the cashier's refund screens say what happened."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, Job, Payment, ReceiptLink, Refund, Store, utcnow
from gateway.adapters.promotion_models import Customer, CustomerIdentity, PointsLot, Sale
from gateway.domain.money import Money
from gateway.errors import Conflict, NotFound
from gateway.services import jobs, receipts
from gateway.services.payments import qr_payments
from gateway.services.promotions import privacy, sales
from gateway.services.promotions.customers import IdentityInput
from gateway.services.registry import job_handlers
from tests.conftest import app_config, stored_card_numbers
from tests.integration.test_cashier_pages import at_till
from tests.integration.test_refunds import paid_payment
from tests.integration.test_sales import (
    PAYMENTS,
    add_promotion,
    line,
    refund,
    till_of,
)

KEY = b"test-identity-key"
CONSENT = sales.PromotionSettings(identity_key=KEY, profiles_need_consent=True)
WALLET = IdentityInput(wallet_id="wallet-4711")
LINK = re.compile(r'data-receipt-url href="(http://localhost/r/([A-Za-z0-9_-]+))"')


def bought(
    db: Database, demo: dict[str, Any], who: IdentityInput, *lines: sales.LineInput
) -> Payment:
    """``who`` buys ``lines`` (priced with consent required), paid at the bank."""
    request = sales.SaleRequest(
        lines=lines or (line("tea", "20.00"),), currency="EUR", customer=who
    )
    with db.unit_of_work() as uow:
        sale = sales.price_sale(uow, till_of(db, demo), request, CONSENT)
        uow.commit()
        sale_id = sale.id
    with db.unit_of_work() as uow:
        _, payment = sales.pay_sale(
            uow,
            till_of(db, demo),
            sale_id,
            method="qr",
            settings=CONSENT,
            payment_settings=PAYMENTS,
        )
        uow.commit()
    assert payment is not None
    with db.unit_of_work() as uow:  # the bank says which wallet paid, as its callback does
        locked = uow.session.scalars(
            select(Payment).where(Payment.id == payment.id).with_for_update()
        ).one()
        qr_payments.record_bank_payment(
            uow,
            locked,
            money=Money(locked.amount_minor, locked.currency),
            bank_payment_id="B-" + locked.reference,
            paid_at=utcnow(),
            actor="test:bank",
            detail={"wallet": who.wallet_id or "wallet-0001"},
        )
        uow.commit()
    return payment


def customer_of(db: Database, payment_id: str) -> Customer | None:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        sale = uow.session.get_one(Sale, payment.sale_id)
        customer = uow.session.get(Customer, sale.customer_id) if sale.customer_id else None
        if customer is not None:
            uow.session.expunge(customer)
        return customer


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()


def test_a_paid_qr_sale_shows_a_receipt_link_that_opens_its_receipt(
    app: Any, client: FlaskClient, db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "ab", "percent", {"name": "10 % off (test group)", "percent_bp": 1000})
    with db.unit_of_work() as uow:
        store = uow.session.get_one(Store, till_of(db, demo).store_id)
        receipts.set_vat_rates(uow, store.id, {"default": 1900, "food": 700})
        uow.commit()
    payment = bought(
        db,
        demo,
        WALLET,
        line("cake", "10.00", category="food"),
        line("mug", "20.00", category="kitchen"),
    )
    at_till(client, demo)
    page = client.get(f"/cashier/payments/{payment.id}").get_data(as_text=True)
    found = LINK.search(page)
    assert found, page
    url, token = found.groups()
    assert 'src="data:image/svg+xml;base64,' in page  # its QR code, drawn in the page

    customer = app.test_client()  # the customer's phone: nobody signed in
    receipt = customer.get(url.removeprefix("http://localhost"))
    assert receipt.status_code == 200
    text = receipt.get_data(as_text=True)
    assert "Cake" in text and "Mug" in text
    assert "Discount" in text and "test group" not in text  # never the internal name
    assert "27.00" in text  # 30.00 less 10 %, in the page's language (English)
    # VAT out of what was paid at each rate: food 9.00 at 7 % (0.59), the rest 18.00 at 19 % (2.87)
    assert re.search(r"7 %</td><td[^>]*>€8.41</td><td[^>]*>€0.59", text), text
    assert re.search(r"19 %</td><td[^>]*>€15.13</td><td[^>]*>€2.87", text), text
    assert "Wallet QR" in text and "wallet-4711" not in text and "•••• 4711" in text
    assert receipt.headers["Cache-Control"] == "no-store"
    assert "noindex" in receipt.headers["X-Robots-Tag"]
    with db.unit_of_work(readonly=True) as uow:  # the database holds only the token's hash
        hashes = list(uow.session.scalars(select(ReceiptLink.token_hash)))
    assert receipts.token_hash(token) in hashes and token not in hashes


def test_receipt_links_that_ended_or_never_were_are_not_found(
    client: FlaskClient, db: Database, demo: Any
) -> None:
    payment_id = paid_payment(db, demo, "5.00")
    with db.unit_of_work() as uow:
        link = receipts.issue_link(uow, payment_id, till_of(db, demo).scope, days=1, actor="t")
        uow.commit()
    assert client.get(f"/r/{link.token}").status_code == 200
    assert client.get(f"/r/{link.token}x").status_code == 404
    assert client.get("/r/" + "A" * 32).status_code == 404
    with db.unit_of_work() as uow:
        row = uow.session.scalars(select(ReceiptLink)).one()
        row.expires_at = utcnow() - timedelta(seconds=1)
        uow.commit()
    ended = client.get(f"/r/{link.token}")
    assert ended.status_code == 404 and "expired" in ended.get_data(as_text=True)


def test_an_open_payment_has_no_receipt(db: Database, demo: Any) -> None:
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till_of(db, demo), money=Money.parse("3.00", "EUR"), settings=PAYMENTS
        )
        uow.session.flush()
        with pytest.raises(Conflict, match="only a paid one has a receipt"):
            receipts.issue_link(uow, payment.id, till_of(db, demo).scope, days=1, actor="t")


def test_consent_gates_a_points_promotion(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    first = bought(db, demo, WALLET)
    with db.unit_of_work(readonly=True) as uow:
        sale = uow.session.get_one(Sale, first.sale_id)
        assert sale.points_earned == 0
        assert any("agreed to marketing" in r["reason"] for r in sale.rejected)
    assert customer_of(db, first.id).marketing_consent is None  # type: ignore[union-attr]

    agreed = IdentityInput(wallet_id="wallet-4711", marketing_consent=True)
    second = bought(db, demo, agreed)
    customer = customer_of(db, second.id)
    assert customer is not None and customer.marketing_consent is True
    assert customer.consent_source == "till"
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Sale, second.sale_id).points_earned == 20
        lots = list(uow.session.scalars(select(PointsLot.points)))
        assert lots == [20]
        actions = list(uow.session.scalars(select(AuditEntry.action)))
    assert "customer.consent" in actions

    third = bought(db, demo, WALLET)  # asked once: the till need not ask again
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Sale, third.sale_id).points_earned == 20


def test_the_receipt_page_shows_the_purchases_and_takes_consent_back(
    app: Any, client: FlaskClient, db: Database, demo: Any
) -> None:
    agreed = IdentityInput(wallet_id="wallet-4711", marketing_consent=True)
    bought(db, demo, agreed, line("tea", "3.00"))
    last = bought(db, demo, WALLET, line("cake", "4.50"))
    with db.unit_of_work() as uow:
        link = receipts.issue_link(uow, last.id, till_of(db, demo).scope, days=1, actor="t")
        uow.commit()
    page = client.get(f"/r/{link.token}").get_data(as_text=True)
    assert page.count("data-history-row") == 2  # their consumption record here
    assert "You agreed to marketing" in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    answer = client.post(
        f"/r/{link.token}/consent", data={"csrf_token": token.group(1), "consent": "no"}
    )
    assert answer.status_code == 303
    customer = customer_of(db, last.id)
    assert customer is not None
    assert (customer.marketing_consent, customer.consent_source) == (False, "receipt")


def test_export_says_everything_held_and_no_clear_identity(db: Database, demo: Any) -> None:
    agreed = IdentityInput(wallet_id="wallet-4711", marketing_consent=True)
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    payment = bought(db, demo, agreed)
    with db.unit_of_work() as uow:
        customer = privacy.find(uow, KEY, till_of(db, demo).merchant_id, WALLET)
        data = privacy.export(uow, customer, actor="test")
        uow.commit()
    assert data["customer"]["marketing_consent"] is True
    assert data["customer"]["purchases"] == 1
    assert [i["kind"] for i in data["identities"]] == ["wallet"]
    assert [s["payment_id"] for s in data["sales"]] == [payment.id]
    assert data["sales"][0]["total_after_minor"] == 2000
    assert [p["points"] for p in data["points_lots"]] == [20]
    assert "wallet-4711" not in json.dumps(data)  # Kassa never had it in clear


def test_forget_anonymises_the_customer_and_keeps_the_money(db: Database, demo: Any) -> None:
    agreed = IdentityInput(wallet_id="wallet-4711", marketing_consent=True)
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    payment = bought(db, demo, agreed)
    refund(db, demo, payment.id, "5.00")
    with db.unit_of_work() as uow:
        customer = privacy.find(uow, KEY, till_of(db, demo).merchant_id, WALLET)
        counts = privacy.forget(uow, customer, actor="test", reason="asked on 2026-12-06")
        uow.commit()
    assert counts["identities"] == 1 and counts["sales"] == 1
    with db.unit_of_work(readonly=True) as uow:
        kept = uow.session.get_one(Payment, payment.id)
        assert (kept.amount_minor, kept.refunded_minor, kept.status) == (
            2000,
            500,
            "partially_refunded",
        )
        assert [r.amount_minor for r in uow.session.scalars(select(Refund))] == [500]
        sale = uow.session.get_one(Sale, payment.sale_id)
        assert sale.customer_id is None and sale.total_after_minor == 2000
        assert "digests" not in sale.request
        assert list(uow.session.scalars(select(CustomerIdentity))) == []
        assert list(uow.session.scalars(select(PointsLot))) == []
        tombstone = uow.session.scalars(select(Customer)).one()
        assert tombstone.forgotten_at is not None and tombstone.token.startswith("gone_")
        audit = uow.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "customer.forget")
        ).one()
        assert audit.after["reason"] == "asked on 2026-12-06"
    with db.unit_of_work() as uow, pytest.raises(NotFound, match="no customer"):
        privacy.find(uow, KEY, till_of(db, demo).merchant_id, WALLET)
    assert stored_card_numbers(db) == []
    again = bought(db, demo, WALLET)  # the same wallet again is a new customer
    assert customer_of(db, again.id).purchases == 1  # type: ignore[union-attr]


def test_the_retention_job_anonymises_customers_inactive_too_long(db: Database, demo: Any) -> None:
    old = bought(db, demo, IdentityInput(member_code="M-OLD"))
    recent = bought(db, demo, IdentityInput(member_code="M-NEW"))
    old_customer = customer_of(db, old.id)
    assert old_customer is not None
    with db.unit_of_work() as uow:
        stale = uow.session.get_one(Customer, old_customer.id)
        stale.last_purchase_at = utcnow() - timedelta(days=40)
        privacy.schedule_retention(uow, utcnow().date() - timedelta(days=2))
        uow.commit()
    config = app_config(db, privacy={"inactive_customer_days": 30})
    assert jobs.run_due_jobs(db, job_handlers(config)) >= 1
    with db.unit_of_work(readonly=True) as uow:
        forgotten = uow.session.get_one(Customer, old_customer.id)
        assert forgotten.forgotten_at is not None
        assert uow.session.get_one(Sale, old.sale_id).customer_id is None
        assert uow.session.get_one(Sale, recent.sale_id).customer_id is not None
        queued = list(uow.session.scalars(select(Job.dedupe_key)))
    assert any(k and k.startswith(privacy.RETENTION_JOB) for k in queued)  # the next day's


def _kassa(db: Database, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``kassa customers …`` as its own process, as an operator runs it."""
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": db.url,
        "KASSA_PROMOTIONS_IDENTITY_KEY": KEY.decode(),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "customers", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )


def _kassa_here(db: Database, *args: str) -> Any:
    """The same command in this process (click's runner): quick, for the many bad inputs."""
    from click.testing import CliRunner

    from gateway.entrypoints.cli import main

    env = {
        "KASSA_DATABASE_URL": db.url,
        "KASSA_PROMOTIONS_IDENTITY_KEY": KEY.decode(),
        "KASSA_PATHS_VAR_DIR": os.environ["KASSA_PATHS_VAR_DIR"],
    }
    return CliRunner().invoke(main, ["customers", *args], env=env)


def test_the_customers_command_line(db: Database, demo: Any, tmp_path: Path) -> None:
    bought(db, demo, IdentityInput(member_code="M-42", marketing_consent=True))
    neither = _kassa_here(db, "export")
    assert neither.exit_code == 2 and "exactly one of --wallet or --member" in neither.output
    assert _kassa_here(db, "export", "--wallet", "w", "--member", "m").exit_code == 2
    unknown = _kassa_here(db, "export", "--member", "M-NOBODY")
    assert unknown.exit_code == 2 and "no customer" in unknown.output
    bad_rate = _kassa_here(db, "vat-rates", "--store", "1", "food=seven")
    assert bad_rate.exit_code == 2 and "percentage" in bad_rate.output
    dry = _kassa_here(db, "forget", "--member", "M-42", "--reason", "asked")
    assert dry.exit_code == 0 and "would forget" in dry.output

    exported = _kassa(db, tmp_path, "export", "--member", "m-42")  # member codes: any case
    assert exported.returncode == 0, exported.stderr
    assert json.loads(exported.stdout)["customer"]["purchases"] == 1
    done = _kassa(db, tmp_path, "forget", "--member", "M-42", "--reason", "asked", "--yes")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["forgotten"] is True
    gone = _kassa(db, tmp_path, "forget", "--member", "M-42", "--reason", "asked", "--yes")
    assert gone.returncode == 2 and "no customer" in gone.stderr
    with db.unit_of_work(readonly=True) as uow:
        actions = list(uow.session.scalars(select(AuditEntry.action)))
    assert actions.count("customer.export") == 2 and actions.count("customer.forget") == 1


def test_a_partial_refund_says_so_on_the_cashier_screen(
    client: FlaskClient, db: Database, demo: Any
) -> None:
    at_till(client, demo)
    payment_id = paid_payment(db, demo, "12.34")
    refund(db, demo, payment_id, "2.00")
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert 'data-screen="partially_refunded"' in page
    assert "PARTIALLY REFUNDED" in page
    assert "€2.00 of €12.34 went back to the customer" in page
    status = client.get(f"/cashier/payments/{payment_id}/status").get_json()
    assert status["screen"] == "partially_refunded" and status["refunded_text"] == "€2.00"


def test_a_requested_refund_is_a_progress_notice_and_the_screen_keeps_following(
    client: FlaskClient, db: Database, demo: Any
) -> None:
    from tests.integration.test_cashier_refunds import refund_form

    at_till(client, demo)
    payment_id = paid_payment(db, demo, "12.34")
    _, form = refund_form(client, payment_id)
    client.post(f"/cashier/payments/{payment_id}/refund", data={**form, "amount": "2,00"})
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    notice = re.search(r'<p class="([^"]*)" role="(\w+)" data-progress>Refund requested', page)
    assert notice and notice.groups() == ("alert alert-info flash", "status"), page
    status = client.get(f"/cashier/payments/{payment_id}/status").get_json()
    assert status["following"] and status["refunds_open"] == 1
    assert [r["status"] for r in status["refunds"]] == ["requested"]
    screen = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert 'data-following="true"' in screen
    with db.unit_of_work(readonly=True) as uow:
        reference = uow.session.get_one(Payment, payment_id).reference
    # customers read a short reference, not 25 hex characters
    assert reference not in screen
    assert f"{reference[-8:-4].upper()}-{reference[-4:].upper()}" in screen


def test_the_portal_finds_a_customer_exports_and_forgets_them(db: Database, demo: Any) -> None:
    from gateway.entrypoints.app import create_app
    from tests.integration.test_portal_pages import log_in, staff

    app = create_app(app_config(db, promotions={"identity_key": KEY.decode()}), db=db)
    app.config["TESTING"] = True
    client = app.test_client()
    bought(db, demo, IdentityInput(member_code="M-7", marketing_consent=True), line("tea", "3.00"))
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    nobody = client.get("/portal/customers?kind=member&value=M-NOBODY")
    assert nobody.status_code == 404
    page = client.get("/portal/customers?kind=member&value=M-7").get_data(as_text=True)
    assert "data-customer-record" in page and page.count("data-history-row") == 1
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    form = {"csrf_token": token.group(1), "kind": "member", "value": "M-7"}
    exported = client.post("/portal/customers/export", data=form)
    assert exported.status_code == 200 and exported.mimetype == "application/json"
    assert exported.get_json()["customer"]["purchases"] == 1
    refused = client.post("/portal/customers/forget", data=form)  # no reason given
    assert refused.status_code == 303
    assert client.get("/portal/customers?kind=member&value=M-7").status_code == 200
    forgotten = client.post("/portal/customers/forget", data={**form, "note": "asked today"})
    assert forgotten.status_code == 303
    assert client.get("/portal/customers?kind=member&value=M-7").status_code == 404


def test_the_live_stream_follows_a_refund_after_the_payment_is_paid(
    db: Database, demo: Any
) -> None:
    """The paid screen's stream stays open while a refund is on its way and says when the
    bank confirmed it (the screen then shows "partially refunded" without a reload)."""
    from gateway.entrypoints.cashier.live import stream
    from gateway.services.payments import refunds

    payment_id = paid_payment(db, demo, "12.34")
    with db.unit_of_work() as uow:
        made = refunds.request_refund(
            uow,
            payment_id,
            till_of(db, demo).merchant_id,
            amount=Money.parse("2.00", "EUR"),
            reason=None,
            actor="test",
        )
        uow.commit()
    said = stream(db, payment_id, till_of(db, demo).scope, 600, "de_DE")
    assert next(said).startswith("retry:")
    first = json.loads(next(said).split("data: ", 1)[1])
    assert (first["screen"], first["following"], first["refunds_open"]) == ("paid", True, 1)
    with db.unit_of_work() as uow:
        refunds.record_bank_result(
            uow,
            refund_id=made.id,
            succeeded=True,
            bank_refund_id="R-1",
            amount_minor=200,
            currency="EUR",
            reason=None,
        )
        uow.commit()
    changes = [json.loads(e.split("data: ", 1)[1]) for e in said if e.startswith("event:")]
    assert [(c["screen"], c["following"]) for c in changes] == [("partially_refunded", False)]
    assert changes[0]["refunded_text"] == "2,00\xa0€"  # the stream was asked for de_DE


def test_the_lucky_draw_result_reaches_the_screen_and_the_receipt(
    client: FlaskClient, db: Database, demo: Any
) -> None:
    prize = {"id": "mug", "name": "Kassa mug", "probability_ppm": 1_000_000, "value_minor": 400}
    add_promotion(db, demo, "draw", "draw", {"table": {"prizes": [prize]}})
    payment = bought(db, demo, IdentityInput())  # a draw needs no profile, so no consent
    at_till(client, demo)
    status = client.get(f"/cashier/payments/{payment.id}/status").get_json()
    assert status["draws"] == [{"outcome": "won", "prize": "Kassa mug"}]  # what the page shows
    page = client.get(f"/cashier/payments/{payment.id}").get_data(as_text=True)
    url = LINK.search(page)
    assert url
    receipt = client.get(url.group(1).removeprefix("http://localhost")).get_data(as_text=True)
    assert "Lucky draw: won Kassa mug" in receipt
