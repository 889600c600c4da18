"""Which function handles which kind of background job."""

from __future__ import annotations

from datetime import date, timedelta
from functools import cache
from typing import Any

from gateway.adapters.bank_client import BankClient
from gateway.adapters.db import UnitOfWork
from gateway.config import Config, bank_credentials, load_config
from gateway.services import callbacks, payments, reconciliation, refunds
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

    recon_settings = reconciliation.ReconSettings.from_config(config)

    def reconcile_and_schedule(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        """The daily run: reconcile the day, then queue the next day's run."""
        day = date.fromisoformat(payload["day"])
        reconciliation.reconcile_day(
            uow, int(payload["merchant_id"]), day, recon_settings, actor="system:daily"
        )
        reconciliation.schedule_daily(uow, int(payload["merchant_id"]), day + timedelta(days=1))

    return {
        reconciliation.RECON_JOB: reconcile_and_schedule,
        payments.EXPIRE_JOB: payments.expire_payment,
        refunds.SUBMIT_JOB: refunds.submit_to_bank(bank),
        callbacks.PROCESS_JOB: callbacks.process_bank_event,
    }
