"""One sale followed through the gateway, its worker and the bank by request ids, over real HTTP:
the bank logs the X-Request-Id the gateway's client sends and sends it back on the callbacks the
request caused, and the gateway logs each callback with it beside the payment's id."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import select

from gateway.adapters import logging_setup
from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, Refund
from gateway.services import jobs
from gateway.services.payments import refunds
from gateway.services.registry import job_handlers
from tests.bank_loop import bank_loop


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Kassa's logging as in a process whose stderr is a file: JSON lines, into a StringIO."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logging_setup.configure_logging("web", "json", stream=out)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def _lines(out: io.StringIO, logger: str, text: str) -> list[dict[str, Any]]:
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    return [x for x in found if x["logger"] == logger and text in x["message"]]


def test_a_sale_is_followed_by_request_ids_through_gateway_worker_and_bank(
    db: Database, demo: dict[str, Any], tmp_path: Path, json_log: io.StringIO
) -> None:
    till = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
    with bank_loop(db, tmp_path) as loop:
        created = requests.post(
            f"{loop.gateway.url}/api/v1/payments",
            json={"amount": "9.50", "currency": "EUR", "method": "qr"},
            headers={**till, "X-Request-Id": "till-sale-1"},
            timeout=10,
        )
        assert created.status_code == 201, created.text
        payment_id = created.json()["id"]
        paid = requests.post(
            f"{loop.bank.url}/sandbox/wallet/pay",
            json={"payload": created.json()["qr_payload"], "wallet_id": "wallet-0042"},
            headers={"X-Request-Id": "wallet-pay-1"},
            timeout=10,
        )
        assert paid.ok and paid.headers["X-Request-Id"] == "wallet-pay-1"

        def is_paid() -> bool:
            """the callback marked the payment paid"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.get_one(Payment, payment_id).status == "paid"

        loop.wait_for(is_paid)

        refund = requests.post(
            f"{loop.gateway.url}/api/v1/payments/{payment_id}/refunds",
            json={"amount": "2.00"},
            headers={**till, "Idempotency-Key": "trace-1", "X-Request-Id": "till-refund-1"},
            timeout=10,
        )
        assert refund.status_code == 201, refund.text
        with db.unit_of_work(readonly=True) as uow:
            submit = uow.session.scalars(select(Job.id).where(Job.kind == refunds.SUBMIT_JOB)).one()
        assert jobs.run_due_jobs(db, job_handlers(loop.config)) >= 1  # the worker asks the bank

        def refunded() -> bool:
            """the bank's refund.succeeded callback completed the refund"""
            with db.unit_of_work(readonly=True) as uow:
                return uow.session.get_one(Refund, refund.json()["id"]).status == "succeeded"

        loop.wait_for(refunded)

    # The wallet's request at the bank, the callback it caused, and the gateway taking it.
    [pay_line] = _lines(json_log, "sandbox_bank.request", "POST /sandbox/wallet/pay 20")
    assert pay_line["request_id"] == "wallet-pay-1"
    sent = _lines(json_log, "sandbox_bank.delivery", "(payment.succeeded) attempt 1: 200")
    assert [x["request_id"] for x in sent] == ["wallet-pay-1"]
    # The line of each callback the gateway took: its request's line, ending with the outcome.
    taken = _lines(json_log, "gateway.request", ": processed")
    assert {"request_id": "wallet-pay-1", "payment_id": payment_id}.items() <= taken[0].items()

    # The refund: the worker's job calls the bank with its id, which comes back on the callback.
    job_id = f"job-{submit}"
    [job_line] = _lines(json_log, "gateway.services.jobs", f"job {submit} (submit_refund) done")
    assert (job_line["request_id"], job_line["payment_id"]) == (job_id, payment_id)
    [asked] = _lines(json_log, "sandbox_bank.request", "POST /v1/refunds 201")
    assert asked["request_id"] == job_id
    sent = _lines(json_log, "sandbox_bank.delivery", "(refund.succeeded) attempt 1: 200")
    assert [x["request_id"] for x in sent] == [job_id]
    assert {"request_id": job_id, "payment_id": payment_id}.items() <= taken[1].items()
    assert len(taken) == 2
