"""The gateway and the sandbox acquirer, each on its own real port, wired as in `kassa run`.

The wallet pays a QR code at the sandbox, the sandbox calls the gateway back (signed), the
gateway asks the sandbox for refunds: real HTTP in both directions, real databases on both sides.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from flask import Flask

from gateway.adapters.db import Database
from gateway.entrypoints.app import create_app
from sandbox_bank import state
from sandbox_bank.app import create_app as create_sandbox
from tests.conftest import LiveServer, app_config

BANK_MERCHANT = "KASSA-DEMO-0001"


class LateApp:
    """A WSGI app set after its server has a port (the two servers need each other's URL)."""

    app: Any = None

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        return self.app(environ, start_response)


@dataclass
class BankLoop:
    gateway: LiveServer
    gateway_app: Flask
    bank: LiveServer
    bank_app: Flask
    config: dict[str, Any]

    def wait_for(self, check: Callable[[], bool], seconds: float = 90) -> None:
        """Poll until ``check()``; ``seconds`` is a ceiling for a loaded machine, not a
        deadline the product must meet."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if check():
                return
            time.sleep(0.05)
        raise AssertionError(f"not true after {seconds} s: {check.__doc__ or check}")

    def wallet_pays(self, payload: str, wallet: str = "wallet-0042") -> requests.Response:
        return requests.post(
            f"{self.bank.url}/sandbox/wallet/pay",
            json={"payload": payload, "wallet_id": wallet},
            timeout=10,
        )

    def faults(self, **knobs: Any) -> None:
        url = f"{self.bank.url}/sandbox/merchants/{BANK_MERCHANT}/faults"
        response = requests.put(url, json=knobs, timeout=10) if knobs else requests.delete(url)
        assert response.ok, response.text


@contextmanager
def bank_loop(db: Database, tmp_path: Path, **config_sections: Any) -> Iterator[BankLoop]:
    gateway_wsgi, bank_wsgi = LateApp(), LateApp()
    with LiveServer(gateway_wsgi) as gateway, LiveServer(bank_wsgi) as bank:
        secrets = tmp_path / "sandbox-bank.json"
        bank_wsgi.app = create_sandbox(
            {
                "sandbox_bank": {
                    "url": bank.url,
                    "database_url": f"sqlite:///{tmp_path / 'sandbox-bank.db'}",
                    "secrets_file": str(secrets),
                    "deliver_in_background": True,
                    "poll_interval_ms": 50,
                    "retry_base_ms": 50,
                    "retry_max_s": 1,
                    "refund_delay_ms": 0,
                    "merchants": [
                        {
                            "merchant_id": BANK_MERCHANT,
                            "name": "Kassa Demo",
                            "currency": "EUR",
                            "callback_url": f"{gateway.url}/bank/callbacks",
                            "fee_percent_bp": 150,
                            "fee_fixed_minor": 10,
                        }
                    ],
                }
            }
        )
        config = app_config(
            db, bank={"url": bank.url, "secrets_file": str(secrets)}, **config_sections
        )
        gateway_wsgi.app = create_app(config, db=db)
        try:
            yield BankLoop(gateway, gateway_wsgi.app, bank, bank_wsgi.app, config)
        finally:
            state.of(bank_wsgi.app).close()
