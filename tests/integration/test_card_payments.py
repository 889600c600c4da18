"""Card payments in the web tier: queued for the till's device host, one at a time per terminal."""

from __future__ import annotations

from typing import Any

import requests
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment
from gateway.services import jobs
from gateway.services.devices import cards
from gateway.services.registry import job_handlers


def _card(server: Any, demo: Any, amount: str = "19.99", till: int = 0) -> requests.Response:
    return requests.post(
        f"{server.url}/api/v1/payments",
        json={"amount": amount, "currency": "EUR", "method": "card"},
        headers={"Authorization": f"Bearer {demo['tills'][till]['api_key']}"},
        timeout=10,
    )


def test_card_payment_is_queued_for_the_tills_device_host(
    live_server: Any, demo: Any, db: Database
) -> None:
    response = _card(live_server, demo)
    assert response.status_code == 201, response.text
    body = response.json()
    assert (body["method"], body["status"], body["amount_minor"]) == ("card", "pending", 1999)
    assert body["qr_payload"] is None and body["display_text"] == "Sending to the terminal…"
    with db.unit_of_work(readonly=True) as uow:
        job = uow.session.scalars(select(Job).where(Job.queue != "default")).one()
        assert (job.kind, job.payload) == (cards.CHARGE_JOB, {"payment_id": body["id"]})
        assert job.queue.startswith("device:")
        charge_job = job.id
    # The general worker never touches a device's job: only the device host owns the port. It
    # only watches that the payment does not wait for a device host forever (not yet due).
    assert jobs.run_due_jobs(db, job_handlers()) == 1
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Job, charge_job).status == "pending"
        watch = uow.session.scalars(
            select(Job).where(Job.status == "pending", Job.id != charge_job)
        )
        assert [w.kind for w in watch] == [cards.WATCH_JOB]
        assert uow.session.get_one(Payment, body["id"]).status == "pending"


def test_a_busy_terminal_refuses_a_second_card_payment(live_server: Any, demo: Any) -> None:
    assert _card(live_server, demo).status_code == 201
    second = _card(live_server, demo, "5.00")
    assert second.status_code == 409
    assert "card terminal at till T01 is busy" in second.json()["detail"]
    assert _card(live_server, demo, "5.00", till=1).status_code == 201  # another till is free


def test_a_card_payment_at_the_terminal_is_stopped_there(live_server: Any, demo: Any) -> None:
    created = _card(live_server, demo).json()
    response = requests.post(
        f"{live_server.url}/api/v1/payments/{created['id']}/cancel",
        headers={"Authorization": f"Bearer {demo['tills'][0]['api_key']}"},
        timeout=10,
    )
    assert response.status_code == 409
    assert "press Stop on the terminal" in response.json()["detail"]


def test_card_payment_has_no_expiry(live_server: Any, demo: Any) -> None:
    response = requests.post(
        f"{live_server.url}/api/v1/payments",
        json={"amount": "1.00", "currency": "EUR", "method": "card", "expires_in": 60},
        headers={"Authorization": f"Bearer {demo['tills'][0]['api_key']}"},
        timeout=10,
    )
    assert response.status_code == 422 and "expires_in is for QR payments" in response.text
