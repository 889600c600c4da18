"""A month of past sales for the demo merchant, so the dashboard and the experiment page show
something on the first `kassa run`.

The history is written as it would stand after the fact (paid or settled payments, their paid
sales, what the wallet promotion and the A/B test gave), not replayed through the payment
lifecycle: those payments never change state here, each carries one ``demo-history`` event
saying where it came from, and nothing is sent to the bank or a till. It is deterministic (one
seeded random generator) and small: about 500 sales in one transaction, some two seconds on a
loaded machine (less than the demo's password hashing takes).
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Payment, PaymentEvent, Store, Till
from gateway.adapters.promotion_models import (
    Customer,
    Experiment,
    ExperimentExposure,
    PromotionRow,
    Sale,
    SalePromotion,
)
from gateway.domain.promotions import experiments as ab

DAYS = 30
CUSTOMERS = 80
SEED = 18
# Sales per hour of an ordinary day (local time), before the weekday factor.
HOURLY = {8: 0.5, 9: 0.5, 10: 0.5, 11: 0.5, 12: 1, 13: 1, 14: 0.5, 15: 0.5, 16: 0.5, 17: 1,
          18: 1, 19: 0.5}  # fmt: skip
# Only promotions without a budget or count limit are given in the past, so the live demo's
# budgets start untouched: coffee 3 for 2 (one coffee off) and the A/B test's 10 % off.
COFFEE = ("coffee-3-for-2", 0.15, 250)
TEST_PROMOTION = "wallet-10-off"  # the A/B test's 10 % off (cap 10.00), variant "ten-percent"


def seed_history(uow: UnitOfWork, merchant_id: int, now: datetime) -> int:
    """Write the month before ``now``; returns the number of sales written."""
    rng = random.Random(SEED)
    stores = list(uow.session.scalars(select(Store).where(Store.merchant_id == merchant_id)))
    tills = {
        s.id: list(uow.session.scalars(select(Till).where(Till.store_id == s.id))) for s in stores
    }
    promotions = {
        p.key: p
        for p in uow.session.scalars(
            select(PromotionRow).where(PromotionRow.merchant_id == merchant_id)
        )
    }
    experiment = uow.session.scalar(select(Experiment).where(Experiment.merchant_id == merchant_id))
    people = _customers(uow, merchant_id)
    rows: tuple[list[Any], list[Any], list[Any]] = ([], [], [])  # payments, sales, the rest
    written = 0
    for back in range(DAYS, 0, -1):
        for store in stores:
            zone = ZoneInfo(store.timezone)
            day = (now.astimezone(zone) - timedelta(days=back)).date()
            busy = 1.5 if day.weekday() == 5 else 0.6 if day.weekday() == 6 else 1.0
            for hour, rate in HOURLY.items():
                for _ in range(round(rate * busy * rng.uniform(0.4, 1.6))):
                    moment = datetime.combine(day, time(hour, rng.randrange(60)), zone)
                    _sale(rows, rng, store, rng.choice(tills[store.id]), people, promotions,
                          experiment, moment.astimezone(UTC), now)  # fmt: skip
                    written += 1
    for batch in rows:  # in foreign-key order: no relationship tells the session
        uow.session.add_all(batch)
        uow.session.flush()
    _count_purchases(uow, people)
    return written


def _customers(uow: UnitOfWork, merchant_id: int) -> list[Customer]:
    people = [
        Customer(
            merchant_id=merchant_id,
            token=f"demo{n:04d}{uuid.uuid4().hex[:8]}",
            referral_code=f"D{uuid.uuid4().hex[:10].upper()}",
            spend_currency="EUR",
        )
        for n in range(CUSTOMERS)
    ]
    uow.session.add_all(people)
    uow.session.flush()
    return people


def _sale(
    rows: tuple[list[Any], list[Any], list[Any]],
    rng: random.Random,
    store: Store,
    till: Till,
    people: list[Customer],
    promotions: dict[str, PromotionRow],
    experiment: Experiment | None,
    paid_at: datetime,
    now: datetime,
) -> None:
    method = "qr" if rng.random() < 0.6 else "card"
    # Regulars come back: the first quarter of the customers make half of the wallet visits.
    customer = None
    if method == "qr" and rng.random() < 0.8:
        pool = people[: CUSTOMERS // 4] if rng.random() < 0.5 else people
        customer = rng.choice(pool)
    before = rng.choice((350, 480, 650, 900, 1250, 1800, 2400, 3200, 4500, 6900))
    given: list[tuple[PromotionRow, int]] = []
    key, share, off = COFFEE
    if key in promotions and rng.random() < share:
        before += 2 * off  # three coffees in the basket, one of them free
        given.append((promotions[key], off))
    variant = None
    if experiment is not None and customer is not None:
        domain = ab.Experiment(
            experiment.key,
            tuple(ab.Variant(v["name"], int(v["weight"])) for v in experiment.variants),
            experiment.holdout_bp,
        )
        variant = ab.assign(domain, customer.token)
        if variant == "ten-percent" and TEST_PROMOTION in promotions:
            given.append((promotions[TEST_PROMOTION], min(before // 10, 1000)))
    after = before - sum(amount for _, amount in given)
    sale_id, payment_id = str(uuid.uuid4()), str(uuid.uuid4())
    status = "settled" if now - paid_at > timedelta(days=2) else "paid"
    payments, sales, others = rows
    payments.append(
        Payment(
            id=payment_id,
            merchant_id=store.merchant_id,
            store_id=store.id,
            till_id=till.id,
            method=method,
            status=status,
            amount_minor=after,
            currency="EUR",
            reference=f"DEMO{uuid.uuid4().hex[:20].upper()}",
            sale_id=sale_id,
            paid_at=paid_at,
            created_by="demo",
            created_at=paid_at,
            updated_at=paid_at,
        )
    )
    others.append(
        PaymentEvent(
            payment_id=payment_id,
            kind="demo-history",
            from_status=None,
            to_status=status,
            actor="demo",
            detail={"note": "a month of past sales for the demo"},
            created_at=paid_at,
        )
    )
    sales.append(
        Sale(
            id=sale_id,
            merchant_id=store.merchant_id,
            store_id=store.id,
            till_id=till.id,
            customer_id=customer.id if customer else None,
            currency="EUR",
            status="paid",
            payment_method=method,
            payment_id=payment_id,
            lines=[],
            total_before_minor=before,
            total_after_minor=after,
            created_by="demo",
            created_at=paid_at,
            updated_at=paid_at,
        )
    )
    for promotion, amount in given:
        promotion.used_count += 1
        promotion.used_money_minor += amount
        others.append(
            SalePromotion(
                sale_id=sale_id,
                promotion_id=promotion.id,
                customer_id=customer.id if customer else None,
                local_day=paid_at.date(),
                kind=promotion.kind,
                state="committed",
                discount_minor=amount,
                budget_minor=amount,
            )
        )
    if variant is not None and experiment is not None and customer is not None:
        cost = next((a for p, a in given if p.key == TEST_PROMOTION), 0)
        others.append(
            ExperimentExposure(
                experiment_id=experiment.id,
                variant=variant,
                sale_id=sale_id,
                customer_id=customer.id,
                eligible=True,
                redeemed=cost > 0,
                cost_minor=cost,
                created_at=paid_at,
            )
        )


def _count_purchases(uow: UnitOfWork, people: list[Customer]) -> None:
    """Each customer's counters, as the paid sales above add up."""
    uow.session.flush()
    ids = {c.id: c for c in people}
    seen: dict[int, list[datetime]] = defaultdict(list)
    spend: dict[int, int] = defaultdict(int)
    for customer_id, created, total in uow.session.execute(
        select(Sale.customer_id, Sale.created_at, Sale.total_after_minor).where(
            Sale.customer_id.in_(ids)
        )
    ):
        if customer_id is not None:
            seen[customer_id].append(created)
            spend[customer_id] += total
    for customer_id, times in seen.items():
        person = ids[customer_id]
        person.purchases, person.spend_minor = len(times), spend[customer_id]
        person.first_purchase_at, person.last_purchase_at = min(times), max(times)
