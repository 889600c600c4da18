"""What a web process keeps of a merchant for its sales (gateway.services.payments
.merchant_cache) is current: a change of the merchant or of its webhook endpoints, made by
another process, is seen by the next sale; the till's key is checked afresh on every request.
SQLite and PostgreSQL; the changes are made by a separate Python process."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid
from typing import Any

from sqlalchemy import event, func, select, text

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant
from gateway.adapters.webhook_models import WebhookDelivery, WebhookEndpoint
from gateway.domain import emv_qr


def _sale(client: Any, demo: dict[str, Any], till: int = 0) -> Any:
    return client.post(
        "/api/v1/payments",
        json={"amount": "12.34", "currency": "EUR", "method": "qr"},
        headers={
            "Authorization": f"Bearer {demo['tills'][till]['api_key']}",
            "Idempotency-Key": uuid.uuid4().hex,
        },
    )


def _elsewhere(db: Database, statements: str) -> None:
    """Run SQL in another process (its own connections, as another web process or the
    portal's would be)."""
    script = textwrap.dedent(
        f"""
        from sqlalchemy import text
        from gateway.adapters.db import Database
        db = Database({db.url!r})
        with db.engine.begin() as conn:
            for statement in {statements!r}.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        db.dispose()
        """
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)


def _merchant_reads(db: Database) -> tuple[list[str], Any]:
    seen: list[str] = []

    def note(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "FROM merchants" in statement:
            seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", note)
    return seen, note


def _qr_name(payment: dict[str, Any]) -> str:
    return str(emv_qr.decode(payment["qr_payload"])["59"])


def test_a_sale_reads_its_merchant_once_per_revision(app: Any, db: Database, demo: Any) -> None:
    client = app.test_client()
    assert _sale(client, demo).status_code == 201
    seen, note = _merchant_reads(db)
    try:
        assert _sale(client, demo).status_code == 201
        assert _sale(client, demo, till=1).status_code == 201
        assert seen == []  # kept: no statement read the merchant again
        _elsewhere(db, "UPDATE merchants SET qr_city = 'Potsdam'")
        assert _sale(client, demo).status_code == 201
        assert len(seen) == 1  # the revision moved: read once more
    finally:
        event.remove(db.engine, "before_cursor_execute", note)


def test_a_merchant_changed_elsewhere_is_seen_by_the_next_sale(
    app: Any, db: Database, demo: Any
) -> None:
    client = app.test_client()
    first = _sale(client, demo)
    assert first.status_code == 201
    before = _qr_name(first.get_json())
    _elsewhere(db, "UPDATE merchants SET qr_name = 'RENAMED SHOP'")
    second = _sale(client, demo)
    assert second.status_code == 201
    assert before != "RENAMED SHOP" and _qr_name(second.get_json()) == "RENAMED SHOP"
    # and its default currency: the next sale in EUR is refused once the merchant takes USD
    _elsewhere(db, "UPDATE merchants SET default_currency = 'USD'")
    refused = _sale(client, demo)
    assert refused.status_code == 422, refused.get_json()
    assert refused.get_json()["accepted"] == ["USD"]


def _deliveries(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).select_from(WebhookDelivery)) or 0


def test_a_webhook_endpoint_added_or_paused_elsewhere_is_seen_by_the_next_sale(
    app: Any, db: Database, demo: Any
) -> None:
    client = app.test_client()
    assert _sale(client, demo).status_code == 201
    assert _deliveries(db) == 0  # no endpoint: kept as "none active"
    with db.unit_of_work(readonly=True) as uow:
        merchant_id = uow.session.scalar(select(Merchant.id))
    _elsewhere(
        db,
        "INSERT INTO webhook_endpoints (merchant_id, url, event_types, status, secret_sealed,"
        f" created_by, created_at, updated_at) VALUES ({merchant_id}, 'https://example.org/h',"
        " '[\"payment.*\"]', 'active', 'x', 'test', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
    )
    assert _sale(client, demo).status_code == 201
    assert _deliveries(db) == 1  # payment.pending for the new endpoint
    _elsewhere(db, "UPDATE webhook_endpoints SET status = 'paused'")
    assert _sale(client, demo).status_code == 201
    assert _deliveries(db) == 1
    _elsewhere(db, "UPDATE webhook_endpoints SET status = 'active'")
    assert _sale(client, demo).status_code == 201
    assert _deliveries(db) == 2


def test_a_till_deactivated_elsewhere_is_refused_at_its_next_request(
    app: Any, db: Database, demo: Any
) -> None:
    client = app.test_client()
    assert _sale(client, demo).status_code == 201
    key_id = demo["tills"][0]["api_key"].split("_")[1]
    _elsewhere(db, f"UPDATE tills SET active = false WHERE api_key_id = '{key_id}'")
    assert _sale(client, demo).status_code == 401


def test_the_revision_moves_with_what_a_sale_reads_only(db: Database, demo: Any) -> None:
    def revision() -> int:
        with db.engine.connect() as conn:
            return int(conn.execute(text("SELECT revision FROM merchants")).scalar_one())

    with db.unit_of_work(readonly=True) as uow:
        merchant_id = uow.session.scalar(select(Merchant.id))
    start = revision()
    _elsewhere(db, "UPDATE merchants SET approval_limits = NULL")
    assert revision() == start + 1
    with db.unit_of_work() as uow:  # the ORM's writes too
        uow.session.add(
            WebhookEndpoint(
                merchant_id=merchant_id,
                url="https://example.org/h",
                event_types=["payment.*"],
                status="active",
                secret_sealed="x",
                created_by="test",
            )
        )
        uow.commit()
    after_insert = revision()
    assert after_insert > start + 1
    # A delivery's bookkeeping on the endpoint (not what a sale reads) leaves it alone.
    _elsewhere(db, "UPDATE webhook_endpoints SET description = 'kept', paused_reason = NULL")
    assert revision() == after_insert
    _elsewhere(db, "UPDATE webhook_endpoints SET event_types = '[\"refund.*\"]'")
    assert revision() > after_insert
    moved = revision()
    _elsewhere(db, "DELETE FROM webhook_endpoints")
    assert revision() > moved
