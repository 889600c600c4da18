"""The currencies a merchant and its stores accept ([payments.currencies]) are checked when a QR
or card payment is created: over real HTTP, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment
from gateway.config import load_config
from gateway.errors import ConfigurationError
from tests.conftest import LiveServer, app_config, isolated_env


def _pay(server: Any, demo: dict[str, Any], currency: str, *, till: int = 0, **body: Any) -> Any:
    amount = {"KWD": "1.000", "CLF": "1.0000", "JPY": "100"}.get(currency, "1.00")
    return requests.post(
        f"{server.url}/api/v1/payments",
        json={"amount": amount, "currency": currency, "method": "qr", **body},
        headers={"Authorization": f"Bearer {demo['tills'][till]['api_key']}"},
        timeout=10,
    )


def _count(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.scalar(select(func.count()).select_from(Payment)) or 0


@pytest.mark.parametrize("currency", ["KWD", "BOV", "CLF", "USD"])
@pytest.mark.parametrize("method", ["qr", "card"])
def test_an_eur_merchant_refuses_other_currencies_by_default(
    live_server: Any, db: Database, demo: Any, currency: str, method: str
) -> None:
    answer = _pay(live_server, demo, currency, method=method)
    assert answer.status_code == 422, answer.text
    assert answer.headers["Content-Type"] == "application/problem+json"
    problem = answer.json()
    assert problem["type"] == "/problems/currency-not-accepted"
    assert problem["accepted"] == ["EUR"] and currency in problem["detail"]
    assert _count(db) == 0
    assert _pay(live_server, demo, "EUR").status_code == 201


def test_a_merchant_and_its_stores_accept_what_is_configured(db: Database, demo: Any) -> None:
    from gateway.entrypoints.app import create_app

    # The merchant takes EUR and USD; its Berlin Mitte store only EUR (the demo's tills 0 and 1
    # are in Berlin Mitte, till 2 in the second store).
    accepted = {
        "merchants": {demo["merchant"]: ["EUR", "USD"]},
        "stores": {"Berlin Mitte": ["EUR"]},
    }
    app = create_app(app_config(db, payments={"currencies": accepted}), db=db)
    with LiveServer(app) as server:
        assert _pay(server, demo, "USD", till=2).status_code == 201
        refused = _pay(server, demo, "USD", till=0)
        assert refused.status_code == 422 and refused.json()["accepted"] == ["EUR"]
        assert _pay(server, demo, "EUR", till=0).status_code == 201
        assert _pay(server, demo, "KWD", till=2).json()["accepted"] == ["EUR", "USD"]


@pytest.mark.parametrize("codes", [["ZZZ"], [], ["eur"]])
def test_a_currency_list_that_is_not_iso_4217_stops_the_start(codes: list[str]) -> None:
    with pytest.raises(ConfigurationError, match=r"\[payments\] currencies"):
        load_config(
            env=isolated_env(),
            overrides={
                "database": {"url": "sqlite://"},
                "payments": {"currencies": {"merchants": {"Shop": codes}}},
            },
        )
