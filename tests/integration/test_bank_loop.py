"""The whole loop over real HTTP: till → gateway → QR → sandbox wallet → signed callback → paid,
and refunds that survive a bank outage without being doubled."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import func, select, update

from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, Refund, utcnow
from gateway.services import jobs
from gateway.services.payments import refunds
from gateway.services.registry import job_handlers
from sandbox_bank import state
from sandbox_bank.models import Refund as BankRefund
from tests.bank_loop import bank_loop


def _till(demo: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['tills'][0]['api_key']}", **extra}


def _pay_at_the_bank(loop: Any, demo: dict[str, Any], db: Database, amount: str) -> dict[str, Any]:
    created = requests.post(
        f"{loop.gateway.url}/api/v1/payments",
        json={"amount": amount, "currency": "EUR", "method": "qr"},
        headers=_till(demo),
        timeout=10,
    ).json()
    paid = loop.wallet_pays(created["qr_payload"])
    assert paid.status_code in (200, 201), paid.text

    def is_paid() -> bool:
        """the gateway marks the payment paid"""
        with db.unit_of_work(readonly=True) as uow:
            return uow.session.get_one(Payment, created["id"]).status == "paid"

    loop.wait_for(is_paid)
    return created


def test_wallet_payment_at_the_bank_marks_the_payment_paid(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    with bank_loop(db, tmp_path) as loop:
        created = _pay_at_the_bank(loop, demo, db, "12.34")
        again = loop.wallet_pays(created["qr_payload"])
        assert again.status_code == 409  # the wallet refuses to pay a reference twice
        detail = requests.get(
            f"{loop.gateway.url}/api/v1/payments/{created['id']}", headers=_till(demo), timeout=10
        ).json()
        assert detail["status"] == "paid" and detail["paid_at"]
        assert [e["to_status"] for e in detail["events"]] == ["created", "pending", "paid"]
        with db.unit_of_work(readonly=True) as uow:
            assert uow.session.get_one(Payment, created["id"]).bank_payment_id


def test_refunds_queued_during_a_bank_outage_complete_once_it_returns(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    with bank_loop(db, tmp_path) as loop:
        created = _pay_at_the_bank(loop, demo, db, "10.00")
        handlers = job_handlers(loop.config)
        loop.faults(api_5xx=1000)  # the bank's API answers 503 to everything
        for n in range(3):
            response = requests.post(
                f"{loop.gateway.url}/api/v1/payments/{created['id']}/refunds",
                json={"amount": "1.00"},
                headers=_till(demo, **{"Idempotency-Key": f"refund-{n}"}),
                timeout=10,
            )
            assert response.status_code == 201, response.text
        jobs.run_due_jobs(db, handlers)
        with db.unit_of_work(readonly=True) as uow:
            waiting = list(uow.session.scalars(select(Job).where(Job.kind == refunds.SUBMIT_JOB)))
            assert {(j.status, j.attempts) for j in waiting} == {("pending", 1)}
            assert all("503" in (j.last_error or "") for j in waiting)
            assert {r.status for r in uow.session.scalars(select(Refund))} == {"requested"}

        loop.faults()  # the bank is back
        with db.unit_of_work() as uow:
            uow.session.execute(
                update(Job)
                .where(Job.kind == refunds.SUBMIT_JOB)
                .values(run_at=utcnow() - timedelta(seconds=1))
            )
            uow.commit()
        assert jobs.run_due_jobs(db, handlers) == 3
        assert jobs.run_due_jobs(db, handlers) == 0
        # A retry of an already submitted refund (a worker that died before committing):
        # the bank replays its first answer for the same idempotency key.
        with db.unit_of_work() as uow:
            first = uow.session.scalars(select(Job).where(Job.kind == refunds.SUBMIT_JOB)).first()
            assert first is not None
            handlers[refunds.SUBMIT_JOB](uow, dict(first.payload))
            uow.commit()

        def all_refunded() -> bool:
            """the bank's three refund callbacks are applied"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.get_one(Payment, created["id"]).refunded_minor == 300

        loop.wait_for(all_refunded)
        with db.unit_of_work(readonly=True) as uow:
            payment = uow.session.get_one(Payment, created["id"])
            assert payment.status == "partially_refunded"
            assert {r.status for r in uow.session.scalars(select(Refund))} == {"succeeded"}
        bank = state.of(loop.bank_app)
        with bank.db.session() as session:
            assert session.scalar(select(func.count()).select_from(BankRefund)) == 3
        key = bank.settings.merchant("KASSA-DEMO-0001").api_key  # type: ignore[union-attr]
        status = requests.get(
            f"{loop.bank.url}/v1/payments/{created['reference']}",
            headers={"Authorization": f"Bearer {key}"},
            timeout=10,
        ).json()
        assert status["refunded_amount"] == "3.00"


def test_settlement_callback_fetches_imports_and_reconciles_the_statement(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    from datetime import date

    from gateway.adapters.models import BankSettlement, ReconResult, SettlementFile

    with bank_loop(db, tmp_path) as loop:
        created = _pay_at_the_bank(loop, demo, db, "21.00")
        bank = state.of(loop.bank_app)
        key = bank.settings.merchant("KASSA-DEMO-0001").api_key  # type: ignore[union-attr]
        today = date.today().isoformat()
        settled = requests.post(
            f"{loop.bank.url}/v1/settlements",
            json={"date": today},
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
            file = uow.session.scalars(select(SettlementFile)).one()
            assert file.format == "camt053" and file.entry_count == 1
            verdict = uow.session.scalars(
                select(ReconResult).where(ReconResult.subject_id == created["id"])
            ).one()
            assert verdict.outcome == "matched", verdict.reason


def test_a_sale_with_promotions_is_paid_at_the_bank_and_a_refund_reverses_its_share(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    """Quote and pay over HTTP, the wallet pays the discounted QR at the sandbox bank, its
    signed callback commits the promotions; a half refund through the bank gives back half
    of the budget and of the points."""
    from gateway.adapters.promotion_models import PointsLot, PromotionRow, Sale
    from tests.integration.test_sales import add_promotion

    add_promotion(
        db, demo, "ten", "percent", {"percent_bp": 1000, "limits": {"budget_minor": 5000}}
    )
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    body = {
        "currency": "EUR",
        "payment_method": "qr",
        "customer": {"wallet_id": "wallet-0042", "marketing_consent": True},  # points need it
        "lines": [{"sku": "tea", "name": "Tea", "quantity": 4, "unit_price": "5.00"}],
    }
    with bank_loop(db, tmp_path) as loop:
        sale = requests.post(
            f"{loop.gateway.url}/api/v1/sales", json=body, headers=_till(demo), timeout=10
        ).json()
        paid = requests.post(
            f"{loop.gateway.url}/api/v1/sales/{sale['id']}/pay",
            json={"method": "qr"},
            headers=_till(demo, **{"Idempotency-Key": "pay-1"}),
            timeout=10,
        ).json()
        assert paid["payment"]["amount"] == "18.00"
        assert loop.wallet_pays(paid["payment"]["qr_payload"]).status_code in (200, 201)

        def sale_is(status: str) -> Callable[[], bool]:
            def check() -> bool:
                with db.unit_of_work(readonly=True) as uow:
                    return uow.session.get_one(Sale, sale["id"]).status == status

            check.__doc__ = f"the sale is {status}"
            return check

        loop.wait_for(sale_is("paid"))
        refund = requests.post(
            f"{loop.gateway.url}/api/v1/payments/{paid['payment']['id']}/refunds",
            json={"amount": "9.00"},
            headers=_till(demo, **{"Idempotency-Key": "refund-half"}),
            timeout=10,
        )
        assert refund.status_code == 201, refund.text
        jobs.run_due_jobs(db, job_handlers(loop.config))

        def half_back() -> bool:
            """the bank's refund callback reversed half of the promotions"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.get_one(Sale, sale["id"]).refunded_minor == 900

        loop.wait_for(half_back)
        with db.unit_of_work(readonly=True) as uow:
            ten = uow.session.scalars(select(PromotionRow).where(PromotionRow.key == "ten")).one()
            assert (ten.used_money_minor, ten.used_count) == (100, 1)
            assert uow.session.scalars(select(PointsLot.remaining)).one() == 18 - 9
