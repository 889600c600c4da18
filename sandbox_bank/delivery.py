"""Callback delivery: Standard Webhooks signatures, retries with backoff, injected faults.

Every event is a row in ``deliveries`` and every attempt a row in ``delivery_attempts``. An
event is retried with exponential backoff and jitter until the merchant's endpoint answers 2xx;
re-deliveries repeat its ``webhook-id`` and body, with a fresh timestamp and signature. Each
attempt carries the ``X-Request-Id`` of the request that caused the event (the wallet's payment,
the gateway's refund request), and is logged with it, so a sale can be followed across.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Sequence
from datetime import datetime, timedelta

import requests
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from gateway.adapters import logging_setup
from sandbox_bank import faults, refunds, state
from sandbox_bank.models import Delivery, DeliveryAttempt, Merchant, utcnow
from sandbox_bank.secrets import new_webhook_secret

USER_AGENT = "kassa-sandbox-bank/1"
log = logging.getLogger(__name__)


def deliver_due(app: Flask, now: datetime | None = None) -> int:
    """Finish due refunds, then try every due callback once. Returns the callbacks tried.

    The background worker calls this in a loop; tests call it directly.
    """
    bank = state.of(app)
    with bank.delivery_lock:
        with bank.writing() as session:
            refunds.complete_due(session, now)
        with bank.db.session() as session:
            moment = now or utcnow()
            due = session.scalars(
                select(Delivery)
                .where(Delivery.status == "pending", Delivery.next_attempt_at <= moment)
                .order_by(Delivery.id)
            ).all()
            merchants = {m.merchant_id: m for m in session.scalars(select(Merchant))}
            for delivery in _order(due, merchants, bank.rng):
                _attempt(bank, session, delivery, merchants[delivery.merchant_id], moment)
                session.commit()
    return len(due)


def backoff_seconds(attempts: int, base_ms: int, max_s: int, rng: random.Random) -> float:
    """Exponential backoff with "equal jitter": half the step fixed, half random."""
    ceiling = min(float(max_s), base_ms / 1000 * 2 ** max(attempts - 1, 0))
    return ceiling / 2 + rng.uniform(0, ceiling / 2)


def _order(
    due: Sequence[Delivery], merchants: dict[str, Merchant], rng: random.Random
) -> list[Delivery]:
    """Creation order, except that ``out_of_order`` merchants' events swap places."""
    ordered = list(due)
    slots = [
        i for i, d in enumerate(due) if faults.effective(merchants[d.merchant_id])["out_of_order"]
    ]
    if len(slots) > 1:
        chosen = [due[i] for i in slots]
        mixed = chosen[:]
        rng.shuffle(mixed)
        if mixed == chosen:
            mixed.reverse()  # a shuffle may leave the order as it was; the fault promises not
        for slot, delivery in zip(slots, mixed, strict=True):
            ordered[slot] = delivery
    return ordered


def _attempt(
    bank: state.SandboxBank,
    session: Session,
    delivery: Delivery,
    merchant: Merchant,
    now: datetime,
) -> None:
    knobs = faults.effective(merchant)
    delivery.attempts += 1
    dropped = faults.drops(knobs, delivery.event_id, delivery.attempts)
    if dropped:
        _record(session, delivery, None, dropped, dropped=True)
        _log_attempt(delivery, None, dropped)
        _retry_later(bank, delivery, now, None, dropped)
        return
    if knobs["delay_ms"]:
        time.sleep(int(knobs["delay_ms"]) / 1000)
    wrong = bool(knobs["wrong_signature"])
    secret = new_webhook_secret() if wrong else merchant.webhook_secret
    code, error = _send(bank, merchant.callback_url, delivery, secret)
    _record(session, delivery, code, error, wrong_signature=wrong)
    _log_attempt(delivery, code, error)
    if code is None or not 200 <= code < 300:
        _retry_later(bank, delivery, now, code, error)
        return
    delivery.status, delivery.delivered_at = "delivered", utcnow()
    delivery.last_status_code, delivery.last_error = code, None
    for _ in range(int(knobs["duplicate"])):
        extra_code, extra_error = _send(bank, merchant.callback_url, delivery, secret)
        _record(session, delivery, extra_code, extra_error, wrong_signature=wrong)


def _send(
    bank: state.SandboxBank, url: str, delivery: Delivery, secret: str
) -> tuple[int | None, str | None]:
    sent_at = utcnow()
    headers = {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": Webhook(secret).sign(delivery.event_id, sent_at, delivery.body),
    }
    if delivery.request_id:
        headers["x-request-id"] = delivery.request_id
    timeout = bank.settings.delivery_timeout_s
    try:
        response = requests.post(
            url,
            data=delivery.body.encode("utf-8"),
            headers=headers,
            timeout=(timeout, timeout),
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500]
    return response.status_code, None if response.ok else response.text[:500]


def _log_attempt(delivery: Delivery, code: int | None, error: str | None) -> None:
    """One line per attempt, carrying the request id of what caused the event."""
    token = logging_setup.request_id.set(delivery.request_id)
    try:
        log.info(
            "callback %s (%s) attempt %d: %s",
            delivery.event_id,
            delivery.type,
            delivery.attempts,
            code if error is None else f"{code or 'not sent'} {error[:200]}",
        )
    finally:
        logging_setup.request_id.reset(token)


def _record(
    session: Session,
    delivery: Delivery,
    code: int | None,
    error: str | None,
    *,
    dropped: bool = False,
    wrong_signature: bool = False,
) -> None:
    session.add(
        DeliveryAttempt(
            delivery_id=delivery.id,
            attempted_at=utcnow(),
            status_code=code,
            error=error,
            dropped=dropped,
            wrong_signature=wrong_signature,
        )
    )


def _retry_later(
    bank: state.SandboxBank,
    delivery: Delivery,
    now: datetime,
    code: int | None,
    error: str | None,
) -> None:
    settings = bank.settings
    wait = backoff_seconds(
        delivery.attempts, settings.retry_base_ms, settings.retry_max_s, bank.rng
    )
    delivery.next_attempt_at = now + timedelta(seconds=wait)
    delivery.last_status_code, delivery.last_error = code, error


class DeliveryWorker(threading.Thread):
    """Runs :func:`deliver_due` every ``poll_interval_ms`` until stopped."""

    def __init__(self, app: Flask) -> None:
        super().__init__(name="sandbox-bank-delivery", daemon=True)
        self._app = app
        self._stopping = threading.Event()
        self._interval = state.of(app).settings.poll_interval_ms / 1000

    def run(self) -> None:
        while not self._stopping.is_set():
            try:
                deliver_due(self._app)
            except Exception:  # keep delivering whatever one round's problem was
                self._app.logger.exception("sandbox bank: callback delivery round failed")
            self._stopping.wait(self._interval)

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self.is_alive():
            self.join(timeout)
