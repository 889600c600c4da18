"""The portal's webhook pages through Flask's test client, on SQLite and PostgreSQL: a manager
adds an endpoint (the secret shown once), sends a test event that the worker delivers to a real
loopback receiver, reads the attempts, sends a delivery again, pauses and deletes; every change
is audited, and another merchant's manager sees none of it."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry
from gateway.adapters.webhook_models import WebhookEndpoint
from gateway.services.jobs import run_due_jobs
from gateway.services.registry import job_handlers
from gateway.services.webhooks import outbox
from tests.conftest import app_config
from tests.factories import second_merchant
from tests.integration.test_portal_pages import log_in, staff


def handlers(db: Database) -> dict[str, Any]:
    """The worker's delivery handler, allowed to reach the loopback receiver."""
    config = app_config(db, webhooks={"allow_private_addresses": True})
    return {outbox.DELIVER_JOB: job_handlers(config)[outbox.DELIVER_JOB]}


def csrf(page: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert found, page
    return found.group(1)


@pytest.fixture
def manager(app: Any, demo: Any) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    return client


@pytest.fixture
def receiver() -> Iterator[tuple[list[tuple[str, dict[str, str]]], str]]:
    got: list[tuple[str, dict[str, str]]] = []

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        got.append((request.get_data(as_text=True), dict(request.headers)))
        return Response(status=200)(environ, start_response)

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield got, f"http://127.0.0.1:{server.server_port}/kassa"
    server.shutdown()
    thread.join(5)


def add_endpoint(client: FlaskClient, url: str) -> tuple[int, str]:
    page = client.get("/portal/webhooks").get_data(as_text=True)
    response = client.post(
        "/portal/webhooks",
        data={
            "csrf_token": csrf(page),
            "url": url,
            "description": "Our ERP",
            "event_types": ["payment.*", "alert.*"],
            "more_types": "refund.succeeded",
        },
    )
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    secret = re.search(r'id="webhook-secret">(whsec_[A-Za-z0-9+/=]+)<', text)
    endpoint = re.search(r'data-endpoint-id="(\d+)"', text)
    assert secret and endpoint, text
    return int(endpoint.group(1)), secret.group(1)


def test_a_manager_adds_tests_and_manages_an_endpoint(
    manager: FlaskClient, db: Database, receiver: Any
) -> None:
    got, url = receiver
    endpoint_id, secret = add_endpoint(manager, url)
    listing = manager.get("/portal/webhooks").get_data(as_text=True)
    assert url in listing and "payment.*, alert.*, refund.succeeded" in listing
    assert secret not in listing  # shown once only
    with db.unit_of_work(readonly=True) as uow:
        stored = uow.session.get_one(WebhookEndpoint, endpoint_id)
        assert secret not in stored.secret_sealed  # kept encrypted

    detail = manager.get(f"/portal/webhooks/{endpoint_id}").get_data(as_text=True)
    response = manager.post(
        f"/portal/webhooks/{endpoint_id}/test", data={"csrf_token": csrf(detail)}
    )
    assert response.status_code == 303
    run_due_jobs(db, handlers(db))
    ((body, headers),) = got
    assert Webhook(secret).verify(body, headers)["type"] == "webhook.test"

    detail = manager.get(f"/portal/webhooks/{endpoint_id}").get_data(as_text=True)
    delivery_id = re.search(r'data-delivery-id="(\d+)"', detail)
    assert delivery_id and "webhook.test" in detail and "delivered" in detail
    page = manager.get(f"/portal/webhooks/deliveries/{delivery_id.group(1)}")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and headers["Webhook-Id"] in text
    assert 'data-attempt="1"' in text and ">200<" in text
    resend = manager.post(
        f"/portal/webhooks/deliveries/{delivery_id.group(1)}/send", data={"csrf_token": csrf(text)}
    )
    assert resend.status_code == 303
    run_due_jobs(db, handlers(db))
    assert [h["Webhook-Id"] for _, h in got] == [headers["Webhook-Id"]] * 2

    token = csrf(detail)
    assert (
        manager.post(
            f"/portal/webhooks/{endpoint_id}/pause", data={"csrf_token": token}
        ).status_code
        == 303
    )
    paused = manager.get(f"/portal/webhooks/{endpoint_id}").get_data(as_text=True)
    assert 'id="endpoint-status">paused<' in paused and "Resume" in paused
    manager.post(f"/portal/webhooks/{endpoint_id}/delete", data={"csrf_token": token})
    assert url not in manager.get("/portal/webhooks").get_data(as_text=True)
    with db.unit_of_work(readonly=True) as uow:
        actions = uow.session.scalars(
            select(AuditEntry.action)
            .where(AuditEntry.action.like("webhook.%"))
            .order_by(AuditEntry.id)
        ).all()
        assert actions == [
            "webhook.endpoint_created",
            "webhook.test_sent",
            "webhook.delivery_resent",
            "webhook.endpoint_paused",
            "webhook.endpoint_deleted",
        ]
        assert uow.session.get_one(WebhookEndpoint, endpoint_id).secret_sealed == ""


def test_a_bad_url_or_no_events_is_refused_with_the_reason(manager: FlaskClient) -> None:
    token = csrf(manager.get("/portal/webhooks").get_data(as_text=True))
    response = manager.post(
        "/portal/webhooks",
        data={"csrf_token": token, "url": "ftp://erp.example/x", "event_types": ["payment.*"]},
    )
    assert response.status_code == 422 and "http:// or https:// URL" in response.get_data(
        as_text=True
    )
    response = manager.post(
        "/portal/webhooks", data={"csrf_token": token, "url": "https://erp.example/x"}
    )
    assert response.status_code == 422 and "at least one kind of event" in response.get_data(
        as_text=True
    )


def test_another_merchant_sees_no_endpoint_of_this_one(
    app: Any, manager: FlaskClient, db: Database
) -> None:
    endpoint_id, _secret = add_endpoint(manager, "https://books.shop-one.example/kassa")
    other = second_merchant(db)
    client = app.test_client()
    assert log_in(client, other["manager"], other["password"]).status_code == 303
    assert "shop-one" not in client.get("/portal/webhooks").get_data(as_text=True)
    assert client.get(f"/portal/webhooks/{endpoint_id}").status_code == 404
    token = csrf(client.get("/portal/webhooks").get_data(as_text=True))
    assert (
        client.post(
            f"/portal/webhooks/{endpoint_id}/delete", data={"csrf_token": token}
        ).status_code
        == 404
    )
