"""The second road to the truth: asking the bank when its callback does not come.

A callback can be lost (a network fault, a bad signature, a bank outage). So a pending QR
payment is asked of the bank over its authenticated API (``GET /v1/payments/{reference}``,
docs/bank-api.md) once ``[payments] bank_poll_after_seconds`` have passed without its callback,
then again at intervals growing by ``bank_poll_backoff`` up to
``bank_poll_max_interval_seconds``, until it ends. At its expiry time it is asked once more, so
a payment paid at the bank is never expired here; a bank that does not answer is asked again
with backoff, ``expiry_bank_attempts`` times, before the payment expires without its word (and
is flagged). A submitted refund is asked the same way (``GET /v1/refunds/{refund_id}``).

The bank's answer is stored as an inbound event and applied by the callback's own handler
(:func:`callbacks.receive_answer`), so a poll and a callback for the same payment change it
once, and a callback that arrives after the poll changes nothing.

Each question is one job; the next one is queued by the job before, in its transaction. The
bank is called before the job's first write, so no row is locked while it answers.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from gateway.adapters import metrics
from gateway.adapters.bank_client import BankClient
from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, Refund, utcnow
from gateway.domain.payment import OPEN_STATES, RefundStatus
from gateway.errors import BankNotConfigured, BankRejected, BankUnavailable
from gateway.services import jobs
from gateway.services.bank import callbacks
from gateway.services.payments import qr_payments, refunds
from gateway.services.payments.lifecycle import flag_attention
from gateway.settings import PaymentSettings

ACTOR = "system:bank-poll"
# The bank's words for a payment it holds (docs/bank-api.md, GET /v1/payments/{reference}).
PAID_AT_THE_BANK = frozenset({"succeeded", "refunded", "partially_refunded"})
REFUND_ENDED = frozenset({"succeeded", "failed"})
# A refund the bank never finishes is asked this often, then left to a person.
REFUND_POLLS = 60
# The first look at a job's subject only reads (gateway.adapters.db: a plain BEGIN on SQLite).
READ_ONLY = {"kassa_readonly": True}


@dataclass(frozen=True, slots=True)
class PollSettings:
    after: float = 20
    backoff: float = 1.5
    max_interval: float = 120
    expiry_attempts: int = 5

    @classmethod
    def from_settings(cls, settings: PaymentSettings) -> PollSettings:
        return cls(
            settings.bank_poll_after_seconds,
            settings.bank_poll_backoff,
            settings.bank_poll_max_interval_seconds,
            settings.expiry_bank_attempts,
        )

    def interval(self, n: int) -> float:
        """Seconds to the question after the ``n``-th one (the first waits ``after``)."""
        first = self.after or self.max_interval
        return float(min(first * self.backoff ** min(n, 64), self.max_interval))


@dataclass(frozen=True, slots=True)
class Answer:
    """What the bank said: its body (None: it does not know it), or why it could not be asked."""

    body: dict[str, Any] | None = None
    trouble: str | None = None
    configured: bool = True


def ask(question: Callable[[], dict[str, Any] | None], subject: str = "payment") -> Answer:
    """The bank's answer, counted by outcome (``/metrics``: ``kassa_bank_polls_total``)."""
    started = time.perf_counter()
    answer = _ask(question)
    if not answer.configured:
        outcome = "not_configured"
    elif answer.trouble is not None:
        outcome = "no_answer"
    else:
        outcome = "unknown" if answer.body is None else "answered"
    metrics.POLLS.labels(subject=subject, outcome=outcome).inc()
    metrics.POLL_SECONDS.labels(subject=subject).observe(time.perf_counter() - started)
    return answer


def _ask(question: Callable[[], dict[str, Any] | None]) -> Answer:
    try:
        return Answer(question())
    except BankNotConfigured as exc:
        return Answer(trouble=str(exc), configured=False)
    except (BankUnavailable, BankRejected) as exc:
        return Answer(trouble=str(exc))


def watch_payment(client: Callable[[], BankClient], settings: PollSettings) -> jobs.Handler:
    """Job handler: ask the bank about a pending QR payment; apply, expire or ask again."""

    def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        reference = _open_payment(uow, payload["payment_id"])
        if reference is None:
            return  # paid by its callback, cancelled, or expired: nothing to ask
        answer = ask(lambda: client().payment_status(reference))
        payment = uow.session.scalar(
            select(Payment).where(Payment.id == payload["payment_id"]).with_for_update()
        )
        if payment is None or payment.status not in OPEN_STATES:
            return
        if answer.body is not None and answer.body.get("status") in PAID_AT_THE_BANK:
            apply_payment_answer(uow, answer.body)
            if payment.status not in OPEN_STATES:
                return
        now = utcnow()
        n = int(payload.get("n", 0))
        if payment.expires_at is not None and payment.expires_at > now:
            next_at = min(now + timedelta(seconds=settings.interval(n)), payment.expires_at)
            _again(uow, payment, payload, n, next_at)
        elif answer.trouble is None or not answer.configured:
            asked = "not paid at the bank" if answer.configured else "bank not configured"
            qr_payments.expire(uow, payment, {"bank": asked})
        else:
            _expire_unless_the_bank_answers(uow, payment, payload, n, answer, settings)

    return handle


def apply_payment_answer(uow: UnitOfWork, body: dict[str, Any]) -> callbacks.EventStatus:
    """The bank's ``GET /v1/payments/{reference}`` answer, applied as ``payment.succeeded``."""
    return callbacks.receive_answer(
        uow,
        "payment.succeeded",
        body,
        f"poll:{body.get('bank_payment_id')}",
        f"GET /v1/payments/{body.get('reference')}",
    )


def _open_payment(uow: UnitOfWork, payment_id: str) -> str | None:
    """The payment's reference if it is still open; read, then let go of the transaction so
    no lock is held while the bank answers."""
    uow.session.connection(execution_options=READ_ONLY)  # SQLite: no writer's lock to read
    row = uow.session.execute(
        select(Payment.status, Payment.reference).where(Payment.id == payment_id)
    ).first()
    uow.rollback()
    if row is None or row.status not in OPEN_STATES:
        return None
    return str(row.reference)


def _again(
    uow: UnitOfWork, payment: Payment, payload: dict[str, Any], n: int, at: datetime
) -> None:
    jobs.enqueue(
        uow,
        qr_payments.POLL_JOB,
        {**payload, "reference": payment.reference, "n": n + 1},
        run_at=at,
        dedupe_key=f"watch:{payment.id}:{n + 1}",
    )


def _expire_unless_the_bank_answers(
    uow: UnitOfWork,
    payment: Payment,
    payload: dict[str, Any],
    n: int,
    answer: Answer,
    settings: PollSettings,
) -> None:
    """Expiry is due but the bank did not answer: ask again with backoff, a few times, then
    expire without its word and ask a person to check with the bank."""
    tries = int(payload.get("expiry_tries", 0)) + 1
    if tries < settings.expiry_attempts:
        wait = min(2.0**tries, settings.max_interval) * (0.5 + random.random() / 2)
        _again(
            uow,
            payment,
            {**payload, "expiry_tries": tries},
            n,
            utcnow() + timedelta(seconds=wait),
        )
        return
    qr_payments.expire(uow, payment, {"bank": f"not answering: {answer.trouble}"})
    flag_attention(
        uow,
        payment,
        qr_payments.EXPIRED_WITHOUT_BANK,
        ACTOR,
        {"bank_error": answer.trouble},
    )


def watch_refund(client: Callable[[], BankClient], settings: PollSettings) -> jobs.Handler:
    """Job handler: ask the bank about a submitted refund; apply its result or ask again."""

    def handle(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        refund_id = payload["refund_id"]
        uow.session.connection(execution_options=READ_ONLY)
        status = uow.session.scalar(select(Refund.status).where(Refund.id == refund_id))
        uow.rollback()
        if status not in (RefundStatus.REQUESTED, RefundStatus.SUBMITTED):
            return
        answer = ask(lambda: client().refund_status(refund_id), "refund")
        body = answer.body
        if body is not None and body.get("status") in REFUND_ENDED:
            callbacks.receive_answer(
                uow,
                f"refund.{body['status']}",
                body,
                f"poll:{body.get('bank_refund_id')}:{body['status']}",
                f"GET /v1/refunds/{refund_id}",
            )
            return
        n = int(payload.get("n", 0))
        if n + 1 >= REFUND_POLLS or not answer.configured:
            return
        jobs.enqueue(
            uow,
            refunds.POLL_JOB,
            {"refund_id": refund_id, "n": n + 1},
            run_at=utcnow() + timedelta(seconds=settings.interval(n)),
            dedupe_key=f"refund-watch:{refund_id}:{n + 1}",
        )

    return handle
