"""The bank client refuses what it must never do, before any network traffic."""

import pytest

from gateway.adapters.bank_client import BankClient
from gateway.errors import BankNotConfigured, BankRejected


def test_downloads_only_from_the_banks_own_address() -> None:
    client = BankClient("http://127.0.0.1:9", "sk_test")
    for url in ("http://evil.example/camt.xml", "http://127.0.0.1:90/x", "http://127.0.0.1:9"):
        with pytest.raises(BankRejected, match="refusing to download"):
            client.download(url)


def test_posts_need_an_idempotency_key() -> None:
    with pytest.raises(ValueError, match="Idempotency-Key"):
        BankClient("http://127.0.0.1:9", "sk_test")._post("/v1/refunds", {}, idempotency_key="")


def test_missing_credentials_say_what_to_configure() -> None:
    with pytest.raises(BankNotConfigured, match=r"\[bank\] url and api_key"):
        BankClient("http://127.0.0.1:8100", "")
