"""Promotion specs are validated completely, in the form and the JSON path alike, and a stored
promotion that is not valid (saved before these checks) never breaks a page: it is flagged.
On SQLite and PostgreSQL, through Flask's test client."""

from __future__ import annotations

import html
import json
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.promotion_models import PromotionRow
from tests.integration.test_promotion_pages import THRESHOLD_FORM, client, post  # noqa: F401
from tests.integration.test_sales import add_promotion, quote

NEW = "/portal/promotions/new"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"priority": "9" * 5000}, "Priority: expected a whole number from"),
        ({"global_count": "1" + "0" * 30}, "Uses in all: expected a whole number from"),
        ({"global_count": "2000000000"}, "limits.global_count: expected a whole number from 0"),
        ({"spec_json": "[" * 3000 + "]" * 3000}, "JSON spec: JSON nested deeper than 6"),
        ({"spec_json": '{"a":' * 10 + "1" + "}" * 10}, "JSON spec: JSON nested deeper than 6"),
        ({"starts_at": "0001-01-01T00:00"}, "Starts: 0001-01-01 is outside"),
        ({"ends_at": "9999-12-31T23:59"}, "Ends: 9999-12-31 is outside"),
        ({"kind": "percent", "percent_percent": "1e999999"}, "Percent off: expected a percentage"),
        ({"kind": "percent", "percent_percent": "NaN"}, "Percent off: expected a percentage"),
        ({"currency": "zzz"}, "unknown currency 'ZZZ'"),
        (
            {"kind": "percent", "spec_json": json.dumps({"percent_bp": 10**32})},
            "JSON spec.percent_bp: the number is out of range",
        ),
        (
            {"kind": "percent", "spec_json": json.dumps({"percent_bp": 10**12})},
            "percent_bp: expected a whole number from 0 to 10000",
        ),
        (
            {"kind": "percent", "spec_json": json.dumps({"percent_bp": 10001})},
            "percent_bp: expected a whole number from 0 to 10000",
        ),
        (
            {"spec_json": json.dumps({"tiers": [[5000, 500]], "priority": 10**7})},
            "priority: expected a whole number from -1000000 to 1000000",
        ),
        (
            {"spec_json": json.dumps({"tiers": [[5000, 500]], "targeting": {"currency": "ZZZ"}})},
            "targeting.currency: 'ZZZ' is not an ISO 4217 currency code",
        ),
    ],
)
def test_a_hostile_promotion_form_is_refused_with_the_field_named(
    client: FlaskClient,  # noqa: F811
    db: Database,
    changes: dict[str, str],
    message: str,
) -> None:
    answer = post(client, NEW, NEW, THRESHOLD_FORM | changes)
    page = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 422, page[:2000]
    assert message in page, page[page.find("alert") - 100 : page.find("alert") + 400]
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PromotionRow)).all() == []


def test_an_invalid_stored_promotion_is_flagged_not_a_broken_page(
    client: FlaskClient,  # noqa: F811
    db: Database,
    demo: dict[str, Any],
) -> None:
    spec = {"percent_bp": 10**32, "targeting": {"currency": "ZZZ"}, "limits": {"budget_minor": 5}}
    add_promotion(db, demo, "zzz-coins", "percent", spec)
    add_promotion(db, demo, "fine", "percent", {"percent_bp": 1000})
    listing = client.get("/portal/promotions")
    page = listing.get_data(as_text=True)
    assert listing.status_code == 200, page[:2000]
    assert 'data-promotion="zzz-coins" data-status="live" data-invalid' in page
    assert "percent_bp: expected a whole number from 0 to 10000" in page
    assert 'data-promotion="fine" data-status="live">' in page
    detail = client.get("/portal/promotions/zzz-coins")
    assert detail.status_code == 200, detail.get_data(as_text=True)[:2000]
    assert "percent_bp: expected a whole number" in detail.get_data(as_text=True)
    # Never priced: a sale of 20.00 gets the valid 10 % only, not 10^28 % off.
    assert quote(db, demo).total_after_minor == 1800
