"""A manager answers a payment's question about money the bank took: accept it as paid, or
refund it through the bank; from the API (HTTP Basic, manager only) and the portal's payment
page (CSRF). Each case of the issue: paid after expiry, another amount, a second payment."""

from __future__ import annotations

import re
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask.testing import FlaskClient
from sqlalchemy import select, update

from gateway.adapters.db import Database
from gateway.adapters.models import (
    BankSettlement,
    Job,
    Payment,
    PaymentEvent,
    ReconResult,
    Refund,
    utcnow,
)
from gateway.domain.money import Money
from gateway.services import jobs
from gateway.services.demo import DEMO_TOTP_SECRET
from gateway.services.payments import qr_payments, refunds
from gateway.services.registry import job_handlers
from sandbox_bank import state
from tests.bank_loop import bank_loop
from tests.factories import paid_by_bank
from tests.integration.test_portal_pages import log_in, staff, till_of
from tests.staff_helpers import totp_code


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()  # type: ignore[no-any-return]


def _pending(db: Database, amount: str = "12.34") -> str:
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow,
            till_of(db),
            money=Money.parse(amount, "EUR"),
            settings=qr_payments.PaymentSettings(),
        )
        uow.commit()
        return payment.id


def expired_then_paid_at_the_bank(db: Database) -> str:
    payment_id = _pending(db)
    with db.unit_of_work() as uow:
        uow.session.execute(
            update(Payment).where(Payment.id == payment_id).values(expires_at=utcnow())
        )
        qr_payments.expire_payment(uow, {"payment_id": payment_id})
        paid_by_bank(uow, payment_id, bank_payment_id="bp_late")
        uow.commit()
    return payment_id


def _payment(db: Database, payment_id: str) -> Payment:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        uow.session.expunge(payment)
        return payment


def _entries(db: Database, payment_id: str, kind: str) -> list[PaymentEvent]:
    with db.unit_of_work(readonly=True) as uow:
        rows = list(
            uow.session.scalars(
                select(PaymentEvent).where(
                    PaymentEvent.payment_id == payment_id, PaymentEvent.kind == kind
                )
            )
        )
        uow.session.expunge_all()
        return rows


def _as(demo: dict[str, Any], role: str = "manager") -> tuple[str, str]:
    return staff(demo, role)


def _post(client: FlaskClient, demo: Any, payment_id: str, action: str, **kw: Any) -> Any:
    return client.post(
        f"/api/v1/payments/{payment_id}/bank-money/{action}",
        headers={"Kassa-OTP": kw.pop("otp", totp_code(DEMO_TOTP_SECRET))},
        json={"note": "customer showed the wallet receipt"},
        auth=kw.pop("auth", _as(demo)),
        **kw,
    )


def test_paid_after_expiry_is_accepted_by_a_manager_once(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = expired_then_paid_at_the_bank(db)
    assert _payment(db, payment_id).attention
    first = _post(client, demo, payment_id, "accept")
    assert first.status_code == 200, first.json
    assert (first.json["action"], first.json["already"]) == ("accepted", False)
    assert first.json["payment"]["status"] == "paid"
    payment = _payment(db, payment_id)
    assert (payment.status, payment.attention, payment.bank_payment_id) == ("paid", None, "bp_late")
    [entry] = _entries(db, payment_id, "bank_payment_accepted")
    manager = _as(demo)[0]
    assert (entry.from_status, entry.to_status, entry.actor) == (
        "expired",
        "paid",
        f"staff:{manager}",
    )
    assert entry.detail["note"] == "customer showed the wallet receipt"
    assert entry.detail["bank_payment_id"] == "bp_late"

    again = _post(client, demo, payment_id, "accept")  # a double click
    assert (again.status_code, again.json["already"]) == (200, True)
    assert len(_entries(db, payment_id, "bank_payment_accepted")) == 1
    other = _post(client, demo, payment_id, "refund")
    assert other.status_code == 409 and "ordinary way" in other.json["detail"]


def test_refund_of_money_taken_after_expiry_goes_to_the_bank_once(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = expired_then_paid_at_the_bank(db)
    first = _post(client, demo, payment_id, "refund")
    assert first.status_code == 200, first.json
    assert first.json["refund"]["amount"] == "12.34"
    assert first.json["refund"]["status"] == "requested"
    again = _post(client, demo, payment_id, "refund")
    assert (again.status_code, again.json["already"]) == (200, True)
    with db.unit_of_work(readonly=True) as uow:
        [refund] = uow.session.scalars(select(Refund)).all()
        assert refund.payment_id == payment_id and "bp_late" in (refund.reason or "")
        [job] = uow.session.scalars(select(Job).where(Job.kind == refunds.SUBMIT_JOB)).all()
        assert job.payload["payment_reference"] == _payment(db, payment_id).reference
    # accepted as paid first, so that the refund's result makes it refunded
    assert _payment(db, payment_id).status == "paid"
    assert len(_entries(db, payment_id, "bank_payment_refunded")) == 1


def test_another_amount_accepted_becomes_the_payment_amount(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = _pending(db, "12.34")
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id, money=Money.parse("12.30", "EUR"), bank_payment_id="bp_x")
        uow.commit()
    assert _payment(db, payment_id).status == "pending"
    answer = _post(client, demo, payment_id, "accept")
    assert answer.status_code == 200, answer.json
    payment = _payment(db, payment_id)
    assert (payment.status, payment.amount_minor, payment.attention) == ("paid", 1230, None)
    [entry] = _entries(db, payment_id, "bank_payment_accepted")
    assert (entry.from_status, entry.detail["asked"], entry.detail["amount"]) == (
        "pending",
        "12.34",
        "12.30",
    )


def test_a_second_payment_for_one_qr_is_refunded_and_the_first_kept(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = _pending(db, "5.00")
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment_id, bank_payment_id="bp_first")
        paid_by_bank(uow, payment_id, bank_payment_id="bp_second")
        uow.commit()
    assert "second payment" in (_payment(db, payment_id).attention or "")
    answer = _post(client, demo, payment_id, "refund")
    assert answer.status_code == 200, answer.json
    assert answer.json["refund"]["amount"] == "5.00"
    payment = _payment(db, payment_id)
    assert (payment.status, payment.amount_minor, payment.bank_payment_id) == (
        "paid",
        1000,
        "bp_first",
    )
    with db.unit_of_work(readonly=True) as uow:
        assert refunds.refundable_minor(uow, payment) == 500  # the first payment stays


def test_only_a_manager_with_a_note_answers_and_only_an_open_question(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = expired_then_paid_at_the_bank(db)
    assert _post(client, demo, payment_id, "accept", auth=_as(demo, "cashier")).status_code == 403
    assert _post(client, demo, payment_id, "accept", auth=("nobody", "x")).status_code == 401
    # a manager's password alone never moves money: the authenticator's code must come too
    assert _post(client, demo, payment_id, "accept", otp="").status_code == 401
    wrong = str((int(totp_code(DEMO_TOTP_SECRET)) + 1) % 1_000_000).zfill(6)
    assert _post(client, demo, payment_id, "accept", otp=wrong).status_code == 401
    till_key = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
    by_till = client.post(
        f"/api/v1/payments/{payment_id}/bank-money/accept",
        json={"note": "x"},
        headers=till_key,
    )
    assert by_till.status_code == 401
    blank = client.post(
        f"/api/v1/payments/{payment_id}/bank-money/accept",
        json={"note": "  "},
        auth=_as(demo),
        headers={"Kassa-OTP": totp_code(DEMO_TOTP_SECRET)},
    )
    assert blank.status_code == 422
    assert _payment(db, payment_id).status == "expired"  # nothing half-written
    plain = _pending(db)
    assert _post(client, demo, plain, "accept").status_code == 409
    assert _post(client, demo, "no-such-payment", "accept").status_code == 404


def test_the_payment_page_offers_both_answers_and_records_the_manager(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment_id = expired_then_paid_at_the_bank(db)
    log_in(client, *_as(demo))
    page = client.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert 'data-bank-money="accept"' in page and 'data-bank-money="refund"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    url = f"/portal/payments/{payment_id}/bank-money/accept"
    assert client.post(url, data={"note": "receipt seen"}).status_code == 400  # no CSRF token
    done = client.post(url, data={"note": "receipt seen", "csrf_token": token.group(1)})
    assert done.status_code == 303
    after = client.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert "Accepted as paid" in after and 'data-bank-money="accept"' not in after
    [entry] = _entries(db, payment_id, "bank_payment_accepted")
    assert entry.actor == f"staff:{_as(demo)[0]}" and entry.detail["note"] == "receipt seen"


def test_accepted_after_expiry_then_reconciled_as_matched_over_real_http(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    """The issue's story: the bank cannot be asked at expiry and the callback is lost, so the
    payment expires; the late callback flags it; the manager accepts it; the bank's settlement
    line carrying its reference is matched, not "settled but unknown to Kassa"."""
    settings = {"bank_poll_after_seconds": 0, "expiry_bank_attempts": 1}
    with bank_loop(db, tmp_path, payments=settings) as loop:
        till = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
        created = requests.post(
            f"{loop.gateway.url}/api/v1/payments",
            json={"amount": "21.00", "currency": "EUR", "method": "qr", "expires_in": 600},
            headers=till,
            timeout=10,
        ).json()
        loop.faults(drop_all=True)
        assert loop.wallet_pays(created["qr_payload"]).status_code in (200, 201)
        loop.faults(drop_all=True, api_5xx=10_000)
        with db.unit_of_work() as uow:
            uow.session.execute(update(Payment).values(expires_at=utcnow() - timedelta(seconds=1)))
            uow.session.execute(update(Job).values(run_at=utcnow() - timedelta(seconds=1)))
            uow.commit()
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) == 1
        assert _payment(db, created["id"]).status == "expired"
        loop.faults()  # the bank answers again and its retry delivers the callback, late

        def flagged() -> bool:
            """the late callback asks a person"""
            return "paid at the bank after" in (_payment(db, created["id"]).attention or "")

        loop.wait_for(flagged)
        accepted = requests.post(
            f"{loop.gateway.url}/api/v1/payments/{created['id']}/bank-money/accept",
            json={"note": "the bank confirmed it by phone"},
            auth=_as(demo),
            headers={"Kassa-OTP": totp_code(DEMO_TOTP_SECRET)},
            timeout=10,
        )
        assert accepted.status_code == 200, accepted.text
        assert _payment(db, created["id"]).attention is None  # both flags answered

        bank = state.of(loop.bank_app)
        key = bank.settings.merchant("KASSA-DEMO-0001").api_key  # type: ignore[union-attr]
        settled = requests.post(
            f"{loop.bank.url}/v1/settlements",
            json={"date": date.today().isoformat()},
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        )
        assert settled.status_code in (200, 201), settled.text

        def announced() -> bool:
            """the gateway stored the settlement callback"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.scalars(select(BankSettlement)).first() is not None

        loop.wait_for(announced)
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) >= 1
        with db.unit_of_work(readonly=True) as uow:
            verdict = uow.session.scalars(
                select(ReconResult).where(ReconResult.subject_id == created["id"])
            ).one()
            assert verdict.outcome == "matched", verdict.reason
            lines = uow.session.scalars(
                select(ReconResult).where(ReconResult.subject == "line")
            ).all()
            assert [line.outcome for line in lines] == ["matched"]
