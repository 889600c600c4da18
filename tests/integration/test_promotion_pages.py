"""The portal's promotions and experiments pages through Flask's test client, on SQLite and PG."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.promotion_models import PromotionRow
from tests.factories import second_merchant
from tests.integration.test_portal_pages import log_in, staff
from tests.integration.test_promotion_admin import experiment_day
from tests.integration.test_recon_pages import form_token

THRESHOLD_FORM = {
    "key": "spring-10",
    "name": "Spring: spend 50, save 5",
    "kind": "threshold",
    "threshold_tiers": "50.00:5.00, 100.00:15.00",
    "payment_methods": ["qr", "card"],
    "weekdays": ["5", "6"],
    "hours_from": "9",
    "hours_to": "18",
    "budget": "100.00",
    "global_count": "200",
    "per_customer_per_day": "1",
    "categories": "coffee, cake",
}


@pytest.fixture
def client(app: Any, demo: Any) -> FlaskClient:
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    return client


def post(client: FlaskClient, page: str, url: str, data: dict[str, Any]) -> Any:
    token = form_token(client.get(page).get_data(as_text=True))
    return client.post(url, data={**data, "csrf_token": token})


def status(client: FlaskClient, key: str) -> str:
    page = client.get(f"/portal/promotions/{key}").get_data(as_text=True)
    found = re.search(r'id="status" class="[^"]+" data-status="(\w+)"', page)
    assert found, page
    return found.group(1)


def test_manager_creates_runs_and_ends_a_threshold_promotion(
    client: FlaskClient, db: Database
) -> None:
    assert "No promotions yet" in client.get("/portal/promotions").get_data(as_text=True)
    created = post(client, "/portal/promotions/new", "/portal/promotions/new", THRESHOLD_FORM)
    assert created.status_code == 303, created.get_data(as_text=True)
    assert created.headers["Location"].endswith("/portal/promotions/spring-10")
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(PromotionRow)).one()
        assert (row.budget_minor, row.count_limit, row.currency) == (10_000, 200, "EUR")
        assert row.spec["tiers"] == [[5000, 500], [10000, 1500]]
        assert row.spec["targeting"]["hours"] == [9, 18]
        assert row.spec["targeting"]["weekdays"] == [5, 6]
        assert row.spec["targeting"]["categories"] == ["cake", "coffee"]

    listed = client.get("/portal/promotions").get_data(as_text=True)
    assert 'data-promotion="spring-10" data-status="draft"' in listed
    assert "€0.00 / €100.00" in listed  # an English page: English number format
    detail = client.get("/portal/promotions/spring-10").get_data(as_text=True)
    assert "Spend 50.00 EUR, save 5.00 EUR." in detail

    page = "/portal/promotions/spring-10"
    assert post(client, page, f"{page}/activate", {}).status_code == 303
    assert status(client, "spring-10") == "live"
    assert post(client, page, f"{page}/pause", {}).status_code == 303
    assert status(client, "spring-10") == "paused"
    refused = post(client, page, f"{page}/pause", {})
    assert refused.status_code == 422
    assert "only an active promotion can be paused" in refused.get_data(as_text=True)
    assert post(client, page, f"{page}/resume", {}).status_code == 303
    unconfirmed = post(client, page, f"{page}/end", {})
    assert "End it for good" in unconfirmed.get_data(as_text=True)
    assert status(client, "spring-10") == "live"
    assert post(client, page, f"{page}/end", {"confirm": "yes"}).status_code == 303
    assert status(client, "spring-10") == "finished"
    history = client.get(page).get_data(as_text=True)
    for action in ("created", "activated", "paused", "resumed", "ended"):
        assert f'data-action="{action}"' in history


def test_form_errors_keep_what_was_typed(client: FlaskClient, db: Database) -> None:
    for changes, message in (
        ({"threshold_tiers": "50.00:5.001"}, "Tiers: EUR has 2 decimal places"),
        ({"budget": "1.5.0"}, "Budget: amount"),
        ({"hours_to": ""}, "Hours: give both from and to"),
        ({"key": "no spaces please"}, "key: 1 to 64 letters"),
        ({"kind": "percent", "percent_percent": "120"}, "Percent off: expected a percentage"),
        ({"spec_json": "{nope"}, "JSON spec: not valid JSON"),
        ({"spec_json": '{"tiers": [[1, -1]]}'}, "tiers[0].save_minor"),
    ):
        failed = post(
            client, "/portal/promotions/new", "/portal/promotions/new", THRESHOLD_FORM | changes
        )
        page = failed.get_data(as_text=True)
        assert failed.status_code == 422, page
        assert message in page
        assert 'value="Spring: spend 50, save 5"' in page
        assert re.search(r'name="weekdays" value="5" checked', page)
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PromotionRow)).all() == []


KIND_FORMS: dict[str, dict[str, Any]] = {
    "percent": {"percent_percent": "12.5", "percent_cap": "5.00"},
    "multi_buy": {"multi_buy_buy": "2", "multi_buy_get": "1"},
    "fixed_price": {"fixed_price_quantity": "3", "fixed_price_price": "10.00"},
    "new_customer": {"new_customer_amount": "3.00"},
    "fee_waiver": {},
    "coupon": {"coupon_percent": "10", "coupon_batch": "on"},
    "points": {"points_points": "1", "points_per": "1.00", "points_expiry_days": "365"},
    "gift": {"gift_gift": "Tote bag", "gift_after_purchases": "10"},
    "points_redeem": {"points_redeem_value": "0.01", "points_redeem_share": "50"},
    "referral": {"referral_amount": "5.00", "referral_points": "100", "referral_max": "10"},
    "draw": {
        "prize_name_1": "Coffee",
        "prize_chance_1": "10",
        "prize_value_1": "3.50",
        "prize_cap_1": "20",
        "draw_budget": "500.00",
        "draw_min_spend": "10.00",
    },
}


def test_every_kind_can_be_made_without_json(client: FlaskClient, db: Database) -> None:
    for kind, fields in KIND_FORMS.items():
        form = {"key": kind.replace("_", "-"), "name": f"A {kind}", "kind": kind} | fields
        created = post(client, "/portal/promotions/new", "/portal/promotions/new", form)
        assert created.status_code == 303, (kind, created.get_data(as_text=True))
        assert client.get(created.headers["Location"]).status_code == 200
    with db.unit_of_work(readonly=True) as uow:
        specs = {r.kind: r.spec for r in uow.session.scalars(select(PromotionRow))}
    assert specs["percent"]["percent_bp"] == 1250
    assert specs["draw"]["table"]["prizes"][0]["probability_ppm"] == 100_000
    assert specs["points_redeem"]["max_share_bp"] == 5000
    assert specs["coupon"]["batch"] is True


def test_batch_coupons_are_issued_and_downloaded(client: FlaskClient) -> None:
    form = {"key": "welcome", "name": "Welcome", "kind": "coupon"} | KIND_FORMS["coupon"]
    post(client, "/portal/promotions/new", "/portal/promotions/new", form)
    page = "/portal/promotions/welcome"
    issued = post(client, page, f"{page}/coupons", {"count": "25", "expires_at": ""})
    assert issued.status_code == 303
    assert "25 codes issued" in client.get(page).get_data(as_text=True)
    rows = client.get(f"{page}/coupons.csv").get_data(as_text=True).splitlines()
    assert rows[0] == "code,status,expires_at,customer_id" and len(rows) == 26
    assert post(client, page, f"{page}/coupons", {"count": "0"}).status_code == 422


def test_experiments_are_created_and_their_results_shown(client: FlaskClient, db: Database) -> None:
    bad = post(client, "/portal/experiments", "/portal/experiments", {
        "key": "t1", "name": "Test", "variants": "A:1, B:x", "holdout": "10", "control": "A",
    })  # fmt: skip
    assert bad.status_code == 422 and 'value="A:1, B:x"' in bad.get_data(as_text=True)
    made = post(client, "/portal/experiments", "/portal/experiments", {
        "key": "t1", "name": "Test", "variants": "A:1, B:1", "holdout": "5", "control": "A",
    })  # fmt: skip
    assert made.status_code == 303
    form = THRESHOLD_FORM | {"key": "t1-b", "ab": "t1/B"}
    assert post(client, "/portal/promotions/new", "/portal/promotions/new", form).status_code == 303
    page = client.get("/portal/experiments/t1").get_data(as_text=True)
    assert "Variant <strong>B</strong>" in page and 'data-variant="holdout"' in page

    experiment_day(db)
    page = client.get("/portal/experiments/exp1").get_data(as_text=True)
    assert re.search(
        r'data-variant="B">.*?<td class="amount"[^>]*>2</td><td class="amount"[^>]*>2</td>',
        page,
        re.S,
    )
    assert "Not enough data yet" in page
    assert "two-proportion z-test" in page


def test_another_merchants_manager_gets_404(app: Any, client: FlaskClient, db: Database) -> None:
    post(client, "/portal/promotions/new", "/portal/promotions/new", THRESHOLD_FORM)
    other = second_merchant(db)
    stranger = app.test_client()
    log_in(stranger, other["manager"], other["password"])
    assert stranger.get("/portal/promotions/spring-10").status_code == 404
    assert "spring-10" not in stranger.get("/portal/promotions").get_data(as_text=True)
    token = form_token(stranger.get("/portal/promotions").get_data(as_text=True))
    ended = stranger.post(
        "/portal/promotions/spring-10/end", data={"confirm": "yes", "csrf_token": token}
    )
    assert ended.status_code == 404
    assert stranger.get("/portal/experiments/exp1").status_code == 404
    assert status(client, "spring-10") == "draft"


def test_a_payments_page_shows_its_sale_and_promotions(
    client: FlaskClient, db: Database, demo: Any
) -> None:
    from tests.integration.test_sales import add_promotion, line, pay, quote

    add_promotion(db, demo, "ten", "percent", {"name": "Ten off", "percent_bp": 1000})
    payment = pay(db, demo, quote(db, demo, line("tea", "4.00", 3)).id)
    assert payment is not None
    page = client.get(f"/portal/payments/{payment.id}").get_data(as_text=True)
    sale = page[page.index('id="sale"') :]
    assert "Sale and promotions" in sale and "Tea" in sale
    assert re.search(r"Ten off</a>: €1.20 off", sale), sale[:800]


def test_dates_are_typed_in_the_stores_time_zone(client: FlaskClient, db: Database) -> None:
    """The demo's stores are both in Berlin: 09:00 typed in January is 08:00 UTC."""
    from datetime import UTC, datetime

    form = {**THRESHOLD_FORM, "starts_at": "2030-01-15T09:00", "ends_at": "2030-07-15T09:00"}
    created = post(client, "/portal/promotions/new", "/portal/promotions/new", form)
    assert created.status_code == 303, created.get_data(as_text=True)
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(PromotionRow)).one()
        assert row.starts_at == datetime(2030, 1, 15, 8, 0, tzinfo=UTC)
        assert row.ends_at == datetime(2030, 7, 15, 7, 0, tzinfo=UTC)  # summer time
    page = client.get("/portal/promotions").get_data(as_text=True)
    assert "times in Europe/Berlin" in page


def test_a_broken_split_is_warned_about_on_the_results_page(
    client: FlaskClient, db: Database
) -> None:
    """40 customers in control and 4 in B of a 1:1 test: chi-square p = 5.7e-8 (< 0.001)."""
    from datetime import UTC, datetime

    from gateway.adapters.promotion_models import Customer, ExperimentExposure
    from gateway.services.promotions import promotion_admin as admin
    from tests.integration.test_promotion_admin import _sale, merchant_id

    mid = merchant_id(db)
    when = datetime(2025, 4, 1, 9, tzinfo=UTC)
    with db.unit_of_work() as uow:
        exp = admin.create_experiment(
            uow, mid, key="skewed", name="Skewed", variants=[("control", 1), ("B", 1)],
            holdout_bp=0, control="control",
        )  # fmt: skip
        for n, variant in enumerate(["control"] * 40 + ["B"] * 4):
            customer = Customer(
                merchant_id=mid, token=f"skew{n}", referral_code=f"SK{n}", spend_currency="EUR"
            )
            uow.session.add(customer)
            uow.session.flush()
            uow.session.add(
                ExperimentExposure(
                    experiment_id=exp.id,
                    variant=variant,
                    customer_id=customer.id,
                    sale_id=_sale(uow, mid, customer.id, 1000, when),
                    created_at=when,
                )
            )
        uow.commit()
    page = client.get("/portal/experiments/skewed").get_data(as_text=True)
    assert 'id="srm-warning"' in page and "40 / 4" in page and "22 / 22" in page
    experiment_day(db)  # 3 / 2 / 1 customers in a 45 / 45 / 10 split: chance, no warning
    assert 'id="srm-warning"' not in client.get("/portal/experiments/exp1").get_data(as_text=True)
