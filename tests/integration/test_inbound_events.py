"""Events a person can replay: `kassa events list|show|replay` and the portal's Events page,
over the stored raw events; a replay of a processed event changes nothing, one that found
nothing to apply to then is applied now."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import pytest
from click.testing import CliRunner
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import InboundEvent, Payment, PaymentEvent
from gateway.domain.money import Money
from gateway.entrypoints.cli import main
from gateway.services.bank import callbacks
from gateway.services.payments import qr_payments
from tests.factories import second_merchant
from tests.integration.test_portal_pages import log_in, staff, till_of


@pytest.fixture
def client(app: Any) -> FlaskClient:
    return app.test_client()  # type: ignore[no-any-return]


def pending_payment(db: Database) -> Payment:
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow,
            till_of(db),
            money=Money.parse("9.99", "EUR"),
            settings=qr_payments.PaymentSettings(),
        )
        uow.commit()
        uow.session.expunge(payment)
        return payment


def stored_callback(db: Database, event_id: str, reference: str, **data: Any) -> int:
    """A bank callback as the endpoint stores it once its signature checked out."""
    body = {
        "type": "payment.succeeded",
        "timestamp": "2026-12-06T10:00:00Z",
        "data": {
            "bank_payment_id": f"bp_{reference}",
            "merchant_id": "KASSA-DEMO-0001",
            "reference": reference,
            "amount": "9.99",
            "currency": "EUR",
            "paid_at": "2026-12-06T10:00:00Z",
            **data,
        },
    }
    raw = json.dumps(body).encode()
    headers = {"webhook-id": event_id, "content-type": "application/json"}
    callbacks.receive(db, callbacks.VerifiedCallback(event_id, int(time.time()), raw, headers))
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.scalars(
            select(InboundEvent.id).where(InboundEvent.external_id == event_id)
        ).one()


def _kassa(db: Database, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"KASSA_DATABASE_URL": db.url})


def _status(db: Database, event_id: int) -> str:
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.get_one(InboundEvent, event_id).status


def _history_size(db: Database, payment_id: str) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(
            uow.session.scalar(
                select(func.count())
                .select_from(PaymentEvent)
                .where(PaymentEvent.payment_id == payment_id)
            )
            or 0
        )


def test_cli_lists_shows_and_replays_without_doubling(db: Database, demo: Any) -> None:
    payment = pending_payment(db)
    processed = stored_callback(db, "evt_one", payment.reference)
    stranger = stored_callback(db, "evt_two", "KNOBODYKNOWS1")
    listed = _kassa(db, "events", "list", "--json")
    assert listed.exit_code == 0, listed.output
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [(r["id"], r["status"]) for r in rows] == [
        (stranger, "unmatched"),
        (processed, "processed"),
    ]
    only = _kassa(db, "events", "list", "--status", "unmatched", "--type", "payment.succeeded")
    assert "evt_two" in only.stdout and "evt_one" not in only.stdout

    shown = _kassa(db, "events", "show", str(processed))
    assert shown.exit_code == 0
    assert '"webhook-id": "evt_one"' in shown.stdout and payment.reference in shown.stdout

    before = _history_size(db, payment.id)
    for _ in range(2):
        replayed = _kassa(db, "events", "replay", str(processed))
        assert replayed.exit_code == 0, replayed.output
        assert "processed -> processed" in replayed.stdout
    assert _history_size(db, payment.id) == before  # nothing applied twice

    missing = _kassa(db, "events", "show", "99999")
    assert missing.exit_code == 2 and "no inbound event 99999" in missing.stderr
    bad = _kassa(db, "events", "list", "--limit", "0")
    assert bad.exit_code == 2


def test_a_replay_applies_what_found_nothing_to_apply_to_before(db: Database, demo: Any) -> None:
    payment = pending_payment(db)
    early = stored_callback(db, "evt_early", "KLATEREFERENC", amount="9.99")
    assert _status(db, early) == "unmatched"
    with db.unit_of_work() as uow:  # the payment the bank meant, known only now
        row = uow.session.get_one(Payment, payment.id)
        row.reference = "KLATEREFERENC"
        uow.commit()
    assert "unmatched -> processed" in _kassa(db, "events", "replay", str(early)).stdout
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.get_one(Payment, payment.id).status == "paid"


def test_portal_events_page_filters_shows_raw_and_replays_for_the_merchant_only(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment = pending_payment(db)
    processed = stored_callback(db, "evt_mine", payment.reference)
    stranger = stored_callback(db, "evt_nobodys", "KNOBODYKNOWS2")
    log_in(client, *staff(demo, "manager"))
    page = client.get("/portal/events").get_data(as_text=True)
    assert f'data-event-id="{processed}"' in page
    assert f'data-event-id="{stranger}"' not in page  # concerns no merchant of theirs
    filtered = client.get("/portal/events?status=unmatched").get_data(as_text=True)
    assert f'data-event-id="{processed}"' not in filtered

    detail = client.get(f"/portal/events/{processed}").get_data(as_text=True)
    assert "evt_mine" in detail and payment.reference in detail and "content-type" in detail
    token = re.search(r'name="csrf_token" value="([^"]+)"', detail)
    assert token
    url = f"/portal/events/{processed}/replay"
    assert client.post(url).status_code == 400  # no CSRF token
    before = _history_size(db, payment.id)
    done = client.post(url, data={"csrf_token": token.group(1)})
    assert done.status_code == 303
    again = client.get(f"/portal/events/{processed}").get_data(as_text=True)
    assert "Processed → Processed" in again
    assert _history_size(db, payment.id) == before
    assert client.get(f"/portal/events/{stranger}").status_code == 404


def test_another_merchants_manager_sees_none_of_these_events(
    db: Database, demo: Any, client: FlaskClient
) -> None:
    payment = pending_payment(db)
    event = stored_callback(db, "evt_demo", payment.reference)
    other = second_merchant(db)
    log_in(client, other["manager"], other["password"])
    assert f'data-event-id="{event}"' not in client.get("/portal/events").get_data(as_text=True)
    assert client.get(f"/portal/events/{event}").status_code == 404
    token = re.search(
        r'name="csrf_token" value="([^"]+)"', client.get("/portal/events").get_data(as_text=True)
    )
    assert token
    replay = client.post(f"/portal/events/{event}/replay", data={"csrf_token": token.group(1)})
    assert replay.status_code == 404
