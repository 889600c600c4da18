"""The outbox: events for the merchant's webhook endpoints, written in the transaction of the
change they report, and sent by the worker.

:func:`publish` adds one delivery per matching active endpoint and queues a job for it in the
caller's unit of work, so an event exists if and only if its change commits. The job
(:data:`DELIVER_JOB`, run by ``kassa worker``) makes one attempt: it reads the delivery, lets
its transaction go (no lock is held while the receiver answers), sends the stored body signed
with the endpoint's secret under the delivery's ``webhook-id``, then logs the attempt and, if
it failed, queues the next attempt after :data:`gateway.domain.webhooks.RETRY_DELAYS`. A 410
Gone pauses the endpoint. Every attempt of an event repeats its ``webhook-id`` and body (with a
fresh timestamp and signature), so a receiver that saw it already can drop it.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Exists, select
from sqlalchemy.orm import InstrumentedAttribute

from gateway.adapters import webhook_sender
from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Job, utcnow
from gateway.adapters.webhook_models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from gateway.domain import webhooks
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.jobs import Handler
from gateway.services.staff import audit
from gateway.services.webhooks import signing

DELIVER_JOB = "deliver_webhook"
SYSTEM = "system:webhooks"
# Merchants known, in this unit of work, to have no active endpoint (see note_none_active).
_NONE_ACTIVE = "kassa.webhooks.none_active"


def any_active(merchant_id: ColumnElement[int] | InstrumentedAttribute[int]) -> Exists:
    """Whether the merchant has an active endpoint: a column for a statement that reads the
    changed row anyway (a bank callback's payment lock), so that no further round trip asks."""
    return (
        select(WebhookEndpoint.id)
        .where(WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.status == "active")
        .exists()
    )


def note_none_active(uow: UnitOfWork, merchant_id: int) -> None:
    """The merchant had no active endpoint when this unit of work looked (:func:`any_active`):
    its :func:`publish` calls queue nothing without asking again. Adding or resuming an
    endpoint in the same unit of work forgets it."""
    uow.session.info.setdefault(_NONE_ACTIVE, set()).add(merchant_id)


def known_none_active(uow: UnitOfWork, merchant_id: int) -> bool:
    """True if this unit of work knows the merchant has no active endpoint (so that a caller
    need not build an event's data that :func:`publish` would queue for nobody)."""
    return merchant_id in uow.session.info.get(_NONE_ACTIVE, ())


def forget_none_active(uow: UnitOfWork, merchant_id: int) -> None:
    uow.session.info.get(_NONE_ACTIVE, set()).discard(merchant_id)


def publish(
    uow: UnitOfWork, *, merchant_id: int | str, event_type: str, data: dict[str, Any]
) -> None:
    """Queue ``event_type`` with ``data`` for every active endpoint of the merchant that
    subscribed to it, inside the caller's transaction (not committed here).

    ``merchant_id`` is ``merchants.id`` (its decimal text is taken too). ``data`` must be
    JSON-serialisable; its strings are scrubbed of card numbers before anything is stored.
    """
    webhooks.check_event_type(event_type)
    merchant = _merchant_id(merchant_id)
    if known_none_active(uow, merchant):
        return
    endpoints = uow.session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == merchant, WebhookEndpoint.status == "active")
        .order_by(WebhookEndpoint.id)
    ).all()
    chosen = [e for e in endpoints if webhooks.matches(list(e.event_types), event_type)]
    if not chosen:
        return
    _queue(uow, merchant, chosen, event_type, data)


def send_test(uow: UnitOfWork, merchant_id: int, endpoint_id: int, actor: str) -> WebhookDelivery:
    """Queue a ``webhook.test`` event for one active endpoint, whatever it subscribed to."""
    endpoint = _endpoint(uow, merchant_id, endpoint_id)
    if endpoint.status != "active":
        raise Conflict(f"the endpoint is {endpoint.status}: resume it before sending a test")
    data = {"endpoint_id": endpoint.id, "message": "A test event from Kassa."}
    (delivery,) = _queue(uow, merchant_id, [endpoint], webhooks.TEST_EVENT, data)
    audit.record(
        uow,
        "webhook.test_sent",
        actor=actor,
        merchant_id=merchant_id,
        target=("webhook_endpoint", endpoint.id),
        after={"message_id": delivery.message_id},
    )
    return delivery


def send_now(
    uow: UnitOfWork, merchant_id: int, delivery_id: int, actor: str, *, now: datetime | None = None
) -> WebhookDelivery:
    """Send a delivery again now (a failed or delivered one once more; a pending one without
    waiting for its next attempt), under its own ``webhook-id``."""
    delivery = uow.session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None or delivery.merchant_id != merchant_id:
        raise NotFound(f"no webhook delivery {delivery_id}")
    if delivery.endpoint.status != "active":
        raise Conflict(f"the endpoint is {delivery.endpoint.status}: resume it first")
    before = delivery.status
    moment = now or utcnow()
    delivery.status, delivery.next_attempt_at = "pending", moment
    _queue_attempt(uow, delivery, moment)
    audit.record(
        uow,
        "webhook.delivery_resent",
        actor=actor,
        merchant_id=merchant_id,
        target=("webhook_delivery", delivery.id),
        before={"status": before, "attempts": delivery.attempts},
        after={"message_id": delivery.message_id, "event_type": delivery.event_type},
    )
    return delivery


@dataclass(frozen=True, slots=True)
class _Attempt:
    delivery_id: int
    url: str
    secret: str
    message_id: str
    body: str


def deliver(
    *, connect_timeout: float = 3.0, read_timeout: float = 10.0, allow_private: bool = False
) -> Handler:
    """The job handler that makes one attempt at a delivery (see the module docstring);
    ``allow_private`` is ``[webhooks] allow_private_addresses``."""

    def handler(uow: UnitOfWork, payload: dict[str, Any]) -> None:
        attempt = _prepare(uow, int(payload["delivery_id"]))
        if attempt is None:
            return  # nothing to send; what changed (if anything) commits with the job
        uow.rollback()  # hold nothing while the receiver answers
        sent_at = utcnow()
        result = webhook_sender.send(
            attempt.url,
            attempt.secret,
            attempt.message_id,
            attempt.body,
            sent_at,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            allow_private=allow_private,
        )
        _record(uow, attempt.delivery_id, sent_at, result)

    return handler


def _queue(
    uow: UnitOfWork,
    merchant_id: int,
    endpoints: list[WebhookEndpoint],
    event_type: str,
    data: dict[str, Any],
) -> list[WebhookDelivery]:
    now = utcnow()
    message_id = f"msg_{uuid.uuid4().hex}"
    body = webhooks.message_body(event_type, data, now)
    deliveries = [
        WebhookDelivery(
            endpoint_id=endpoint.id,
            merchant_id=merchant_id,
            message_id=message_id,
            event_type=event_type,
            body=body,
            status="pending",
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint in endpoints
    ]
    uow.session.add_all(deliveries)
    uow.session.flush()
    for delivery in deliveries:
        _queue_attempt(uow, delivery, now)
    return deliveries


def _queue_attempt(uow: UnitOfWork, delivery: WebhookDelivery, run_at: datetime) -> None:
    """The job for the delivery's next attempt, at ``run_at`` (moved there if it is queued)."""
    key = f"webhook:{delivery.id}:{delivery.attempts + 1}"
    queued = uow.session.scalar(select(Job).where(Job.dedupe_key == key))
    if queued is None:
        jobs.enqueue(uow, DELIVER_JOB, {"delivery_id": delivery.id}, run_at=run_at, dedupe_key=key)
    elif queued.status == "pending":
        queued.run_at = run_at
    elif queued.status != "running":  # that attempt ran already (a lease that ran out)
        jobs.enqueue(uow, DELIVER_JOB, {"delivery_id": delivery.id}, run_at=run_at)


def _prepare(uow: UnitOfWork, delivery_id: int) -> _Attempt | None:
    delivery = uow.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.status != "pending":
        return None
    endpoint = delivery.endpoint
    if endpoint.status != "active":
        delivery.status, delivery.next_attempt_at = "skipped", None
        delivery.last_error = f"not sent: the endpoint is {endpoint.status}"
        return None
    return _Attempt(
        delivery.id,
        endpoint.url,
        signing.unseal(endpoint.secret_sealed),
        delivery.message_id,
        delivery.body,
    )


def _record(
    uow: UnitOfWork, delivery_id: int, sent_at: datetime, result: webhook_sender.SendResult
) -> None:
    delivery = uow.session.get(WebhookDelivery, delivery_id, with_for_update=True)
    if delivery is None:
        return  # its endpoint was deleted meanwhile
    delivery.attempts += 1
    uow.session.add(
        WebhookAttempt(
            delivery_id=delivery.id,
            number=delivery.attempts,
            attempted_at=sent_at,
            status_code=result.status_code,
            latency_ms=result.latency_ms,
            error=result.error,
            response_snippet=result.response_snippet,
        )
    )
    delivery.last_status_code, delivery.last_error = result.status_code, result.error
    if delivery.status != "pending":
        return  # another attempt finished it meanwhile (a lease that ran out)
    if webhooks.succeeded(result.status_code):
        delivery.status, delivery.delivered_at, delivery.next_attempt_at = (
            "delivered",
            utcnow(),
            None,
        )
        return
    if result.status_code == webhooks.GONE:
        delivery.status, delivery.next_attempt_at = "failed", None
        _pause_gone(uow, delivery.endpoint)
        return
    delay = webhooks.retry_delay(delivery.attempts)
    if delay is None:
        delivery.status, delivery.next_attempt_at = "failed", None
        return
    due = utcnow() + delay * random.uniform(1.0, 1.2)  # jitter: a recovered receiver is not flooded
    delivery.next_attempt_at = due
    _queue_attempt(uow, delivery, due)


def _pause_gone(uow: UnitOfWork, endpoint: WebhookEndpoint) -> None:
    if endpoint.status != "active":
        return
    endpoint.status, endpoint.updated_at = "paused", utcnow()
    endpoint.paused_reason = "the receiver answered 410 Gone"
    audit.record(
        uow,
        "webhook.endpoint_paused",
        actor=SYSTEM,
        merchant_id=endpoint.merchant_id,
        target=("webhook_endpoint", endpoint.id),
        before={"status": "active"},
        after={"status": "paused", "reason": endpoint.paused_reason},
    )


def _endpoint(uow: UnitOfWork, merchant_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = uow.session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.merchant_id != merchant_id:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


def _merchant_id(value: int | str) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise InvalidInput(f"a merchant id is a merchants.id number, not {value!r}")
