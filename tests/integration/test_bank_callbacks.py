"""``POST /bank/callbacks`` over real HTTP, on SQLite and PostgreSQL.

Requests are signed with the standardwebhooks package, as the bank (and the sandbox) signs them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select, update
from standardwebhooks.webhooks import Webhook

from gateway.adapters.db import Database
from gateway.adapters.models import (
    BankSettlement,
    InboundEvent,
    Job,
    Merchant,
    Payment,
    PaymentEvent,
    Refund,
    Till,
    utcnow,
)
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.errors import Conflict
from gateway.services import jobs
from gateway.services.bank import callbacks
from gateway.services.payments import lifecycle, qr_payments, refunds
from gateway.services.staff.auth import TillContext
from tests.conftest import LiveServer, app_config

SECRET = "whsec_" + base64.b64encode(b"kassa-test-webhook-secret-32byte").decode()
BANK_MERCHANT = "KASSA-DEMO-0001"
PINNED_NOW = 1_900_000_000.999  # a clock whose sub-second part must not shrink the window


def build_app(db: Database, **bank: Any) -> Flask:
    from gateway.entrypoints.app import create_app

    settings = {"webhook_secret": SECRET, "merchant_id": BANK_MERCHANT, "api_key": "sk_test"}
    app = create_app(app_config(db, bank={**settings, **bank}), db=db)
    app.config["TESTING"] = True
    return app


@pytest.fixture
def bank_app(db: Database, demo: dict[str, Any]) -> Flask:
    return build_app(db)


@pytest.fixture
def server(bank_app: Flask) -> Iterator[LiveServer]:
    with LiveServer(bank_app) as live:
        yield live


# -- helpers -----------------------------------------------------------------------------------


def signed(
    event_id: str, body: dict[str, Any] | bytes, *, at: int | None = None, secret: str = SECRET
) -> tuple[bytes, dict[str, str]]:
    raw = body if isinstance(body, bytes) else json.dumps(body, separators=(",", ":")).encode()
    stamp = int(time.time()) if at is None else at
    signature = Webhook(secret).sign(event_id, datetime.fromtimestamp(stamp, UTC), raw.decode())
    headers = {
        "webhook-id": event_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": signature,
        "Content-Type": "application/json",
    }
    return raw, headers


def post(server: LiveServer, raw: bytes, headers: dict[str, str]) -> requests.Response:
    return requests.post(f"{server.url}/bank/callbacks", data=raw, headers=headers, timeout=10)


def deliver(
    server: LiveServer, event_id: str, body: dict[str, Any] | bytes, **sign: Any
) -> requests.Response:
    return post(server, *signed(event_id, body, **sign))


def paid_event(payment: Payment, **data: Any) -> dict[str, Any]:
    amount = Money(payment.amount_minor, payment.currency).to_decimal_string()
    return {
        "type": "payment.succeeded",
        "timestamp": "2026-11-25T15:00:00Z",
        "data": {
            "bank_payment_id": f"bp_{payment.reference}",
            "merchant_id": BANK_MERCHANT,
            "reference": payment.reference,
            "bill_number": None,
            "terminal_label": "T01",
            "amount": amount,
            "currency": payment.currency,
            "wallet": "••••1234",
            "paid_at": "2026-11-25T14:59:58Z",
            **data,
        },
    }


def new_payment(db: Database, amount: str = "12.34") -> Payment:
    with db.unit_of_work() as uow:
        till = uow.session.scalars(select(Till).order_by(Till.id)).first()
        assert till is not None
        context = TillContext(till.id, till.store_id, till.store.merchant_id, till.label)
        payment = qr_payments.create_qr_payment(
            uow, context, money=Money.parse(amount, "EUR"), settings=qr_payments.PaymentSettings()
        )
        uow.commit()
        uow.session.expunge(payment)  # still readable after the unit of work ends
        return payment


def reload(db: Database, payment_id: str) -> Payment:
    with db.unit_of_work() as uow:
        payment = uow.session.get_one(Payment, payment_id)
        uow.session.expunge(payment)
        return payment


def history(db: Database, payment_id: str, kind: str) -> list[PaymentEvent]:
    with db.unit_of_work() as uow:
        query = select(PaymentEvent).where(
            PaymentEvent.payment_id == payment_id, PaymentEvent.kind == kind
        )
        events = list(uow.session.scalars(query))
        uow.session.expunge_all()
        return events


def stored(db: Database, event_id: str | None = None) -> list[InboundEvent]:
    with db.unit_of_work() as uow:
        query = select(InboundEvent).order_by(InboundEvent.id)
        if event_id is not None:
            query = query.where(InboundEvent.external_id == event_id)
        events = list(uow.session.scalars(query))
        uow.session.expunge_all()
        return events


def count(db: Database, model: Any) -> int:
    with db.unit_of_work() as uow:
        return uow.session.scalar(select(func.count()).select_from(model)) or 0


# -- payment.succeeded -------------------------------------------------------------------------


def test_payment_succeeded_marks_the_payment_paid(db: Database, server: LiveServer) -> None:
    payment = new_payment(db)
    response = deliver(server, "evt_paid_1", paid_event(payment))
    assert (response.status_code, response.json()) == (200, {"status": "processed"})
    after = reload(db, payment.id)
    assert after.status == "paid"
    assert after.paid_at == datetime(2026, 11, 25, 14, 59, 58, tzinfo=UTC)
    assert after.bank_payment_id == f"bp_{payment.reference}"
    assert after.attention is None
    [event] = stored(db)
    assert (event.source, event.external_id, event.kind) == (
        "bank",
        "evt_paid_1",
        "payment.succeeded",
    )
    assert (event.status, event.error) == ("processed", None) and event.processed_at is not None
    assert event.headers["webhook-id"] == "evt_paid_1" and event.body.startswith(b'{"type"')


def test_ten_concurrent_duplicates_amid_other_events_change_the_state_once(
    db: Database, server: LiveServer
) -> None:
    first, second = new_payment(db), new_payment(db, "5.00")
    deliveries = [signed("evt_dup", paid_event(first)) for _ in range(10)]
    deliveries += [
        # the same payment reported again under another event id, out of order
        signed("evt_dup_again", paid_event(first)),
        signed("evt_other", paid_event(second)),
        signed("evt_future_kind", {"type": "payout.scheduled", "data": {}}),
        signed("evt_settled", settlement_event("stl_1")),
    ]
    random.Random(7).shuffle(deliveries)
    barrier = threading.Barrier(len(deliveries))
    answers: list[tuple[str, int, str]] = []

    def send(raw: bytes, headers: dict[str, str]) -> None:
        barrier.wait()
        response = post(server, raw, headers)
        answers.append((headers["webhook-id"], response.status_code, response.json()["status"]))

    threads = [threading.Thread(target=send, args=d) for d in deliveries]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(answers) == len(deliveries) and all(code == 200 for _, code, _ in answers)
    dup_answers = sorted(status for event_id, _, status in answers if event_id == "evt_dup")
    assert dup_answers == ["duplicate"] * 9 + ["processed"]
    assert len(stored(db, "evt_dup")) == 1
    assert count(db, InboundEvent) == 5
    assert len(history(db, first.id, "paid")) == 1
    assert reload(db, first.id).status == reload(db, second.id).status == "paid"
    assert history(db, first.id, "attention") == []


def test_a_move_from_a_stale_copy_of_the_payment_is_a_conflict_and_writes_nothing(
    db: Database, demo: dict[str, Any]
) -> None:
    """move_payment writes under the payment's version: a copy read before someone else moved
    the payment moves nothing and leaves no history entry."""
    payment = new_payment(db)
    stale = reload(db, payment.id)
    with db.unit_of_work() as uow:
        current = uow.session.get_one(Payment, payment.id)
        lifecycle.move_payment(uow, current, PaymentStatus.CANCELLED, "cancelled", "till")
        uow.commit()
    with db.unit_of_work() as uow:
        uow.session.add(stale)
        with pytest.raises(Conflict):
            lifecycle.move_payment(
                uow, stale, PaymentStatus.PAID, "paid", "bank", paid_at=datetime.now(UTC)
            )
    assert reload(db, payment.id).status == "cancelled"
    assert history(db, payment.id, "paid") == []
    assert len(history(db, payment.id, "cancelled")) == 1


def test_amount_mismatch_is_flagged_not_paid(db: Database, server: LiveServer) -> None:
    payment = new_payment(db, "12.34")
    response = deliver(server, "evt_short", paid_event(payment, amount="12.30"))
    assert response.json() == {"status": "processed"}
    after = reload(db, payment.id)
    assert after.status == "pending" and after.paid_at is None
    assert after.attention is not None and "12.30 EUR" in after.attention
    assert "12.34 EUR" in after.attention
    [flag] = history(db, payment.id, "attention")
    assert flag.actor == "bank" and flag.detail["amount"] == "12.30"
    assert history(db, payment.id, "paid") == []
    # another currency is a mismatch too
    deliver(server, "evt_currency", paid_event(payment, currency="USD", amount="12.34"))
    assert reload(db, payment.id).status == "pending"
    assert len(history(db, payment.id, "attention")) == 2


def test_paid_at_the_bank_after_expiry_here_asks_for_a_person(
    db: Database, server: LiveServer
) -> None:
    payment = new_payment(db)
    with db.unit_of_work() as uow:
        uow.session.execute(
            update(Payment).where(Payment.id == payment.id).values(expires_at=utcnow())
        )
        qr_payments.expire_payment(uow, {"payment_id": payment.id})
        uow.commit()
    for event_id in ("evt_late", "evt_late_again"):
        assert deliver(server, event_id, paid_event(payment)).status_code == 200
    after = reload(db, payment.id)
    assert after.status == "expired"
    assert after.attention == (
        "paid at the bank after it was expired here: refund the customer or accept the payment"
    )
    assert after.bank_payment_id == f"bp_{payment.reference}"
    assert len(history(db, payment.id, "attention")) == 1  # the repeat adds nothing


def test_unknown_reference_is_stored_unmatched(db: Database, server: LiveServer) -> None:
    body = paid_event(new_payment(db), reference="KNOBODYKNOWSME")
    response = deliver(server, "evt_stranger", body)
    assert (response.status_code, response.json()) == (200, {"status": "unmatched"})
    [event] = stored(db)
    assert event.status == "unmatched"


def test_unknown_type_is_stored_and_flagged(db: Database, server: LiveServer) -> None:
    response = deliver(server, "evt_new", {"type": "payout.scheduled", "data": {"x": 1}})
    assert (response.status_code, response.json()) == (200, {"status": "unknown_type"})
    [event] = stored(db)
    assert (event.kind, event.status) == ("payout.scheduled", "unknown_type")


def test_signed_but_malformed_events_are_kept_as_invalid(db: Database, server: LiveServer) -> None:
    assert deliver(server, "evt_junk", b"not json").json() == {"status": "invalid"}
    payment = new_payment(db)
    body = paid_event(payment, amount=12.34)  # a JSON number: the contract says string
    assert deliver(server, "evt_float", body).json() == {"status": "invalid"}
    events = {e.external_id: e for e in stored(db)}
    assert events["evt_junk"].status == "invalid" and events["evt_junk"].body == b"not json"
    assert events["evt_float"].error is not None and "amount" in events["evt_float"].error
    assert reload(db, payment.id).status == "pending"


def test_a_card_number_in_a_callback_is_masked_when_stored(
    db: Database, server: LiveServer
) -> None:
    payment = new_payment(db)
    body = paid_event(payment, wallet="card 4111 1111 1111 1111")
    assert deliver(server, "evt_card", body).json() == {"status": "processed"}
    bad = paid_event(new_payment(db), amount="4111111111111111.001")
    assert deliver(server, "evt_card_bad", bad).json() == {"status": "invalid"}
    events = {e.external_id: e for e in stored(db)}
    assert b'"card 4111 11** **** 1111"' in events["evt_card"].body
    assert b"4111 1111 1111 1111" not in events["evt_card"].body
    assert "4111111111111111" not in (events["evt_card_bad"].error or "")
    assert "4111111111111111" not in events["evt_card_bad"].body.decode()


def test_a_card_number_as_a_callbacks_type_is_masked_when_stored(
    db: Database, server: LiveServer
) -> None:
    """Found by test_fuzz_entry_points: an unknown type is stored as sent, and a type of
    "4111_1111_1111_1111" put a card number in ``inbound_events.kind``."""
    for n, kind in enumerate(["4111_1111_1111_1111", "4111111111111111", "x 4111-1111-1111-1111"]):
        response = deliver(server, f"evt_type_{n}", {"type": kind, "data": {}})
        assert response.json() == {"status": "unknown_type"}
    kinds = {str(e.kind) for e in stored(db)}
    assert kinds == {"4111_11**_****_1111", "411111******1111", "x 4111-11**-****-1111"}


def test_a_callback_whose_id_holds_a_card_number_is_stored_without_it(
    db: Database, server: LiveServer
) -> None:
    # The webhook-id is the event's dedupe key, stored and shown: one that holds a card
    # number (a bank's numeric id can be Luhn-valid by chance) is kept masked with the
    # SHA-256 of the id as sent, so a re-delivery is still a duplicate and two ids that mask
    # alike stay two events.
    first, second = new_payment(db, "5.55"), new_payment(db, "6.66")
    same_mask = ("evt_4111111111111111", "evt_4111110000091111")  # both Luhn-valid
    assert deliver(server, same_mask[0], paid_event(first)).json() == {"status": "processed"}
    assert deliver(server, same_mask[0], paid_event(first)).json() == {"status": "duplicate"}
    assert deliver(server, same_mask[1], paid_event(second)).json() == {"status": "processed"}
    events = stored(db)
    assert len(events) == 2
    for event, sent in zip(sorted(events, key=lambda e: e.id), same_mask, strict=True):
        digest = hashlib.sha256(sent.encode()).hexdigest()
        assert event.external_id == f"evt_411111******1111~sha256:{digest}"
        assert event.headers["webhook-id"] == event.external_id
        assert "4111111111111111" not in json.dumps(event.headers)
    assert reload(db, first.id).status == reload(db, second.id).status == "paid"
    # A Luhn-invalid run of digits is no card number: such an id is kept as sent.
    third = new_payment(db, "7.77")
    assert deliver(server, "evt_4111111111111112", paid_event(third)).status_code == 200
    assert "evt_4111111111111112" in {str(e.external_id) for e in stored(db)}


# -- settlement.created ------------------------------------------------------------------------


def settlement_event(settlement_id: str, gross: str = "1234.50") -> dict[str, Any]:
    return {
        "type": "settlement.created",
        "timestamp": "2026-11-26T02:00:00Z",
        "data": {
            "settlement_id": settlement_id,
            "merchant_id": BANK_MERCHANT,
            "date": "2026-11-25",
            "currency": "EUR",
            "gross": gross,
            "fees": "12.35",
            "refunds": "10.00",
            "net": "1212.15",
            "payment_count": 42,
            "files": {"csv": "http://bank.example/v1/settlements/2026-11-25.csv"},
        },
    }


def test_settlement_created_records_the_settlement_once(
    db: Database, server: LiveServer, demo: dict[str, Any]
) -> None:
    assert deliver(server, "evt_stl", settlement_event("stl_2026_11_25")).status_code == 200
    assert deliver(server, "evt_stl_2", settlement_event("stl_2026_11_25", "1234.51")).ok
    with db.unit_of_work() as uow:
        [row] = uow.session.scalars(select(BankSettlement))
        demo_merchant = uow.session.scalar(
            select(Merchant.id).where(Merchant.name == demo["merchant"])
        )
        uow.session.expunge_all()
    assert row.merchant_id == demo_merchant is not None
    assert (row.settlement_id, row.bank_merchant_id, row.day) == (
        "stl_2026_11_25",
        BANK_MERCHANT,
        "2026-11-25",
    )
    assert (row.gross_minor, row.fees_minor, row.refunds_minor, row.net_minor) == (
        123451,
        1235,
        1000,
        121215,
    )
    assert row.payment_count == 42 and row.files["csv"].endswith(".csv")
    assert row.inbound_event_id == stored(db, "evt_stl_2")[0].id


# -- refunds -----------------------------------------------------------------------------------


def refund_event(
    payment: Payment, refund: Refund, kind: str = "refund.succeeded", **data: Any
) -> dict[str, Any]:
    return {
        "type": kind,
        "timestamp": "2026-11-25T16:00:00Z",
        "data": {
            "bank_refund_id": f"br_{refund.id[:8]}",
            "refund_id": refund.id,
            "bank_payment_id": f"bp_{payment.reference}",
            "reference": payment.reference,
            "amount": Money(refund.amount_minor, refund.currency).to_decimal_string(),
            "currency": refund.currency,
            "processed_at": "2026-11-25T16:00:00Z",
            **data,
        },
    }


def request_refund(db: Database, payment: Payment, amount: str) -> Refund:
    with db.unit_of_work() as uow:
        refund = refunds.request_refund(
            uow,
            payment.id,
            payment.merchant_id,
            amount=Money.parse(amount, "EUR"),
            reason="test",
            actor="test",
        )
        uow.commit()
        uow.session.expunge(refund)
        return refund


def test_refund_callbacks_apply_once_in_any_order(db: Database, server: LiveServer) -> None:
    payment = new_payment(db, "10.00")
    assert deliver(server, "evt_p", paid_event(payment)).json() == {"status": "processed"}
    one, two = request_refund(db, payment, "3.00"), request_refund(db, payment, "2.00")
    failed = request_refund(db, payment, "1.00")
    assert deliver(server, "evt_r1", refund_event(payment, one)).json()["status"] == "processed"
    assert deliver(server, "evt_r2", refund_event(payment, two)).json()["status"] == "processed"
    failure = refund_event(payment, failed, "refund.failed", reason="card closed")
    assert deliver(server, "evt_r3", failure).json()["status"] == "processed"
    # the first refund re-delivered after the later ones: once under its id, once under another
    assert deliver(server, "evt_r1", refund_event(payment, one)).json()["status"] == "duplicate"
    assert deliver(server, "evt_r1_bis", refund_event(payment, one)).json()["status"] == "processed"
    after = reload(db, payment.id)
    assert (after.status, after.refunded_minor) == ("partially_refunded", 500)
    with db.unit_of_work() as uow:
        statuses = {r.id: (r.status, r.failure) for r in uow.session.scalars(select(Refund))}
    assert statuses == {
        one.id: ("succeeded", None),
        two.id: ("succeeded", None),
        failed.id: ("failed", "card closed"),
    }
    assert len(history(db, payment.id, "refund_succeeded")) == 2
    unknown = refund_event(payment, one, refund_id="00000000-0000-0000-0000-000000000000")
    assert deliver(server, "evt_r_unknown", unknown).json() == {"status": "unmatched"}


# -- refusals ----------------------------------------------------------------------------------


def test_stale_and_future_timestamps_are_refused(db: Database, server: LiveServer) -> None:
    body = {"type": "payout.scheduled", "data": {}}
    for offset in (-301, -3600, +400):
        response = deliver(server, f"evt_replay_{offset}", body, at=int(time.time()) + offset)
        assert response.status_code == 401, offset
        assert response.headers["Content-Type"] == "application/problem+json"
        assert response.json()["type"] == "/problems/unauthorised"
        assert "webhook-timestamp" in response.json()["detail"]
    assert stored(db) == []


def test_tolerance_is_exactly_the_configured_seconds(
    db: Database, bank_app: Flask, server: LiveServer
) -> None:
    bank_app.extensions["kassa.clock"] = lambda: PINNED_NOW
    now = int(PINNED_NOW)
    body = {"type": "payout.scheduled", "data": {}}
    cases = {-301: 401, -300: 200, +300: 200, +301: 401}
    answers = {
        offset: deliver(server, f"evt_edge_{offset}", body, at=now + offset).status_code
        for offset in cases
    }
    assert answers == cases
    assert sorted(e.external_id for e in stored(db)) == ["evt_edge_-300", "evt_edge_300"]


def test_tolerance_comes_from_configuration(db: Database, demo: dict[str, Any]) -> None:
    app = build_app(db, callback_tolerance_seconds=60)
    app.extensions["kassa.clock"] = lambda: PINNED_NOW
    with LiveServer(app) as live:
        body = {"type": "payout.scheduled", "data": {}}
        assert deliver(live, "evt_61", body, at=int(PINNED_NOW) - 61).status_code == 401
        assert deliver(live, "evt_60", body, at=int(PINNED_NOW) - 60).status_code == 200


def test_bad_signatures_are_refused_and_nothing_is_stored(db: Database, server: LiveServer) -> None:
    payment = new_payment(db)
    raw, headers = signed("evt_tamper", paid_event(payment))
    tampered = raw.replace(b'"12.34"', b'"12.35"')
    assert tampered != raw and len(tampered) == len(raw)
    refusals: list[tuple[bytes, dict[str, str]]] = [(tampered, headers)]
    refusals.append(signed("evt_wrong_key", paid_event(payment), secret="whsec_" + "A" * 43))
    for missing in ("webhook-id", "webhook-timestamp", "webhook-signature"):
        refusals.append((raw, {k: v for k, v in headers.items() if k != missing}))
    refusals.append((raw, {**headers, "webhook-id": "evt_other_id"}))  # id is signed too
    refusals.append((raw, {**headers, "webhook-signature": "v1,not-base64!! v2,junk"}))
    refusals.append((raw[:-2] + b"\xff}", headers))  # not even UTF-8 any more
    for body, hdrs in refusals:
        response = post(server, body, hdrs)
        assert response.status_code == 401, hdrs
        assert response.headers["Content-Type"] == "application/problem+json"
    assert stored(db) == []
    assert reload(db, payment.id).status == "pending"


def test_missing_secret_answers_503(db: Database, demo: dict[str, Any]) -> None:
    app = build_app(db, webhook_secret="", secrets_file="var/no-such-secrets-file.json")
    with LiveServer(app) as live:
        response = deliver(live, "evt_x", {"type": "payout.scheduled", "data": {}})
    assert response.status_code == 503
    assert response.json()["detail"] == "bank webhook secret is not configured"
    assert stored(db) == []


# -- processing failures -----------------------------------------------------------------------


def test_a_processing_failure_keeps_the_event_and_a_job_retries_it(
    db: Database, server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    payment = new_payment(db)
    original = callbacks.HANDLERS["payment.succeeded"]

    def broken(*args: Any) -> callbacks.EventStatus:
        raise RuntimeError("database went away")

    monkeypatch.setitem(callbacks.HANDLERS, "payment.succeeded", broken)
    response = deliver(server, "evt_fails", paid_event(payment))
    assert (response.status_code, response.json()) == (202, {"status": "failed"})
    [event] = stored(db)
    assert event.status == "failed" and "database went away" in (event.error or "")
    assert reload(db, payment.id).status == "pending"
    # a re-delivery is a duplicate: the job, not the bank, finishes the work
    assert deliver(server, "evt_fails", paid_event(payment)).json() == {"status": "duplicate"}

    monkeypatch.setitem(callbacks.HANDLERS, "payment.succeeded", original)
    handlers: dict[str, Callable[..., None]] = {callbacks.PROCESS_JOB: callbacks.process_bank_event}
    assert jobs.run_due_jobs(db, handlers) == 1
    [event] = stored(db)
    assert (event.status, event.error) == ("processed", None)
    assert reload(db, payment.id).status == "paid"
    assert len(history(db, payment.id, "paid")) == 1
    with db.unit_of_work() as uow:
        job = uow.session.scalars(select(Job).where(Job.kind == callbacks.PROCESS_JOB)).one()
        assert (job.status, job.payload) == ("done", {"event_id": event.id})
    # running the job again (a second worker, a replay) changes nothing
    with db.unit_of_work() as uow:
        callbacks.process_bank_event(uow, {"event_id": event.id})
        uow.commit()
    assert len(history(db, payment.id, "paid")) == 1


def test_a_callbacks_outcome_is_on_its_request_line(
    db: Database, server: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    # One line per request, as for any other: the event's id and what became of it end the
    # request's line, and no line of its own repeats them.
    payment = new_payment(db, "7.10")
    caplog.set_level(logging.INFO)
    raw, headers = signed("evt_line_1", paid_event(payment))
    first = post(server, raw, {**headers, "X-Request-Id": "bank-line-1"})
    again = post(server, raw, {**headers, "X-Request-Id": "bank-line-2"})
    assert first.status_code == 200 and again.status_code == 200
    request_lines = [r.getMessage() for r in caplog.records if r.name == "gateway.request"]
    mine = [line for line in request_lines if line.startswith("POST /bank/callbacks 200")]
    assert len(mine) == 2, request_lines
    assert mine[0].endswith("bank event evt_line_1: processed"), mine
    assert mine[1].endswith("bank event evt_line_1: duplicate"), mine
    assert not [r for r in caplog.records if r.getMessage().startswith("bank event")]
