"""Helpers for the sandbox bank tests: QR payloads as the gateway builds them, the test
configuration, and a callback receiver that verifies Standard Webhooks signatures like the
gateway does."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import BaseWSGIServer, make_server
from werkzeug.wrappers import Request, Response

from gateway.domain.emv_qr import MerchantAccount, MerchantProfile, build_payment_payload
from gateway.domain.money import Money
from sandbox_bank.secrets import new_webhook_secret

DEMO = "KASSA-DEMO-0001"
OTHER = "KASSA-SEK-0002"
OTHER_KEY = "sk_sandbox_other_merchant_key"
OTHER_SECRET = new_webhook_secret()


def profile(merchant_id: str = DEMO, tag: str = "26") -> MerchantProfile:
    account = MerchantAccount(tag=tag, gui="IO.KASSA.SANDBOX", fields=(("01", merchant_id),))
    return MerchantProfile(
        name="Kassa Demo", city="Berlin", country="DE", mcc="5812", accounts=(account,)
    )


def qr(
    reference: str,
    amount: str = "12.34",
    currency: str = "EUR",
    *,
    merchant_id: str = DEMO,
    expires_in: timedelta | None = timedelta(minutes=5),
    terminal_label: str | None = "TILL-1",
    bill_number: str | None = None,
) -> str:
    """A dynamic QR payload as the gateway builds it."""
    expires_at = datetime.now(UTC) + expires_in if expires_in is not None else None
    return build_payment_payload(
        profile(merchant_id),
        Money.parse(amount, currency),
        reference=reference,
        terminal_label=terminal_label,
        bill_number=bill_number,
        expires_at=expires_at,
    )


class Server:
    """A werkzeug server on a free loopback port, in a thread."""

    def __init__(self, app: Any) -> None:
        self.server: BaseWSGIServer = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.02,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.thread.join(5)


@dataclass
class Receiver:
    """The merchant's callback endpoint: verifies, records, answers as told."""

    secrets: dict[str, str]
    answers: list[int] = field(default_factory=list)  # next status codes, then 204
    received: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    url: str = ""

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        merchant_id = request.path.rsplit("/", 1)[-1]
        body = request.get_data(as_text=True)
        try:
            Webhook(self.secrets[merchant_id]).verify(body, dict(request.headers))
            verified = True
        except (KeyError, WebhookVerificationError):
            verified = False
        with self.lock:
            status = self.answers.pop(0) if self.answers else 204
            if not verified:
                status = 401
            self.received.append(
                {
                    "id": request.headers.get("webhook-id"),
                    "merchant_id": merchant_id,
                    "verified": verified,
                    "status": status,
                    "body": json.loads(body),
                }
            )
        return Response(status=status)(environ, start_response)

    def accepted(self, type_: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [
                r
                for r in self.received
                if r["status"] < 300 and (type_ is None or r["body"]["type"] == type_)
            ]


class Late:
    """A WSGI app filled in after its server knows its port."""

    target: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.target(environ, start_response)


def sandbox_config(tmp_path: Path, receiver_url: str, **overrides: Any) -> dict[str, Any]:
    section: dict[str, Any] = {
        "url": "http://127.0.0.1:8100",
        "database_url": f"sqlite:///{tmp_path / 'sandbox-bank.db'}",
        "secrets_file": str(tmp_path / "sandbox-bank.json"),
        "deliver_in_background": False,
        "retry_base_ms": 1,
        "retry_max_s": 1,
        "refund_delay_ms": 0,
        "delivery_timeout_s": 5,
        "merchants": [
            {
                "merchant_id": DEMO,
                "name": "Kassa Demo",
                "currency": "EUR",
                "callback_url": f"{receiver_url}/bank/callbacks/{DEMO}",
                "fee_percent_bp": 150,
                "fee_fixed_minor": 10,
            },
            {
                "merchant_id": OTHER,
                "name": "Kassa Stockholm",
                "currency": "SEK",
                "callback_url": f"{receiver_url}/bank/callbacks/{OTHER}",
                "fee_percent_bp": 0,
                "fee_fixed_minor": 0,
                "api_key": OTHER_KEY,
                "webhook_secret": OTHER_SECRET,
                "iban": "SE4550000000058398257466",
            },
        ],
    }
    section.update(overrides)
    return {"sandbox_bank": section}


def pay(client: FlaskClient, reference: str, amount: str = "12.34", **kwargs: Any) -> Any:
    wallet_id = kwargs.pop("wallet_id", "wallet-0001")
    response = client.post(
        "/sandbox/wallet/pay",
        json={"payload": qr(reference, amount, **kwargs), "wallet_id": wallet_id},
    )
    assert response.status_code == 201, response.json
    return response.json
