"""PostgreSQL's one-statement ``payment.succeeded`` (callbacks._store_and_apply_payment) writes
exactly what the general path (store, lock, qr_payments.record_bank_payment) writes.

Each case applies one event through the fast path and the same event (another id, another
payment just like the first) through the general path, then compares every row both wrote: the
raw event, the payment, its history (the detail's JSON text byte for byte), the webhook
deliveries its after-change hooks queued. The statements sent show which path ran.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import event, select, text, update

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, Payment
from gateway.adapters.webhook_models import WebhookDelivery
from gateway.domain.payment import PaymentStatus
from gateway.services.bank import callbacks
from gateway.services.webhooks import endpoints
from tests.integration.test_bank_callbacks import new_payment, paid_event

FAST = "history AS"  # only the fast path's statement has a WITH of that name


@pytest.fixture
def pg(db: Database, demo: dict[str, Any]) -> Database:
    if db.dialect != "postgresql":
        pytest.skip("the one-statement path is PostgreSQL's (SQLite has no INSERT in a WITH)")
    with db.unit_of_work() as uow:  # so that the move's webhook hook queues a delivery
        merchant_id = uow.session.scalars(select(Merchant.id).order_by(Merchant.id)).first()
        assert merchant_id is not None
        endpoints.create_endpoint(
            uow,
            merchant_id,
            url="https://merchant.example/hooks",
            event_types=["payment.*"],
            description=None,
            actor="test",
        )
        uow.commit()
    return db


@pytest.fixture
def statements(pg: Database) -> Iterator[list[str]]:
    """Every statement sent, as psycopg's cursors see it: the fast path sends its one
    statement on the session's DBAPI connection, past SQLAlchemy's execution events."""
    sent: list[str] = []

    class Recording(psycopg.Cursor[Any]):
        def execute(self, query: Any, params: Any = None, **options: Any) -> Any:
            sent.append(str(query))
            return super().execute(query, params, **options)

    factories: dict[int, Any] = {}

    def checkout(dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        factories[id(dbapi_connection)] = dbapi_connection.cursor_factory
        dbapi_connection.cursor_factory = Recording

    def checkin(dbapi_connection: Any, _record: Any) -> None:
        if id(dbapi_connection) in factories:
            dbapi_connection.cursor_factory = factories.pop(id(dbapi_connection))

    event.listen(pg.engine, "checkout", checkout)
    event.listen(pg.engine, "checkin", checkin)
    yield sent
    event.remove(pg.engine, "checkout", checkout)
    event.remove(pg.engine, "checkin", checkin)


def apply(db: Database, event_id: str, body: dict[str, Any], *, general: bool) -> str:
    raw = json.dumps(body, separators=(",", ":")).encode()
    headers = {"webhook-id": event_id, "webhook-timestamp": "1900000000", "content-type": "x"}
    callback = callbacks.VerifiedCallback(event_id, int(time.time()), raw, headers)
    envelope = callbacks.parse_envelope(raw)
    with db.unit_of_work() as uow:
        if general:
            handler = callbacks.HANDLERS["payment.succeeded"]
            status = callbacks._store_and_apply_general(uow, callback, envelope, handler)
        else:
            status = callbacks._store_and_apply(uow, callback, envelope)
        uow.commit()
    return status.value


def written(db: Database, payment: Payment, event_id: str) -> dict[str, Any]:
    """Every row the event wrote (the payment's history after its QR code was issued), its
    own names (ids, reference) replaced."""
    names = {
        payment.id: "<payment>",
        payment.reference: "<reference>",
        event_id: "<event>",
    }
    with db.engine.connect() as conn:
        stored = conn.execute(
            text(
                "SELECT id, source, kind, headers::text, status, error, "
                "processed_at IS NOT NULL FROM inbound_events WHERE external_id = :e"
            ),
            {"e": event_id},
        ).all()
        if stored:
            names[f'"inbound_event_id": {stored[0][0]}'] = '"inbound_event_id": <event id>'
        row = conn.execute(
            text(
                "SELECT status, amount_minor, currency, paid_at, bank_payment_id, refunded_minor,"
                " attention, version, updated_at > created_at FROM payments WHERE id = :p"
            ),
            {"p": payment.id},
        ).one()
        history = conn.execute(
            text(
                "SELECT kind, from_status, to_status, actor, detail::text FROM payment_events "
                "WHERE payment_id = :p AND kind NOT IN ('created', 'qr_issued') ORDER BY id"
            ),
            {"p": payment.id},
        ).all()
    with db.unit_of_work() as uow:
        deliveries = [
            (d.event_type, d.status, d.body)
            for d in uow.session.scalars(
                select(WebhookDelivery)
                .where(WebhookDelivery.body.contains(payment.id))
                .order_by(WebhookDelivery.id)
            )
        ]

    def named(value: Any) -> str:
        out = str(value)
        for concrete, name in names.items():
            out = out.replace(concrete, name)
        return out

    return {
        "event": [tuple(named(v) for v in r[1:]) for r in stored],
        "payment": tuple(named(v) for v in row),
        "history": [tuple(named(v) for v in r) for r in history],
        # a delivery's body names its message and time: the payment's data must be the same
        # (but for when the payment was created)
        "deliveries": [
            (t, s, named({k: v for k, v in json.loads(b)["data"].items() if k != "created_at"}))
            for t, s, b in deliveries
            if t != "payment.pending"  # queued when the QR code was issued
        ],
    }


def both(db: Database, statements: list[str], case: str, **data: Any) -> dict[str, Any]:
    """Apply the case's event both ways; the rows each wrote (asserted equal), and which
    statements the fast path sent."""
    fast_payment, general_payment = new_payment(db), new_payment(db)
    results = []
    for payment, general in ((fast_payment, False), (general_payment, True)):
        statements.clear()
        event_id = f"evt_{case}_{'general' if general else 'fast'}"
        status = apply(db, event_id, paid_event(payment, **data), general=general)
        assert any(FAST in s for s in statements) is not general
        results.append((status, written(db, payment, event_id)))
    assert results[0] == results[1]
    return results[0][1]


def test_a_pending_payment_paid_in_full_is_written_alike(
    pg: Database, statements: list[str]
) -> None:
    rows = both(pg, statements, "paid")
    assert rows["payment"][0] == "paid" and rows["payment"][7] == "2"
    assert [h[:4] for h in rows["history"]] == [("paid", "pending", "paid", "bank")]
    assert '"inbound_event_id": <event id>' in rows["history"][-1][4]
    assert [(t, s) for t, s, _ in rows["deliveries"]] == [("payment.paid", "pending")]


def test_the_hooks_ask_nothing_the_statement_read(pg: Database, statements: list[str]) -> None:
    """The move's after-change hooks read the merchant's thresholds and the store's opening
    hours from the one statement: they select neither again."""
    payment = new_payment(pg)
    statements.clear()
    assert apply(pg, "evt_once", paid_event(payment), general=False) == "processed"
    assert FAST in statements[0]
    again = [s for s in statements[1:] if "FROM merchants" in s or "FROM stores" in s]
    assert again == []


def test_a_wrong_amount_is_flagged_alike(pg: Database, statements: list[str]) -> None:
    rows = both(pg, statements, "short", amount="12.00")
    assert rows["payment"][0] == "pending" and "12.00 EUR paid" in rows["payment"][6]


def test_a_card_number_in_the_wallet_is_masked_alike(pg: Database, statements: list[str]) -> None:
    rows = both(pg, statements, "card", wallet="4111 1111 1111 1111")
    assert "4111 1111 1111 1111" not in rows["history"][-1][4]


def test_a_payment_paid_after_it_expired_asks_for_a_person_alike(
    pg: Database, statements: list[str]
) -> None:
    fast, general = new_payment(pg), new_payment(pg)
    with pg.unit_of_work() as uow:
        uow.session.execute(
            update(Payment)
            .where(Payment.id.in_([fast.id, general.id]))
            .values(status=PaymentStatus.EXPIRED.value)
        )
        uow.commit()
    got = []
    for payment, is_general in ((fast, False), (general, True)):
        event_id = f"evt_expired_{is_general}"
        status = apply(pg, event_id, paid_event(payment), general=is_general)
        got.append((status, written(pg, payment, event_id)))
    assert got[0] == got[1]
    assert got[0][1]["payment"][0] == "expired" and got[0][1]["payment"][6] != "None"


def test_a_duplicate_writes_nothing_more_on_either_path(
    pg: Database, statements: list[str]
) -> None:
    payment = new_payment(pg)
    assert apply(pg, "evt_twice", paid_event(payment), general=False) == "processed"
    before = written(pg, payment, "evt_twice")
    assert apply(pg, "evt_twice", paid_event(payment), general=False) == "duplicate"
    assert apply(pg, "evt_twice", paid_event(payment), general=True) == "duplicate"
    assert written(pg, payment, "evt_twice") == before


def test_an_unknown_reference_is_unmatched_on_either_path(
    pg: Database, statements: list[str]
) -> None:
    payment = new_payment(pg)
    body = paid_event(payment, reference="KNOBODY000001")
    assert apply(pg, "evt_nobody_fast", body, general=False) == "unmatched"
    assert any(FAST in s for s in statements)
    assert apply(pg, "evt_nobody_general", body, general=True) == "unmatched"
    fast, general = (
        written(pg, payment, "evt_nobody_fast"),
        written(pg, payment, "evt_nobody_general"),
    )
    assert fast == general and fast["event"][0][3] == "unmatched"
    assert fast["payment"][0] == "pending"
