"""Which function handles which kind of background job."""

from __future__ import annotations

import os
from datetime import date, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from gateway.adapters.bank_client import BankClient
from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import utcnow
from gateway.config import bank_credentials, load_config
from gateway.services.bank import callbacks, polling
from gateway.services.devices import cards, outcomes, refund_outcomes
from gateway.services.jobs import Handler
from gateway.services.payments import qr_payments, refunds
from gateway.services.promotions import privacy, sales
from gateway.services.settlement import recon_parts, reconciliation
from gateway.services.settlement.file_import import import_settlement_file
from gateway.services.webhooks import outbox
from gateway.settings import Settings


def job_handlers(settings: Settings | None = None) -> dict[str, Handler]:
    config = settings or load_config()

    @cache
    def bank() -> BankClient:
        # Built on first use: the sandbox bank may write its credentials after the worker starts.
        credentials = bank_credentials(config)
        return BankClient(
            config.bank.url,
            credentials.api_key,
            connect_timeout=config.bank.connect_timeout_seconds,
            read_timeout=config.bank.read_timeout_seconds,
        )

    recon_settings = reconciliation.ReconSettings.from_settings(config.reconciliation)

    def reconcile_and_schedule(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        """The daily run: reconcile the day, then queue the next day's run."""
        day = date.fromisoformat(payload["day"])
        reconciliation.reconcile_or_fan_out(
            uow, int(payload["merchant_id"]), day, recon_settings, actor="system:daily"
        )
        reconciliation.schedule_daily(uow, int(payload["merchant_id"]), day + timedelta(days=1))

    def fetch_import_reconcile(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        """A settlement the bank announced: download its statement, import it, reconcile."""
        content = bank().download(payload["url"])  # before the first query: no lock held
        folder = Path(config.settlement.archive_dir) / "incoming"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{payload['settlement_id']}{_suffix(payload['url'])}"
        draft = path.with_suffix(path.suffix + ".part")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        draft.replace(path)
        try:  # the import keeps the file with its card numbers masked; this copy is not
            import_settlement_file(uow, path, config.settlement)
        finally:
            path.unlink(missing_ok=True)
        reconciliation.reconcile_or_fan_out(
            uow,
            int(payload["merchant_id"]),
            date.fromisoformat(payload["day"]),
            recon_settings,
            actor="system:settlement-file",
        )

    poll = polling.PollSettings.from_settings(config.payments)
    watch = polling.watch_payment(bank, poll)  # asks the bank, then expires when due
    keep_quotes = timedelta(days=config.promotions.keep_quotes_days)

    def purge_and_schedule(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        """The daily clean-up of unpaid quotes, then the next day's."""
        day = date.fromisoformat(payload["day"])
        sales.purge_quotes(uow, older_than=utcnow() - keep_quotes)
        sales.schedule_purge(uow, day + timedelta(days=1))

    inactive_days = config.privacy.inactive_customer_days

    def anonymise_and_schedule(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        """The daily retention run: anonymise customers inactive too long, then the next."""
        day = date.fromisoformat(payload["day"])
        if inactive_days > 0:
            privacy.anonymise_inactive(uow, inactive_since=utcnow() - timedelta(days=inactive_days))
        privacy.schedule_retention(uow, day + timedelta(days=1))

    return {
        **recon_parts.handlers(recon_settings),
        privacy.RETENTION_JOB: anonymise_and_schedule,
        sales.PURGE_JOB: purge_and_schedule,
        reconciliation.FETCH_FILE_JOB: fetch_import_reconcile,
        reconciliation.RECON_JOB: reconcile_and_schedule,
        qr_payments.EXPIRE_JOB: watch,
        qr_payments.POLL_JOB: watch,
        refunds.POLL_JOB: polling.watch_refund(bank, poll),
        refunds.SUBMIT_JOB: refunds.submit_to_bank(bank, poll_after=poll.after),
        callbacks.PROCESS_JOB: callbacks.process_bank_event,
        cards.WATCH_JOB: outcomes.watch(outcomes.CardDeadlines.from_settings(config.devices)),
        cards.REFUND_WATCH_JOB: refund_outcomes.watch(
            outcomes.CardDeadlines.from_settings(config.devices)
        ),
        outbox.DELIVER_JOB: outbox.deliver(
            connect_timeout=config.webhooks.connect_timeout_seconds,
            read_timeout=config.webhooks.read_timeout_seconds,
            allow_private=config.webhooks.allow_private_addresses,
        ),
    }


def _suffix(url: str) -> str:
    name = url.rsplit("/", 1)[-1]
    return "." + name.rsplit(".", 1)[-1] if "." in name else ".dat"
