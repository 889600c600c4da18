"""Callbacks: signed, retried until accepted, and each fault knob doing what it says."""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from sandbox_bank import state
from sandbox_bank.app import create_app
from sandbox_bank.delivery import backoff_seconds, deliver_due
from sandbox_bank.models import Delivery
from tests.sandbox_bank.helpers import DEMO, Receiver, pay, sandbox_config

FAULTS = f"/sandbox/merchants/{DEMO}/faults"


def _history(client: FlaskClient) -> list[dict[str, Any]]:
    return client.get("/sandbox/deliveries").json  # type: ignore[no-any-return]


def _deliver_until_quiet(app: Flask, rounds: int = 10) -> None:
    for _ in range(rounds):
        time.sleep(0.005)  # past the test configuration's millisecond backoff
        deliver_due(app)


def test_retried_with_the_same_id_after_the_receiver_fails(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    receiver.answers = [500, 503]
    pay(client, "K-1")
    _deliver_until_quiet(app)
    attempts = [r for r in receiver.received if r["body"]["type"] == "payment.succeeded"]
    assert [a["status"] for a in attempts] == [500, 503, 204]
    assert len({a["id"] for a in attempts}) == 1 and all(a["verified"] for a in attempts)
    [event] = _history(client)
    assert event["status"] == "delivered" and event["attempts"] == 3
    assert [h["status_code"] for h in event["history"]] == [500, 503, 204]


def test_backoff_grows_exponentially_with_jitter_and_a_ceiling() -> None:
    rng = random.Random(7)
    for attempts, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (6, 32.0), (12, 300.0)]:
        waits = [backoff_seconds(attempts, 1000, 300, rng) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 1


def test_faults_are_read_set_merged_validated_and_cleared(client: FlaskClient) -> None:
    assert client.get(FAULTS).json["drop_first"] == 0
    assert client.put(FAULTS, json={"drop_first": 2}).json["drop_first"] == 2
    merged = client.put(FAULTS, json={"wrong_signature": True}).json
    assert merged["drop_first"] == 2 and merged["wrong_signature"] is True
    assert client.put(FAULTS, json={"explode": 1}).status_code == 422
    assert client.put(FAULTS, json={"duplicate": "2"}).status_code == 422
    assert client.put(FAULTS, json={"out_of_order": 1}).status_code == 422
    assert client.put(FAULTS, json={"delay_ms": -1}).status_code == 422
    assert client.put("/sandbox/merchants/NOPE/faults", json={}).status_code == 404
    cleared = client.delete(FAULTS).json
    assert cleared["drop_first"] == 0 and cleared["wrong_signature"] is False


def test_delay_ms_waits_before_each_callback(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    client.put(FAULTS, json={"delay_ms": 150})
    pay(client, "K-1")
    started = time.monotonic()
    deliver_due(app)
    assert time.monotonic() - started >= 0.15
    assert len(receiver.accepted()) == 1


def test_duplicate_sends_extra_copies_with_the_same_id(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    client.put(FAULTS, json={"duplicate": 2})
    pay(client, "K-1")
    deliver_due(app)
    copies = receiver.accepted("payment.succeeded")
    assert len(copies) == 3 and len({c["id"] for c in copies}) == 1
    assert all(c["verified"] and c["body"] == copies[0]["body"] for c in copies)


def test_out_of_order_shuffles_pending_callbacks(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    client.put(FAULTS, json={"out_of_order": True})
    references = [f"K-{n}" for n in range(5)]
    for reference in references:
        pay(client, reference)
    deliver_due(app)
    seen = [r["body"]["data"]["reference"] for r in receiver.accepted()]
    assert sorted(seen) == references and seen != references


def test_drop_first_drops_attempts_and_the_retry_delivers(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    client.put(FAULTS, json={"drop_first": 2})
    pay(client, "K-1")
    deliver_due(app)
    assert receiver.received == []
    _deliver_until_quiet(app)
    assert len(receiver.accepted("payment.succeeded")) == 1 and len(receiver.received) == 1
    [event] = _history(client)
    assert [h["dropped"] for h in event["history"]] == [True, True, False]
    assert event["attempts"] == 3 and event["status"] == "delivered"


def test_wrong_signature_is_rejected_until_the_fault_is_cleared(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    client.put(FAULTS, json={"wrong_signature": True})
    pay(client, "K-1")
    _deliver_until_quiet(app, rounds=3)
    assert receiver.received and all(r["status"] == 401 for r in receiver.received)
    assert not any(r["verified"] for r in receiver.received)
    assert _history(client)[0]["status"] == "pending"
    client.delete(FAULTS)
    _deliver_until_quiet(app, rounds=3)
    [accepted] = receiver.accepted()
    assert accepted["verified"] and accepted["id"] == receiver.received[0]["id"]


def test_api_5xx_answers_the_next_calls_with_503(client: FlaskClient, auth: dict[str, str]) -> None:
    pay(client, "K-1")
    client.put(FAULTS, json={"api_5xx": 2})
    first, second, third = (client.get("/v1/payments/K-1", headers=auth) for _ in range(3))
    assert first.status_code == second.status_code == 503
    assert first.headers["Retry-After"] == "1" and first.mimetype == "application/problem+json"
    assert third.status_code == 200
    assert client.get(FAULTS).json["api_5xx"] == 0


def test_the_background_thread_delivers_when_configured(tmp_path: Path, receiver: Receiver) -> None:
    config = sandbox_config(tmp_path, receiver.url, deliver_in_background=True, poll_interval_ms=20)
    app = create_app(config)
    bank = state.of(app)
    receiver.secrets[DEMO] = bank.settings.merchants[0].webhook_secret
    try:
        pay(app.test_client(), "K-BG")
        ceiling = time.monotonic() + 60
        while not receiver.accepted() and time.monotonic() < ceiling:
            time.sleep(0.02)
        assert receiver.accepted()[0]["body"]["data"]["reference"] == "K-BG"
    finally:
        bank.close()
    assert not bank.worker.is_alive()


@pytest.mark.parametrize("answer", [301, 404, 500])
def test_anything_but_2xx_is_retried(
    app: Flask, client: FlaskClient, receiver: Receiver, answer: int
) -> None:
    receiver.answers = [answer]
    pay(client, "K-1")
    _deliver_until_quiet(app, rounds=3)
    assert [r["status"] for r in receiver.received] == [answer, 204]


def test_drop_all_loses_every_callback_until_cleared_then_the_retry_delivers(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    assert client.put(FAULTS, json={"drop_all": 1}).status_code == 422
    client.put(FAULTS, json={"drop_all": True})
    pay(client, "K-1")
    _deliver_until_quiet(app, rounds=3)
    assert receiver.received == []
    [event] = _history(client)
    assert event["status"] == "pending" and all(h["dropped"] for h in event["history"])
    client.delete(FAULTS)
    _deliver_until_quiet(app, rounds=3)
    assert len(receiver.accepted("payment.succeeded")) == 1


def test_drop_percent_loses_the_same_share_of_callbacks_on_every_retry(
    app: Flask, client: FlaskClient, receiver: Receiver
) -> None:
    assert client.put(FAULTS, json={"drop_percent": 101}).status_code == 422
    client.put(FAULTS, json={"drop_percent": 30})
    references = [f"K-{n}" for n in range(40)]
    for reference in references:
        pay(client, reference)
    _deliver_until_quiet(app, rounds=3)
    delivered = {r["body"]["data"]["reference"] for r in receiver.accepted()}
    with state.of(app).db.session() as session:
        lost = session.scalars(select(Delivery).where(Delivery.status == "pending")).all()
        assert len(delivered) + len(lost) == 40
        assert 0 < len(lost) < 40  # 30 % of 40 by hash: some lost, not all
        assert all(d.attempts >= 2 for d in lost)  # retried, and dropped again
