"""The dashboard's read model and page on SQLite and PostgreSQL, from a set of sales whose
sums are worked out by hand below (local days and hours in Europe/Berlin, across the
2026-03-29 change to summer time)."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, date, datetime
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import select

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, Payment, ReconResult, ReconRun, Store, Till
from gateway.adapters.promotion_models import Customer, PromotionRow, Sale, SalePromotion
from gateway.services.dashboard import dashboard_reads as reads
from gateway.services.staff.scope import Scope
from tests.integration.test_portal_pages import log_in, staff

MARCH = reads.Period(date(2026, 3, 1), date(2026, 3, 31), "Europe/Berlin")
NOW = datetime(2026, 5, 20, 12, 0, tzinfo=UTC)


def at(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


# payment: store, method, status, amount, currency, paid at (UTC) → local Berlin day and hour
PAYMENTS = [
    ("Mitte", "qr", "paid", 1000, "EUR", at(3, 10, 9, 15)),  # 03-10 10h
    ("Mitte", "card", "settled", 2500, "EUR", at(3, 10, 9, 45)),  # 03-10 10h
    ("Kreuzberg", "qr", "paid", 700, "EUR", at(3, 28, 23, 30)),  # 03-29 00h (CET)
    ("Mitte", "qr", "paid", 1200, "EUR", at(3, 29, 22, 30)),  # 03-30 00h (CEST)
    ("Mitte", "qr", "refunded", 500, "EUR", at(3, 30, 10)),  # 03-30 12h
    ("Mitte", "qr", "cancelled", 9999, "EUR", at(3, 30, 10)),  # never paid: left out
    ("Mitte", "card", "paid", 300, "USD", at(3, 30, 10)),  # 03-30 12h, its own currency
    ("Mitte", "qr", "paid", 4000, "EUR", at(2, 15, 10)),  # before the period
]
# sale: key, customer, store, status, total, created at (UTC)
SALES = [
    ("c1-feb", "c1", "Mitte", "paid", 1500, at(2, 15, 10)),
    ("c1-mar", "c1", "Mitte", "paid", 1000, at(3, 10, 9)),
    ("c1-end", "c1", "Mitte", "paid", 500, at(3, 30, 10)),
    ("c2-mar", "c2", "Mitte", "paid", 2500, at(3, 10, 9, 30)),
    ("c2-end", "c2", "Mitte", "paid", 1200, at(3, 29, 22, 30)),  # local 03-30
    ("c3-first", "c3", "Kreuzberg", "paid", 700, at(3, 28, 23, 30)),  # local 03-29
    ("anon", None, "Mitte", "paid", 800, at(3, 10, 12)),
    ("c4-gone", "c4", "Mitte", "cancelled", 900, at(3, 10, 12)),
]
# sale promotion: sale, promotion, state, discount, returned discount
GIVEN = [
    ("c1-mar", "p1", "committed", 200, 50),
    ("c2-mar", "p1", "committed", 300, 0),
    ("c3-first", "p2", "released", 100, 0),
]


def seed(db: Database) -> dict[str, int]:
    with db.unit_of_work() as uow:
        merchant = uow.session.scalars(select(Merchant).order_by(Merchant.id)).first()
        assert merchant is not None
        stores = {
            s.name.split()[-1]: s
            for s in uow.session.scalars(select(Store).where(Store.merchant_id == merchant.id))
        }
        tills = {
            name: uow.session.scalars(select(Till).where(Till.store_id == s.id)).first()
            for name, s in stores.items()
        }
        for store, method, status, amount, currency, paid in PAYMENTS:
            till = tills[store]
            assert till is not None
            uow.session.add(
                Payment(
                    id=str(uuid.uuid4()),
                    merchant_id=merchant.id,
                    store_id=stores[store].id,
                    till_id=till.id,
                    method=method,
                    status=status,
                    amount_minor=amount,
                    currency=currency,
                    reference=uuid.uuid4().hex[:20],
                    created_by="test",
                    created_at=paid,
                    paid_at=None if status == "cancelled" else paid,
                )
            )
        customers = {}
        for token in ("c1", "c2", "c3", "c4"):
            c = Customer(
                merchant_id=merchant.id, token=f"dash-{token}", referral_code=f"D{token}",
                spend_currency="EUR",
            )  # fmt: skip
            uow.session.add(c)
            uow.session.flush()
            customers[token] = c.id
        sale_ids = {}
        for key, token, store, status, total, created in SALES:
            till = tills[store]
            assert till is not None
            sale = Sale(
                id=str(uuid.uuid4()), merchant_id=merchant.id, store_id=stores[store].id,
                till_id=till.id, customer_id=customers.get(token or ""), currency="EUR",
                status=status, payment_method="qr", lines=[], total_before_minor=total,
                total_after_minor=total, created_by="test", created_at=created,
                updated_at=created,
            )  # fmt: skip
            uow.session.add(sale)
            sale_ids[key] = sale.id
        promotions = {}
        for key in ("p1", "p2"):
            row = PromotionRow(
                merchant_id=merchant.id, key=key, name=f"Promotion {key}", kind="threshold",
                spec={}, state="active", created_by="test",
            )  # fmt: skip
            uow.session.add(row)
            uow.session.flush()
            promotions[key] = row.id
        for sale_key, promo, state, discount, returned in GIVEN:
            uow.session.add(
                SalePromotion(
                    sale_id=sale_ids[sale_key],
                    promotion_id=promotions[promo],
                    local_day=date(2026, 3, 10),
                    kind="threshold",
                    state=state,
                    discount_minor=discount,
                    returned_discount_minor=returned,
                )
            )
        run = ReconRun(merchant_id=merchant.id, day="2026-03-10", actor="test")
        uow.session.add(run)
        uow.session.flush()
        for subject, expected, settled in (("payment", 3500, None), ("line", None, 3400)):
            uow.session.add(
                ReconResult(
                    merchant_id=merchant.id,
                    run_id=run.id,
                    day="2026-03-10",
                    subject=subject,
                    subject_id=subject,
                    outcome="matched",
                    currency="EUR",
                    expected_minor=expected,
                    settled_minor=settled,
                    reason="",
                )
            )
        uow.commit()
        return {"merchant": merchant.id, **{n: s.id for n, s in stores.items()}}


def rows(items: list[Any]) -> list[tuple[Any, ...]]:
    return [(t.bucket, t.method, t.currency, t.count, t.amount_minor) for t in items]


def test_turnover_by_local_day_and_hour_per_method_and_currency(db: Database, demo: Any) -> None:
    ids = seed(db)
    whole = Scope(ids["merchant"])
    with db.unit_of_work(readonly=True) as uow:
        by_day = reads.turnover(uow, whole, MARCH, "day")
        by_hour = reads.turnover(uow, whole, MARCH, "hour")
        kreuzberg = reads.turnover(uow, Scope(ids["merchant"], ids["Kreuzberg"]), MARCH, "day")
    assert rows(by_day) == [
        ("2026-03-10", "card", "EUR", 1, 2500),
        ("2026-03-10", "qr", "EUR", 1, 1000),
        ("2026-03-29", "qr", "EUR", 1, 700),
        ("2026-03-30", "card", "USD", 1, 300),
        ("2026-03-30", "qr", "EUR", 2, 1700),
    ]
    assert rows(by_hour) == [
        ("00", "qr", "EUR", 2, 1900),
        ("10", "card", "EUR", 1, 2500),
        ("10", "qr", "EUR", 1, 1000),
        ("12", "card", "USD", 1, 300),
        ("12", "qr", "EUR", 1, 500),
    ]
    assert rows(kreuzberg) == [("2026-03-29", "qr", "EUR", 1, 700)]


def test_customers_retention_promotions_and_settlement(db: Database, demo: Any) -> None:
    ids = seed(db)
    whole = Scope(ids["merchant"])
    with db.unit_of_work(readonly=True) as uow:
        days = reads.customers(uow, whole, MARCH)
        cohorts = reads.retention(uow, whole, MARCH, NOW)
        costs = reads.promotion_costs(uow, whole, MARCH)
        tickets = reads.tickets(uow, whole, MARCH)
        settlement = reads.settlement_differences(uow, ids["merchant"], MARCH)
        mitte_days = reads.customers(uow, Scope(ids["merchant"], ids["Mitte"]), MARCH)
    assert [(d.day, d.active, d.new, d.returning) for d in days] == [
        ("2026-03-10", 2, 1, 1),  # c1 (back), c2 (new)
        ("2026-03-29", 1, 1, 0),  # c3 (new), 23:30 UTC the day before
        ("2026-03-30", 2, 0, 2),  # c1 and c2 again
    ]
    assert [(d.day, d.new) for d in mitte_days] == [
        ("2026-03-10", 1),
        ("2026-03-30", 0),
    ]
    # February: c1, back after 23 days. March: c2 back after 19.5 days; c3 never (53 days old).
    assert [(c.month, c.customers, c.retention) for c in cohorts] == [
        ("2026-02", 1, {30: (1, 1), 60: (1, 1), 90: (1, 1)}),
        ("2026-03", 2, {30: (2, 1), 60: (1, 1), 90: (0, 0)}),
    ]
    assert [(c.key, c.currency, c.uses, c.cost_minor, c.ticket_sum_minor) for c in costs] == [
        ("p1", "EUR", 2, 450, 3500)
    ]
    assert [(t.currency, t.with_count, t.with_sum_minor, t.without_count, t.without_sum_minor)
            for t in tickets] == [("EUR", 2, 3500, 4, 3200)]  # fmt: skip
    assert [(s.day, s.currency, s.difference_minor) for s in settlement] == [
        ("2026-03-10", "EUR", -100)
    ]


CUSTOM = "period=custom&from=2026-03-01&to=2026-03-31"


@pytest.fixture
def manager(app: Any, demo: Any) -> FlaskClient:
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    return client


def test_dashboard_draws_every_chart_with_its_numbers_and_csv(
    manager: FlaskClient, db: Database
) -> None:
    seed(db)
    page = manager.get(f"/portal/?{CUSTOM}")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    # Turnover by day and by hour: amount and count for EUR and USD (4 each); average ticket
    # (EUR, USD); customers; retention; promotions (EUR); settlement (EUR).
    assert html.count("<svg") == 8 + 2 + 1 + 1 + 1 + 1
    for key in ("turnover-day", "turnover-hour", "average-ticket", "customers", "retention",
                "promotions", "settlement"):  # fmt: skip
        assert f'data-chart="{key}"' in html
        assert f"/portal/dashboard/{key}.csv?" in html
    assert html.count("<details>") == 7
    answer = manager.get(f"/portal/dashboard/turnover-day.csv?{CUSTOM}")
    assert answer.status_code == 200 and answer.mimetype == "text/csv"
    assert "turnover-day_2026-03-01_2026-03-31.csv" in answer.headers["Content-Disposition"]
    table = list(csv.reader(io.StringIO(answer.get_data(as_text=True))))
    assert table == [
        ["Day", "Method", "Currency", "Payments", "Turnover (minor units)"],
        ["2026-03-10", "card", "EUR", "1", "2500"],
        ["2026-03-10", "qr", "EUR", "1", "1000"],
        ["2026-03-29", "qr", "EUR", "1", "700"],
        ["2026-03-30", "card", "USD", "1", "300"],
        ["2026-03-30", "qr", "EUR", "2", "1700"],
    ]
    promotions = manager.get(f"/portal/dashboard/promotions.csv?{CUSTOM}").get_data(as_text=True)
    # p1: 2 uses, 450 given, average ticket 1750 against 800 without promotions.
    assert promotions.splitlines()[1] == "p1,EUR,2,450,1750,800,950"


def test_dashboard_narrowed_to_a_store_and_bad_choices(manager: FlaskClient, db: Database) -> None:
    ids = seed(db)
    one = manager.get(f"/portal/dashboard/turnover-day.csv?{CUSTOM}&store={ids['Kreuzberg']}")
    assert one.get_data(as_text=True).splitlines()[1:] == ["2026-03-29,qr,EUR,1,700"]
    html = manager.get(f"/portal/?{CUSTOM}&store={ids['Kreuzberg']}").get_data(as_text=True)
    assert 'data-chart="settlement"' not in html  # settlement is the merchant's, not a store's
    assert manager.get("/portal/?period=year").status_code == 422
    assert manager.get("/portal/?store=999999").status_code == 422
    assert manager.get(f"/portal/dashboard/nothing.csv?{CUSTOM}").status_code == 404
    assert manager.get("/portal/dashboard/turnover-day.csv?period=year").status_code == 422


def test_the_demo_month_fills_the_dashboard_and_the_experiment(
    app: Any, db: Database, tmp_path: Any
) -> None:
    """`kassa run` seeds a month of sales: every chart has data and the A/B test has results
    whose split passes the sample-ratio check."""
    from gateway.services.demo import seed_demo

    with db.unit_of_work() as uow:
        creds = seed_demo(uow, tmp_path / "creds.json", history=True)
    client = app.test_client()
    log_in(client, *staff(creds, "manager"))
    html = client.get("/portal/").get_data(as_text=True)
    assert html.count("<svg") >= 6
    assert html.count("Nothing in this period.") == 1  # only settlement: nothing reconciled
    day = client.get("/portal/dashboard/turnover-day.csv").get_data(as_text=True).splitlines()
    assert len(day) > 30  # header, then days × methods
    experiment = client.get("/portal/experiments/wallet-10")
    assert experiment.status_code == 200
    text = experiment.get_data(as_text=True)
    assert 'id="srm-warning"' not in text and "mSPRT" in text
    assert text.count("<svg") == 2  # ten-percent and holdout, each against control


def test_a_store_manager_sees_only_their_store(app: Any, demo: Any, db: Database) -> None:
    from gateway.adapters.models import StaffUser

    ids = seed(db)
    with db.unit_of_work() as uow:
        user = uow.session.scalars(select(StaffUser).where(StaffUser.username == "manager")).one()
        user.store_id = ids["Kreuzberg"]
        uow.commit()
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    asked_for_mitte = f"/portal/dashboard/turnover-day.csv?{CUSTOM}&store={ids['Mitte']}"
    answer = client.get(asked_for_mitte).get_data(as_text=True)
    assert answer.splitlines()[1:] == ["2026-03-29,qr,EUR,1,700"]
    html = client.get(f"/portal/?{CUSTOM}").get_data(as_text=True)
    assert 'id="store"' not in html and 'data-chart="settlement"' not in html
    assert "Berlin Kreuzberg" in html
