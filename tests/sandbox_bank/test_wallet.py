"""The wallet: pays a dynamic QR code once, and refuses what a real wallet would refuse."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskClient

from gateway.domain.emv_qr import encode
from sandbox_bank.delivery import deliver_due
from tests.sandbox_bank.helpers import DEMO, OTHER, Receiver, pay, qr


def test_paying_debits_the_wallet_records_the_payment_and_calls_back(
    app: Flask, client: FlaskClient, auth: dict[str, str], receiver: Receiver
) -> None:
    paid = pay(client, "K-0001", "12.34", wallet_id="alice-1234", bill_number="B-77")
    assert paid["amount"] == "12.34" and paid["currency"] == "EUR"
    assert paid["wallet"] == "••••1234" and paid["wallet_balance"] == "99987.66"
    assert paid["merchant_id"] == DEMO and paid["bank_payment_id"].startswith("pay_")

    known = client.get("/v1/payments/K-0001", headers=auth)
    assert known.status_code == 200
    assert known.json == {
        "reference": "K-0001",
        "bank_payment_id": paid["bank_payment_id"],
        "status": "succeeded",
        "amount": "12.34",
        "currency": "EUR",
        "paid_at": paid["paid_at"],
        "refunded_amount": "0.00",
    }

    assert deliver_due(app) == 1
    [callback] = receiver.accepted("payment.succeeded")
    assert callback["verified"]
    assert callback["body"]["data"] == {
        "bank_payment_id": paid["bank_payment_id"],
        "merchant_id": DEMO,
        "reference": "K-0001",
        "bill_number": "B-77",
        "terminal_label": "TILL-1",
        "amount": "12.34",
        "currency": "EUR",
        "wallet": "••••1234",
        "paid_at": paid["paid_at"],
    }


def _static_payload() -> str:
    return encode(
        {
            "00": "01",
            "01": "11",
            "26": {"00": "IO.KASSA.SANDBOX", "01": DEMO},
            "52": "5812",
            "53": "978",
            "58": "DE",
            "59": "Kassa Demo",
            "60": "Berlin",
        }
    )


def _bad_crc() -> str:
    payload = qr("K-CRC")
    return payload[:-1] + ("0" if payload[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("payload", "status", "says"),
    [  # built when the test runs: a QR code built at collection may expire before its turn
        (_bad_crc, 422, "CRC mismatch"),
        (lambda: qr("K-OLD", expires_in=timedelta(seconds=-1)), 422, "expired"),
        (lambda: qr("K-SEK", "12.34", "SEK"), 422, "asks for SEK but merchant KASSA-DEMO-0001"),
        (lambda: qr("K-WHO", merchant_id="SOMEONE-ELSE"), 422, "unknown merchant"),
        (_static_payload, 422, "not a dynamic QR code with an amount"),
        (lambda: "not a QR code", 422, "cannot read this QR code"),
    ],
    ids=["bad-crc", "expired", "wrong-currency", "unknown-merchant", "static", "garbage"],
)
def test_the_wallet_refuses(
    client: FlaskClient, payload: Callable[[], str], status: int, says: str
) -> None:
    response = client.post("/sandbox/wallet/pay", json={"payload": payload(), "wallet_id": "w1"})
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    assert says in response.json["detail"]


def test_a_reference_is_paid_only_once(client: FlaskClient) -> None:
    pay(client, "K-TWICE")
    again = client.post(
        "/sandbox/wallet/pay", json={"payload": qr("K-TWICE"), "wallet_id": "someone-else"}
    )
    assert again.status_code == 409
    assert again.json["type"].endswith("/already-paid")


def test_insufficient_funds_leave_the_wallet_untouched(client: FlaskClient) -> None:
    topped = client.put(
        "/sandbox/wallets/poor-0001", json={"balance_minor": 500, "currency": "EUR"}
    )
    assert topped.json["balance"] == "5.00"
    refused = client.post(
        "/sandbox/wallet/pay", json={"payload": qr("K-POOR", "5.01"), "wallet_id": "poor-0001"}
    )
    assert refused.status_code == 402
    assert client.get("/sandbox/wallets/poor-0001").json["balance_minor"] == 500
    pay(client, "K-POOR", "5.00", wallet_id="poor-0001")
    assert client.get("/sandbox/wallets/poor-0001").json["balance_minor"] == 0


def test_any_merchant_account_template_names_the_merchant(client: FlaskClient) -> None:
    from gateway.domain.emv_qr import build_payment_payload
    from gateway.domain.money import Money
    from tests.sandbox_bank.helpers import profile

    payload = build_payment_payload(profile(OTHER, tag="30"), Money(5000, "SEK"), reference="S-1")
    response = client.post("/sandbox/wallet/pay", json={"payload": payload, "wallet_id": "sv-1"})
    assert response.status_code == 201 and response.json["merchant_id"] == OTHER
    assert response.json["amount"] == "50.00" and response.json["currency"] == "SEK"
    in_euro = client.post("/sandbox/wallet/pay", json={"payload": qr("K-EUR"), "wallet_id": "sv-1"})
    assert in_euro.status_code == 422 and "holds SEK" in in_euro.json["detail"]


def test_the_page_scans_and_pays_and_lists(client: FlaskClient) -> None:
    page = client.get("/sandbox/")
    assert page.status_code == 200 and b'name="payload"' in page.data
    assert b"KASSA-DEMO-0001" in page.data and b"drop_first" in page.data
    paid = client.post("/sandbox/", data={"payload": qr("K-PAGE"), "wallet_id": "page-4321"})
    assert paid.status_code == 201
    assert b"Paid 12.34 EUR" in paid.data and b"K-PAGE" in paid.data
    refused = client.post("/sandbox/", data={"payload": qr("K-PAGE"), "wallet_id": "page-4321"})
    assert refused.status_code == 409 and b"already been paid" in refused.data
    assert b"<script" not in refused.data
