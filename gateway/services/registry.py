"""Which function handles which kind of background job."""

from __future__ import annotations

from functools import cache

from gateway.adapters.bank_client import BankClient
from gateway.config import Config, bank_credentials, load_config
from gateway.services import callbacks, payments, refunds
from gateway.services.jobs import Handler


def job_handlers(config: Config | None = None) -> dict[str, Handler]:
    config = config or load_config()

    @cache
    def bank() -> BankClient:
        # Built on first use: the sandbox bank may write its credentials after the worker starts.
        credentials = bank_credentials(config)
        return BankClient(
            config["bank"]["url"],
            credentials.api_key,
            connect_timeout=config["bank"]["connect_timeout_seconds"],
            read_timeout=config["bank"]["read_timeout_seconds"],
        )

    return {
        payments.EXPIRE_JOB: payments.expire_payment,
        refunds.SUBMIT_JOB: refunds.submit_to_bank(bank),
        callbacks.PROCESS_JOB: callbacks.process_bank_event,
    }
