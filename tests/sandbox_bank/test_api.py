"""The acquirer API: authentication, payments, refunds with idempotency and a hard ceiling."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import requests
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from sandbox_bank import state
from sandbox_bank.app import create_app
from sandbox_bank.delivery import deliver_due
from tests.sandbox_bank.helpers import DEMO, OTHER_KEY, Receiver, Server, pay, sandbox_config


def refund(
    client: FlaskClient, auth: dict[str, str], amount: str, refund_id: str, key: str | None = None
) -> TestResponse:
    body = {"refund_id": refund_id, "payment_reference": "K-R", "amount": amount, "currency": "EUR"}
    headers = auth | {"Idempotency-Key": key or str(uuid.uuid4())}
    return client.post("/v1/refunds", headers=headers, json=body)


def test_the_api_wants_a_valid_key_and_shows_a_merchant_only_its_own(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    pay(client, "K-MINE")
    missing = client.get("/v1/payments/K-MINE")
    assert missing.status_code == 401 and missing.headers["WWW-Authenticate"].startswith("Bearer")
    wrong = client.get("/v1/payments/K-MINE", headers={"Authorization": "Bearer sk_sandbox_nope"})
    assert wrong.status_code == 401 and wrong.mimetype == "application/problem+json"
    other = client.get("/v1/payments/K-MINE", headers={"Authorization": f"Bearer {OTHER_KEY}"})
    assert other.status_code == 404
    assert client.get("/v1/payments/K-NEVER", headers=auth).status_code == 404
    assert client.get("/v1/payments/K-MINE", headers=auth).status_code == 200


def test_a_refund_is_pending_then_succeeds_with_a_callback_and_the_money_back(
    app: Flask, client: FlaskClient, auth: dict[str, str], receiver: Receiver
) -> None:
    paid = pay(client, "K-R", "10.00", wallet_id="bob-0001")
    created = refund(client, auth, "4.00", "R-1")
    assert created.status_code == 201
    body = created.json
    assert body["status"] == "pending" and body["amount"] == "4.00" and body["refund_id"] == "R-1"
    assert client.get("/v1/refunds/R-1", headers=auth).json["status"] == "pending"

    deliver_due(app)
    [callback] = receiver.accepted("refund.succeeded")
    assert callback["verified"]
    data = callback["body"]["data"]
    assert data["bank_refund_id"] == body["bank_refund_id"] and data["refund_id"] == "R-1"
    assert data["bank_payment_id"] == paid["bank_payment_id"] and data["reference"] == "K-R"
    assert data["amount"] == "4.00" and data["currency"] == "EUR" and data["processed_at"]
    assert "reason" not in data
    assert client.get("/v1/refunds/R-1", headers=auth).json["status"] == "succeeded"
    assert client.get("/sandbox/wallets/bob-0001").json["balance"] == "99994.00"
    payment = client.get("/v1/payments/K-R", headers=auth).json
    assert payment["status"] == "partially_refunded" and payment["refunded_amount"] == "4.00"

    assert refund(client, auth, "6.00", "R-2").status_code == 201
    deliver_due(app)
    payment = client.get("/v1/payments/K-R", headers=auth).json
    assert payment["status"] == "refunded" and payment["refunded_amount"] == "10.00"


def test_never_more_than_paid_minus_refunded(client: FlaskClient, auth: dict[str, str]) -> None:
    pay(client, "K-R", "10.00")
    assert refund(client, auth, "7.00", "R-1").status_code == 201
    too_much = refund(client, auth, "3.01", "R-2")
    assert too_much.status_code == 409
    assert too_much.json["refundable"] == "3.00"
    assert refund(client, auth, "3.00", "R-3").status_code == 201
    assert refund(client, auth, "0.01", "R-4").status_code == 409


def test_refund_requests_are_checked(client: FlaskClient, auth: dict[str, str]) -> None:
    pay(client, "K-R", "10.00")
    headers = auth | {"Idempotency-Key": "k-1"}
    body = {"refund_id": "R-1", "payment_reference": "K-R", "amount": "1.00", "currency": "EUR"}
    no_key = client.post("/v1/refunds", headers=auth, json=body)
    assert no_key.status_code == 400 and "Idempotency-Key" in no_key.json["detail"]
    for change, status in [
        ({"currency": "SEK"}, 422),
        ({"amount": "1.001"}, 422),
        ({"amount": 1}, 422),
        ({"amount": "0.00"}, 422),
        ({"payment_reference": "K-NONE"}, 404),
    ]:
        answer = client.post("/v1/refunds", headers=headers, json=body | change)
        assert answer.status_code == status, (change, answer.json)


def test_the_same_key_replays_and_another_body_is_refused(
    client: FlaskClient, auth: dict[str, str]
) -> None:
    pay(client, "K-R", "10.00")
    first = refund(client, auth, "2.00", "R-1", key="key-1")
    again = refund(client, auth, "2.00", "R-1", key="key-1")
    assert again.status_code == 201 and again.json == first.json
    other_body = refund(client, auth, "3.00", "R-1", key="key-1")
    assert other_body.status_code == 422
    assert other_body.json["type"].endswith("/idempotency-key-reused")
    reused_id = refund(client, auth, "2.00", "R-1", key="key-2")
    assert reused_id.status_code == 409
    assert client.get("/v1/payments/K-R", headers=auth).json["refunded_amount"] == "0.00"
    assert refund(client, auth, "8.00", "R-2").status_code == 201
    assert refund(client, auth, "0.01", "R-3").status_code == 409  # only 2.00 was taken by R-1


def test_concurrent_refunds_over_http_never_exceed_the_payment(
    live: tuple[Flask, str], receiver: Receiver, tmp_path: Path, database_url: str
) -> None:
    """Ten refunds of 3.00 against 10.00, raced through two bank processes on one database."""
    app, url = live
    twin = create_app(sandbox_config(tmp_path, receiver.url, database_url=database_url))
    twin_server = Server(twin)  # its own write lock: only the database keeps them apart
    pay(app.test_client(), "K-R", "10.00")
    key = state.of(app).settings.merchant(DEMO).api_key  # type: ignore[union-attr]
    start = threading.Barrier(10)
    codes: list[int] = []

    def one(n: int) -> None:
        body = {
            "refund_id": f"R-{n}",
            "payment_reference": "K-R",
            "amount": "3.00",
            "currency": "EUR",
        }
        headers = {"Authorization": f"Bearer {key}", "Idempotency-Key": f"race-{n}"}
        base = url if n % 2 else twin_server.url
        start.wait()
        answer = requests.post(f"{base}/v1/refunds", json=body, headers=headers, timeout=30)
        codes.append(answer.status_code)

    threads = [threading.Thread(target=one, args=(n,)) for n in range(10)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    twin_server.close()
    state.of(twin).close()
    assert sorted(codes) == [201] * 3 + [409] * 7
    deliver_due(app)
    assert len(receiver.accepted("refund.succeeded")) == 3
    auth = {"Authorization": f"Bearer {key}"}
    payment = requests.get(f"{url}/v1/payments/K-R", headers=auth, timeout=10).json()
    assert payment["refunded_amount"] == "9.00" and payment["status"] == "partially_refunded"


def test_refund_fail_fault_sends_refund_failed_and_frees_the_amount(
    app: Flask, client: FlaskClient, auth: dict[str, str], receiver: Receiver
) -> None:
    pay(client, "K-R", "10.00", wallet_id="carol-0001")
    client.put(f"/sandbox/merchants/{DEMO}/faults", json={"refund_fail": True})
    assert refund(client, auth, "10.00", "R-1").status_code == 201
    deliver_due(app)
    [failed] = receiver.accepted("refund.failed")
    assert failed["body"]["data"]["refund_id"] == "R-1" and failed["body"]["data"]["reason"]
    assert client.get("/v1/refunds/R-1", headers=auth).json["status"] == "failed"
    assert client.get("/sandbox/wallets/carol-0001").json["balance"] == "99990.00"
    client.delete(f"/sandbox/merchants/{DEMO}/faults")
    assert refund(client, auth, "10.00", "R-2").status_code == 201
