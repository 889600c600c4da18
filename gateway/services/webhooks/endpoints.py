"""A merchant's webhook endpoints: add (the secret is returned once), pause, resume, delete,
and read them with their deliveries and attempts. Every change is audited.

Deleting keeps the endpoint's row and delivery log (status ``deleted``, secret erased), so what
was sent stays explainable; a deleted endpoint gets nothing and cannot come back.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import utcnow
from gateway.adapters.webhook_models import WebhookAttempt, WebhookDelivery, WebhookEndpoint
from gateway.domain import webhooks
from gateway.domain.card_data import scrub_card_numbers
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.staff import audit
from gateway.services.webhooks import outbox, signing

MAX_DESCRIPTION = 200


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    endpoint: WebhookEndpoint
    secret: str  # shown to the manager once; Kassa keeps it only encrypted


def create_endpoint(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    url: str,
    event_types: list[str],
    description: str | None,
    actor: str,
) -> NewEndpoint:
    """A new active endpoint with a fresh signing secret (not committed)."""
    checked_url = webhooks.check_url(url)
    patterns = webhooks.check_patterns(event_types)
    text = (description or "").strip()
    if len(text) > MAX_DESCRIPTION:
        raise InvalidInput(f"the description is longer than {MAX_DESCRIPTION} characters")
    secret = signing.new_secret()
    now = utcnow()
    endpoint = WebhookEndpoint(
        merchant_id=merchant_id,
        url=checked_url,
        description=scrub_card_numbers(text) or None,
        event_types=patterns,
        status="active",
        secret_sealed=signing.seal(secret),
        created_by=actor[:64],
        created_at=now,
        updated_at=now,
    )
    uow.session.add(endpoint)
    uow.session.flush()
    outbox.forget_none_active(uow, merchant_id)
    audit.record(
        uow,
        "webhook.endpoint_created",
        actor=actor,
        merchant_id=merchant_id,
        target=("webhook_endpoint", endpoint.id),
        after={"url": checked_url, "event_types": patterns, "description": endpoint.description},
    )
    return NewEndpoint(endpoint, secret)


def pause(uow: UnitOfWork, merchant_id: int, endpoint_id: int, actor: str) -> WebhookEndpoint:
    """Stop sending to the endpoint; queued deliveries are skipped."""
    return _set_status(uow, merchant_id, endpoint_id, "paused", actor, "paused by a manager")


def resume(uow: UnitOfWork, merchant_id: int, endpoint_id: int, actor: str) -> WebhookEndpoint:
    """Send new events to the endpoint again (skipped ones can be resent one by one)."""
    return _set_status(uow, merchant_id, endpoint_id, "active", actor, None)


def delete(uow: UnitOfWork, merchant_id: int, endpoint_id: int, actor: str) -> WebhookEndpoint:
    """The endpoint gets nothing more and its secret is erased; its log stays readable."""
    endpoint = _set_status(uow, merchant_id, endpoint_id, "deleted", actor, None)
    endpoint.secret_sealed = ""
    return endpoint


def _set_status(
    uow: UnitOfWork,
    merchant_id: int,
    endpoint_id: int,
    status: str,
    actor: str,
    reason: str | None,
) -> WebhookEndpoint:
    endpoint = get_endpoint(uow, merchant_id, endpoint_id, for_update=True)
    if endpoint.status == "deleted":
        raise Conflict("the endpoint is deleted; add a new one instead")
    if endpoint.status == status:
        raise Conflict(f"the endpoint is {status} already")
    before = endpoint.status
    endpoint.status, endpoint.paused_reason, endpoint.updated_at = status, reason, utcnow()
    outbox.forget_none_active(uow, merchant_id)
    audit.record(
        uow,
        {"paused": "webhook.endpoint_paused", "active": "webhook.endpoint_resumed"}.get(
            status, "webhook.endpoint_deleted"
        ),
        actor=actor,
        merchant_id=merchant_id,
        target=("webhook_endpoint", endpoint.id),
        before={"status": before},
        after={"status": status, "url": endpoint.url},
    )
    return endpoint


def get_endpoint(
    uow: UnitOfWork, merchant_id: int, endpoint_id: int, *, for_update: bool = False
) -> WebhookEndpoint:
    endpoint = uow.session.get(WebhookEndpoint, endpoint_id, with_for_update=for_update)
    if endpoint is None or endpoint.merchant_id != merchant_id:
        raise NotFound(f"no webhook endpoint {endpoint_id}")
    return endpoint


@dataclass(frozen=True, slots=True)
class EndpointSummary:
    endpoint: WebhookEndpoint
    pending: int
    failed: int


def list_endpoints(uow: UnitOfWork, merchant_id: int) -> list[EndpointSummary]:
    """The merchant's endpoints that are not deleted, with their open and failed deliveries."""
    endpoints = uow.session.scalars(
        select(WebhookEndpoint)
        .where(WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.status != "deleted")
        .order_by(WebhookEndpoint.id)
    ).all()
    counts = {
        (endpoint_id, status): n
        for endpoint_id, status, n in uow.session.execute(
            select(WebhookDelivery.endpoint_id, WebhookDelivery.status, func.count())
            .where(
                WebhookDelivery.merchant_id == merchant_id,
                WebhookDelivery.status.in_(("pending", "failed")),
            )
            .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
        )
    }
    return [
        EndpointSummary(e, counts.get((e.id, "pending"), 0), counts.get((e.id, "failed"), 0))
        for e in endpoints
    ]


def deliveries(
    uow: UnitOfWork, merchant_id: int, endpoint_id: int, *, limit: int = 100
) -> list[WebhookDelivery]:
    """The endpoint's newest deliveries first."""
    get_endpoint(uow, merchant_id, endpoint_id)
    return list(
        uow.session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint_id)
            .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
            .limit(limit)
        )
    )


def get_delivery(uow: UnitOfWork, merchant_id: int, delivery_id: int) -> WebhookDelivery:
    delivery = uow.session.get(WebhookDelivery, delivery_id)
    if delivery is None or delivery.merchant_id != merchant_id:
        raise NotFound(f"no webhook delivery {delivery_id}")
    return delivery


def attempts(uow: UnitOfWork, delivery: WebhookDelivery) -> list[WebhookAttempt]:
    """Every attempt at ``delivery``, first to last."""
    return list(
        uow.session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id == delivery.id)
            .order_by(WebhookAttempt.number, WebhookAttempt.id)
        )
    )
