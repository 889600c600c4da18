"""Signed callbacks whose content breaks the contract are stored as ``invalid`` and applied to
nothing (docs/bank-api.md): over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from gateway.adapters.db import Database
from tests.conftest import LiveServer
from tests.integration.test_bank_callbacks import (  # noqa: F401
    bank_app,
    deliver,
    history,
    new_payment,
    paid_event,
    reload,
    server,
    settlement_event,
    stored,
)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"amount": "-12.00"}, "more than zero"),
        ({"amount": "0.00"}, "more than zero"),
        ({"amount": "-0.01"}, "more than zero"),
        ({"currency": "KWX"}, "unknown currency"),
        ({"currency": "zz"}, "unknown currency"),
    ],
)
def test_a_payment_callback_that_breaks_the_contract_is_invalid_and_not_applied(
    db: Database,
    server: LiveServer,  # noqa: F811
    data: dict[str, str],
    error: str,
) -> None:
    payment = new_payment(db)
    answer = deliver(server, "evt_bad", paid_event(payment, **data))
    assert (answer.status_code, answer.json()) == (200, {"status": "invalid"})
    [event] = stored(db)
    assert event.status == "invalid" and error in (event.error or "")
    again = reload(db, payment.id)
    assert (again.status, again.attention) == ("pending", None)
    assert history(db, payment.id, "attention") == []


def test_a_negative_paid_callback_after_the_payment_is_not_a_second_payment(
    db: Database,
    server: LiveServer,  # noqa: F811
) -> None:
    payment = new_payment(db)
    assert deliver(server, "evt_paid", paid_event(payment)).json() == {"status": "processed"}
    bad = paid_event(payment, amount="-12.34", bank_payment_id="bp_other")
    assert deliver(server, "evt_neg", bad).json() == {"status": "invalid"}
    again = reload(db, payment.id)
    assert (again.status, again.attention) == ("paid", None)


def test_a_settlement_with_negative_gross_is_invalid(
    db: Database,
    server: LiveServer,  # noqa: F811
) -> None:
    answer = deliver(server, "evt_settle", settlement_event("set_neg", gross="-1.00"))
    assert answer.json() == {"status": "invalid"}
