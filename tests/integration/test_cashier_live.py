"""The card payment screen's live stream (server-sent events), through Flask's test client on
SQLite and PostgreSQL: each change of the payment is one event, the stream ends when the payment
is settled or its lifetime is over, and it shows only what the signed-in cashier may see."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from gateway.adapters.db import Database
from gateway.entrypoints.app import create_app
from gateway.services.devices import cards
from tests.card_helpers import card_payment, first_till
from tests.conftest import app_config
from tests.factories import second_merchant
from tests.integration.test_cashier_pages import at_till, log_in


def events(chunks: Iterator[bytes]) -> Iterator[tuple[str, str]]:
    """(event name, data) of each event as the server sends it; comments are skipped."""
    buffer = b""
    for chunk in chunks:
        buffer += chunk
        while b"\n\n" in buffer:
            block, buffer = buffer.split(b"\n\n", 1)
            fields = [line.split(": ", 1) for line in block.decode().splitlines()]
            named = {f[0]: f[1] for f in fields if len(f) == 2 and f[0]}
            if "event" in named:
                yield named["event"], named.get("data", "")


def test_each_change_is_one_event_until_the_payment_is_settled(
    app: Any, db: Database, demo: Any
) -> None:
    payment_id = card_payment(db, first_till(db, demo), "9.99")
    client = app.test_client()
    at_till(client, demo)
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert f'data-events-url="/cashier/payments/{payment_id}/events"' in page
    response = client.get(f"/cashier/payments/{payment_id}/events", buffered=False)
    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-store"
    stream = events(response.response)
    name, data = next(stream)
    first = json.loads(data)
    assert name == "status"
    assert (first["screen"], first["open"]) == ("terminal", True)
    assert first["display_text"] == "Sending to the terminal…"

    for text in ("Insert card", "PIN entry"):  # as the device host writes them
        with db.unit_of_work() as uow:
            cards.show(uow, payment_id, text)
            uow.commit()
        name, data = next(stream)
        assert (name, json.loads(data)["display_text"]) == ("status", text)

    with db.unit_of_work() as uow:
        approved = cards.TerminalOutcome(
            approved=True, result_code=0, message="Approved", amount_minor=999, receipt_number=7
        )
        cards.apply_charge(uow, payment_id, approved, "test")
        uow.commit()
    name, data = next(stream)
    last = json.loads(data)
    assert (last["screen"], last["open"], last["display_text"]) == ("paid", False, "Approved")
    assert list(stream) == []  # settled: the stream has ended
    response.close()


def test_a_stream_ends_after_its_lifetime_and_can_be_turned_off(db: Database, demo: Any) -> None:
    payment_id = card_payment(db, first_till(db, demo), "9.99")
    short = create_app(app_config(db, web={"event_stream_seconds": 0.2}), db=db)
    client = short.test_client()
    at_till(client, demo)
    response = client.get(f"/cashier/payments/{payment_id}/events", buffered=False)
    said = list(events(response.response))  # ends by itself, the payment still pending
    assert [name for name, _ in said] == ["status"]
    response.close()

    off = create_app(app_config(db, web={"event_stream_seconds": 0}), db=db)
    client = off.test_client()
    at_till(client, demo)
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert "data-events-url" not in page and "data-status-url" in page  # it polls
    assert client.get(f"/cashier/payments/{payment_id}/events").status_code == 404


@pytest.mark.parametrize("who", ["signed_out", "other_merchant"])
def test_only_a_signed_in_cashier_of_the_merchant_gets_the_stream(
    app: Any, db: Database, demo: Any, who: str
) -> None:
    payment_id = card_payment(db, first_till(db, demo), "9.99")
    client = app.test_client()
    if who == "other_merchant":
        other = second_merchant(db)
        assert log_in(client, other["manager"], other["password"]).status_code == 303
    response = client.get(f"/cashier/payments/{payment_id}/events")
    if who == "signed_out":
        assert response.status_code == 401 and response.get_json()["error"] == "signed_out"
    else:
        assert response.status_code == 404
    assert response.mimetype != "text/event-stream"
