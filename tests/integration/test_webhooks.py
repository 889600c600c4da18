"""Signed outbound webhooks, end to end on SQLite and PostgreSQL: a payment's change published
in its transaction, delivered by the worker's real job functions to a real HTTP receiver on
loopback that verifies the Standard Webhooks signature with the ``standardwebhooks`` package.

Retries need no sleeping: a failed attempt's next one is queued for later (checked: a run now
sends nothing), and ``outbox.send_now`` moves it to now, as the portal's "Send now" does.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pytest
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from gateway.adapters.db import Database
from gateway.adapters.models import AuditEntry, Job, Merchant, Till, utcnow
from gateway.adapters.webhook_models import WebhookDelivery, WebhookEndpoint
from gateway.domain.money import Money
from gateway.services.jobs import Handler, run_due_jobs
from gateway.services.payments import qr_payments
from gateway.services.registry import job_handlers
from gateway.services.settlement.reconciliation import ReconSettings, reconcile_day
from gateway.services.staff.auth import TillContext
from gateway.services.webhooks import endpoints, outbox
from tests.conftest import app_config
from tests.factories import paid_by_bank

CARD = "4111 1111 1111 1111"


@dataclass
class Receiver:
    """The merchant's system: records each request raw, answers with the queued statuses
    (then 204), and checks the signature with the secret it was given."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        request = Request(environ)
        body = request.get_data(as_text=True)
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            Webhook(self.secret).verify(body, headers)
            verified = True
        except WebhookVerificationError:
            verified = False
        with self.lock:
            status = self.answers.pop(0) if self.answers else 204
            self.requests.append(
                {"headers": headers, "body": body, "verified": verified, "status": status}
            )
        return Response("nope" if status >= 300 else "", status=status)(environ, start_response)

    def of_type(self, event_type: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if json.loads(r["body"])["type"] == event_type]


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    app = Receiver()
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield app, f"http://127.0.0.1:{server.server_port}/hooks/kassa"
    server.shutdown()
    thread.join(5)


@pytest.fixture
def till(db: Database, demo: dict[str, Any]) -> TillContext:
    with db.unit_of_work() as uow:
        found = uow.session.scalars(select(Till).order_by(Till.id)).first()
        assert found is not None
        return TillContext(found.id, found.store_id, found.store.merchant_id, found.label)


def delivery_handlers(db: Database, *, allow_private: bool = True) -> dict[str, Handler]:
    """The worker's own handler for deliveries, from the registry `kassa worker` uses (the
    receivers here are on loopback, which the default configuration refuses)."""
    config = app_config(db, webhooks={"allow_private_addresses": allow_private})
    return {outbox.DELIVER_JOB: job_handlers(config)[outbox.DELIVER_JOB]}


@pytest.fixture
def handlers(db: Database) -> dict[str, Handler]:
    return delivery_handlers(db)


def subscribe(
    db: Database, merchant_id: int, url: str, types: list[str], receiver: Receiver | None = None
) -> int:
    with db.unit_of_work() as uow:
        made = endpoints.create_endpoint(
            uow, merchant_id, url=url, event_types=types, description="ERP", actor="test"
        )
        uow.commit()
    if receiver is not None:
        receiver.secret = made.secret
    assert made.secret.startswith("whsec_")
    return made.endpoint.id


def paid_payment(db: Database, till: TillContext, amount: str = "12.34") -> str:
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse(amount, "EUR"), settings=qr_payments.PaymentSettings()
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        uow.commit()
        return payment.id


def deliveries(db: Database, endpoint_id: int) -> list[WebhookDelivery]:
    with db.unit_of_work(readonly=True) as uow:
        found = endpoints.deliveries(uow, till_merchant(db), endpoint_id)
        uow.session.expunge_all()  # read as they are now, after the unit of work
        return found


def till_merchant(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        merchant_id = uow.session.scalar(select(Merchant.id).order_by(Merchant.id))
        assert merchant_id is not None
        return merchant_id


def test_a_paid_payment_reaches_the_receiver_signed(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.*"], app)
    payment_id = paid_payment(db, till)
    assert not app.requests  # nothing leaves before the worker runs
    run_due_jobs(db, handlers)

    (paid,) = app.of_type("payment.paid")
    assert paid["verified"] and paid["status"] == 204
    body = json.loads(paid["body"])
    assert body["data"]["payment_id"] == payment_id
    assert (body["data"]["amount"], body["data"]["currency"]) == ("12.34", "EUR")
    assert body["timestamp"].endswith("Z")
    assert paid["headers"]["webhook-id"].startswith("msg_")
    assert paid["headers"]["webhook-signature"].startswith("v1,")
    log = {d.event_type: d for d in deliveries(db, endpoint_id)}
    assert log["payment.paid"].status == "delivered"
    assert log["payment.paid"].message_id == paid["headers"]["webhook-id"]
    with db.unit_of_work(readonly=True) as uow:
        (attempt,) = endpoints.attempts(uow, log["payment.paid"])
        assert (attempt.number, attempt.status_code, attempt.error) == (1, 204, None)
        assert attempt.latency_ms >= 0


def test_a_wrong_secret_or_a_changed_body_fails_verification(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    subscribe(db, till.merchant_id, url, ["payment.paid"], app)
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    (paid,) = app.of_type("payment.paid")
    Webhook(app.secret).verify(paid["body"], paid["headers"])  # the right secret: fine
    other = endpoints.signing.new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(paid["body"], paid["headers"])
    with pytest.raises(WebhookVerificationError):
        Webhook(app.secret).verify(paid["body"].replace("12.34", "99.99"), paid["headers"])


def test_a_receiver_failing_then_answering_gets_the_same_webhook_id_twice(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    app.answers = [500]
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.paid"], app)
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    (delivery,) = deliveries(db, endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, 500)
    assert delivery.next_attempt_at is not None and delivery.next_attempt_at > utcnow()

    assert run_due_jobs(db, handlers) == 0  # the next attempt waits for its backoff
    assert len(app.requests) == 1
    with db.unit_of_work() as uow:  # what "Send now" in the portal does
        outbox.send_now(uow, till.merchant_id, delivery.id, actor="test")
        uow.commit()
    run_due_jobs(db, handlers)

    first, second = app.requests
    assert first["headers"]["webhook-id"] == second["headers"]["webhook-id"]
    assert first["body"] == second["body"]
    assert first["verified"] and second["verified"]
    (delivery,) = deliveries(db, endpoint_id)
    assert (delivery.status, delivery.attempts) == ("delivered", 2)
    with db.unit_of_work(readonly=True) as uow:
        log = endpoints.attempts(uow, delivery)
        uow.session.expunge_all()
    assert [(a.number, a.status_code) for a in log] == [(1, 500), (2, 204)]
    assert log[0].error == "HTTP 500 INTERNAL SERVER ERROR"
    assert log[0].response_snippet == "nope"


def test_a_rolled_back_change_publishes_nothing(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.*"], app)
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money(500, "EUR"), settings=qr_payments.PaymentSettings()
        )
        uow.session.flush()
        paid_by_bank(uow, payment.id)
        assert uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) >= 1
        # leaving without commit: rolled back
    assert deliveries(db, endpoint_id) == []
    with db.unit_of_work(readonly=True) as uow:
        queued = uow.session.scalar(
            select(func.count()).select_from(Job).where(Job.kind == outbox.DELIVER_JOB)
        )
    assert queued == 0
    run_due_jobs(db, handlers)
    assert app.requests == []


def test_paused_endpoints_get_nothing(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    active = subscribe(db, till.merchant_id, url + "?active", ["payment.paid"], app)
    paused = subscribe(db, till.merchant_id, url + "?paused", ["payment.paid"])
    with db.unit_of_work() as uow:
        endpoints.pause(uow, till.merchant_id, paused, actor="test")
        uow.commit()
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    assert len(app.of_type("payment.paid")) == 1
    assert all(r["verified"] for r in app.requests)
    assert deliveries(db, paused) == []
    assert [d.status for d in deliveries(db, active)] == ["delivered"]


def test_queued_deliveries_of_an_endpoint_paused_meanwhile_are_skipped(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.paid"], app)
    paid_payment(db, till)
    with db.unit_of_work() as uow:
        endpoints.pause(uow, till.merchant_id, endpoint_id, actor="test")
        uow.commit()
    run_due_jobs(db, handlers)
    assert app.requests == []
    (delivery,) = deliveries(db, endpoint_id)
    assert delivery.status == "skipped"


def test_410_gone_pauses_the_endpoint(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    app.answers = [410]
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.paid"], app)
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    (delivery,) = deliveries(db, endpoint_id)
    assert (delivery.status, delivery.last_status_code) == ("failed", 410)
    with db.unit_of_work(readonly=True) as uow:
        endpoint = uow.session.get_one(WebhookEndpoint, endpoint_id)
        assert (endpoint.status, endpoint.paused_reason) == (
            "paused",
            "the receiver answered 410 Gone",
        )
        audited = uow.session.scalars(
            select(AuditEntry.actor).where(AuditEntry.action == "webhook.endpoint_paused")
        ).all()
        assert audited == ["system:webhooks"]
    paid_payment(db, till, "1.00")  # the next event is not even queued for it
    run_due_jobs(db, handlers)
    assert len(app.requests) == 1 and len(deliveries(db, endpoint_id)) == 1


def test_no_full_card_number_is_stored_or_sent(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    subscribe(db, till.merchant_id, url, ["alert.*"], app)
    with db.unit_of_work() as uow:  # the call the anomaly monitoring makes
        outbox.publish(
            uow,
            merchant_id=str(till.merchant_id),
            event_type="alert.raised",
            data={"note": f"card {CARD} declined 5 times", "nested": [{"pan": CARD}]},
        )
        uow.commit()
    run_due_jobs(db, handlers)
    (alert,) = app.of_type("alert.raised")
    assert alert["verified"]
    assert CARD not in alert["body"] and "card 4111 11** **** 1111 declined" in alert["body"]
    assert json.loads(alert["body"])["data"]["nested"][0]["pan"] == "4111 11** **** 1111"


def test_a_reconciled_day_is_published_to_settlement_subscribers(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    app, url = receiver
    subscribe(db, till.merchant_id, url, ["settlement.*"], app)
    recon = ReconSettings.from_settings(app_config(db).reconciliation)
    with db.unit_of_work() as uow:
        run = reconcile_day(uow, till.merchant_id, date(2026, 12, 1), recon, actor="test")
        uow.commit()
        run_id = run.id
    paid_payment(db, till)  # payment events are not what this endpoint asked for
    run_due_jobs(db, handlers)
    (event,) = app.requests
    body = json.loads(event["body"])
    assert body["type"] == "settlement.reconciled" and event["verified"]
    assert body["data"]["day"] == "2026-12-01" and body["data"]["run_id"] == run_id


def test_an_unreachable_receiver_is_retried_and_logged(
    db: Database, till: TillContext, handlers: Any
) -> None:
    server = make_server("127.0.0.1", 0, lambda e, s: [])
    port = server.server_port
    server.server_close()  # a port nobody listens on: connection refused
    endpoint_id = subscribe(db, till.merchant_id, f"http://127.0.0.1:{port}/", ["payment.paid"])
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    (delivery,) = deliveries(db, endpoint_id)
    assert (delivery.status, delivery.attempts, delivery.last_status_code) == ("pending", 1, None)
    assert delivery.last_error is not None and "ConnectionError" in delivery.last_error


def test_by_default_nothing_is_sent_to_a_local_or_private_address(
    db: Database, till: TillContext, receiver: tuple[Receiver, str]
) -> None:
    app, url = receiver
    endpoint_id = subscribe(db, till.merchant_id, url, ["payment.paid"], app)
    paid_payment(db, till)
    run_due_jobs(db, delivery_handlers(db, allow_private=False))
    assert app.requests == []
    (delivery,) = deliveries(db, endpoint_id)
    assert delivery.status == "pending" and delivery.last_status_code is None
    assert delivery.last_error == (
        "not sent: 127.0.0.1 is 127.0.0.1, not a public address "
        "([webhooks] allow_private_addresses is off)"
    )


def test_an_anomaly_alert_reaches_the_receiver_as_a_signed_webhook(
    db: Database, till: TillContext, receiver: tuple[Receiver, str], handlers: Any
) -> None:
    """An alert raised by the monitoring rules (two QR payments within a minute at one till,
    with the merchant's threshold at 2) goes out as ``alert.raised``, signed, in the same
    transaction as the payment that raised it."""
    from gateway.services.monitoring import thresholds

    app, url = receiver
    subscribe(db, till.merchant_id, url, ["alert.*"], app)
    with db.unit_of_work() as uow:
        chosen = thresholds.defaults().with_overrides({"qr_payments_per_minute": 2}).as_dict()
        thresholds.set_thresholds(uow, till.merchant_id, chosen, "test")
        uow.commit()
    paid_payment(db, till)
    run_due_jobs(db, handlers)
    assert app.of_type("alert.raised") == []  # one payment in the minute: below the threshold
    paid_payment(db, till)
    run_due_jobs(db, handlers)

    (alert,) = app.of_type("alert.raised")
    assert alert["verified"] and alert["status"] == 204
    data = json.loads(alert["body"])["data"]
    assert data["rule"] == "qr_velocity"
    assert data["facts"]["count"] == 2 and data["facts"]["threshold"] == 2
