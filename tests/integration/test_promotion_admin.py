"""Managers' promotion use cases, experiment results and `kassa promotions`, on SQLite and PG."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Merchant, Till
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    ExperimentExposure,
    PromotionChange,
    PromotionRow,
    Sale,
    SalePromotion,
)
from gateway.domain.promotions.spec import promotion_from_spec
from gateway.errors import Conflict, InvalidInput
from gateway.services.promotions import promotion_admin as admin
from gateway.services.promotions import promotion_reads as reads
from gateway.services.promotions.experiment_results import results

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
THRESHOLD = {
    "targeting": {"currency": "EUR", "payment_methods": ["qr"]},
    "limits": {"budget_minor": 10_000, "global_count": 100, "per_customer_per_day": 1},
    "tiers": [[5000, 500], [10000, 1500]],
}
BATCH = {"targeting": {"currency": "EUR"}, "amount_off_minor": 500, "batch": True}


def merchant_id(db: Database) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalars(select(Merchant.id).order_by(Merchant.id)).first() or 0)


def create(db: Database, key: str = "spring", kind: str = "threshold", **kw: Any) -> None:
    with db.unit_of_work() as uow:
        admin.create_promotion(
            uow,
            merchant_id(db),
            key=key,
            name=kw.pop("name", "Spring savings"),
            kind=kind,
            spec=kw.pop("spec", THRESHOLD),
            starts_at=kw.pop("starts_at", None),
            ends_at=kw.pop("ends_at", None),
            actor="manager",
            **kw,
        )
        uow.commit()


def test_create_copies_limits_and_names_bad_fields(db: Database, demo: Any) -> None:
    create(db)
    with db.unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, merchant_id(db), "spring")
        assert (row.state, row.kind, row.currency) == ("draft", "threshold", "EUR")
        assert (row.budget_minor, row.count_limit, row.used_count) == (10_000, 100, 0)
        assert row.spec["name"] == "Spring savings"
        assert promotion_from_spec(row.key, row.kind, row.spec).tiers[1].save_minor == 1500
        changes = uow.session.scalars(select(PromotionChange.action)).all()
        assert changes == ["created"]

    bad = [
        ({"kind": "percent", "spec": {"percent_bp": -5}}, "percent_bp"),
        ({"kind": "percent", "spec": {}}, "percent_bp: required"),
        ({"kind": "bogus"}, "kind:"),
        ({"spec": {**THRESHOLD, "limits": {"budget_minor": "100"}}}, "limits.budget_minor"),
        ({"spec": {**THRESHOLD, "targeting": {"currency": "EURO"}}}, "targeting.currency"),
        ({"key": "has space"}, "key:"),
        ({"name": " "}, "name:"),
        ({"variant": "B"}, "variant:"),
        ({"experiment_key": "nope", "variant": "B"}, "experiment:"),
        (
            {
                "starts_at": NOW,
                "ends_at": NOW - timedelta(hours=1),
            },
            "ends_at",
        ),
    ]
    for fields, named in bad:
        key = fields.pop("key", "other")
        with pytest.raises(InvalidInput, match=named):
            create(db, key, **fields)
    with pytest.raises(Conflict, match="already has a promotion 'spring'"):
        create(db, "spring")


def test_state_machine_is_audited_and_ending_is_final(db: Database, demo: Any) -> None:
    mid = merchant_id(db)
    create(db)
    with db.unit_of_work() as uow:
        with pytest.raises(Conflict, match="is draft; only an active promotion can be paused"):
            admin.pause(uow, mid, "spring", actor="m")
        with pytest.raises(InvalidInput, match="ends_at"):
            admin.activate(uow, mid, "spring", actor="m", ends_at=NOW, now=NOW)
        row = admin.activate(
            uow, mid, "spring", actor="m", starts_at=NOW + timedelta(days=1), now=NOW
        )
        assert admin.status_of(row, NOW) == "scheduled"
        assert admin.status_of(row, NOW + timedelta(days=2)) == "live"
        with pytest.raises(Conflict, match="only a draft"):
            admin.activate(uow, mid, "spring", actor="m")
        with pytest.raises(Conflict, match="only a paused"):
            admin.resume(uow, mid, "spring", actor="m")
        assert admin.pause(uow, mid, "spring", actor="m").state == "paused"
        assert admin.status_of(row, NOW) == "paused"
        assert admin.resume(uow, mid, "spring", actor="m").state == "active"
        row = admin.end(uow, mid, "spring", actor="m", now=NOW)
        assert (row.state, row.ends_at, admin.status_of(row, NOW)) == ("ended", NOW, "finished")
        for move in (admin.pause, admin.resume, admin.end, admin.activate):
            with pytest.raises(Conflict, match="ending is final"):
                move(uow, mid, "spring", actor="m")
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        actions = uow.session.scalars(select(PromotionChange.action).order_by(PromotionChange.id))
        assert list(actions) == ["created", "scheduled", "paused", "resumed", "ended"]


def test_experiments_validate_and_promotions_join_a_variant(db: Database, demo: Any) -> None:
    mid = merchant_id(db)
    with db.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match="control: expected one of A, B"):
            admin.create_experiment(
                uow, mid, key="x", name="X", variants=[("A", 1), ("B", 1)], holdout_bp=0,
                control="C",
            )  # fmt: skip
        with pytest.raises(InvalidInput, match=r"variants: .*whole weight"):
            admin.create_experiment(
                uow, mid, key="x", name="X", variants=[("A", 0)], holdout_bp=0, control="A"
            )
        with pytest.raises(InvalidInput, match="holdout"):
            admin.create_experiment(
                uow, mid, key="x", name="X", variants=[("A", 1)], holdout_bp=10_000, control="A"
            )
        admin.create_experiment(
            uow, mid, key="x", name="X", variants=[("A", 1), ("B", 2)], holdout_bp=1000,
            control="A",
        )  # fmt: skip
        with pytest.raises(Conflict):
            admin.create_experiment(
                uow, mid, key="x", name="X", variants=[("A", 1)], holdout_bp=0, control="A"
            )
        uow.commit()
    with pytest.raises(InvalidInput, match="variant: expected one of A, B"):
        create(db, "ab", experiment_key="x", variant="C")
    create(db, "ab", experiment_key="x", variant="B")
    with db.unit_of_work(readonly=True) as uow:
        (summary,) = reads.list_promotions(uow, mid, now=NOW)
        assert (summary.experiment, summary.variant) == ("x", "B")


def test_batch_coupons_are_unique_and_retry_collisions(
    db: Database, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    mid = merchant_id(db)
    create(db, "spring")
    create(db, "batch", "coupon", spec=BATCH)
    with db.unit_of_work() as uow:
        with pytest.raises(InvalidInput, match="not a batch coupon"):
            admin.issue_coupons(uow, admin.get_promotion(uow, mid, "spring"), count=1)
        batch = admin.get_promotion(uow, mid, "batch")
        for count in (0, 10_001):
            with pytest.raises(InvalidInput, match="count"):
                admin.issue_coupons(uow, batch, count=count)
        codes = admin.issue_coupons(uow, batch, count=2000, expires_at=NOW)
        assert len(set(codes)) == 2000
        assert all(len(c) == 10 and set(c) <= set(admin.CODE_ALPHABET) for c in codes)
        assert not set("ILOU") & set("".join(codes))
        # The next draws repeat an issued code first: it is drawn again, never stored twice.
        draws = iter([codes[0], "AAAAAAAAAA", codes[1], "BBBBBBBBBB"])
        monkeypatch.setattr(admin, "new_code", lambda: next(draws))
        assert admin.issue_coupons(uow, batch, count=2) == ["AAAAAAAAAA", "BBBBBBBBBB"]
        monkeypatch.undo()
        customer = Customer(merchant_id=mid, token="t", referral_code="R", spend_currency="EUR")
        uow.session.add(customer)
        uow.session.flush()
        with pytest.raises(InvalidInput, match="customer_ids: no customer 99999"):
            admin.issue_coupons(uow, batch, count=1, customer_ids=[99_999])
        (own,) = admin.issue_coupons(uow, batch, count=1, customer_ids=[customer.id])
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count(func.distinct(CouponCode.code)))) == 2003
        assert uow.session.scalar(select(CouponCode.customer_id).where(CouponCode.code == own))
        stored = uow.session.scalar(select(CouponCode).where(CouponCode.code == codes[0]))
        assert stored is not None and stored.expires_at == NOW and stored.status == "available"


def _sale(
    uow: Any,
    mid: int,
    customer: int | None,
    total: int,
    at: datetime,
    status: str = "paid",
) -> str:
    till = uow.session.scalars(select(Till).order_by(Till.id)).first()
    sale = Sale(
        id=str(uuid.uuid4()), merchant_id=mid, store_id=till.store_id, till_id=till.id,
        customer_id=customer, currency="EUR", status=status, payment_method="qr", lines=[],
        total_before_minor=total, total_after_minor=total, created_by="test",
        created_at=at - timedelta(minutes=1), updated_at=at,
    )  # fmt: skip
    uow.session.add(sale)
    uow.session.flush()
    return sale.id


def test_list_shows_committed_and_reserved_budget(db: Database, demo: Any) -> None:
    mid = merchant_id(db)
    create(db)
    with db.unit_of_work() as uow:
        row = admin.get_promotion(uow, mid, "spring")
        row.used_count, row.used_money_minor = 3, 700
        for state, budget, returned in (("committed", 500, 100), ("reserved", 300, 0)):
            uow.session.add(
                SalePromotion(
                    sale_id=_sale(uow, mid, None, 6000, NOW),
                    promotion_id=row.id,
                    local_day=date(2025, 6, 1),
                    kind="threshold",
                    state=state,
                    discount_minor=budget,
                    budget_minor=budget,
                    returned_budget_minor=returned,
                    returned_discount_minor=returned,
                )
            )
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        (summary,) = reads.list_promotions(uow, mid, now=NOW)
    assert (summary.committed_minor, summary.reserved_minor, summary.used_minor) == (400, 300, 700)
    assert summary.given_minor == 400  # paid sales only, net of the refund
    assert (summary.budget_minor, summary.currency, summary.used_share) == (10_000, "EUR", 7)
    # uses are counted from the sales that hold or paid them (a counter exists only for limits)
    assert (summary.status, summary.used_count, summary.count_limit) == ("draft", 2, 100)


def experiment_day(db: Database) -> None:
    """The experiment described in test_experiment_results."""
    mid = merchant_id(db)
    with db.unit_of_work() as uow:
        exp = admin.create_experiment(
            uow, mid, key="exp1", name="Spring test", variants=[("control", 1), ("B", 1)],
            holdout_bp=1000, control="control",
        )  # fmt: skip
        d = lambda m, day, s=0: datetime(2025, m, day, 9, 0, s, tzinfo=UTC)  # noqa: E731
        firsts = {
            "c1": d(4, 1), "c2": d(5, 20) + timedelta(milliseconds=500), "c3": None,
            "c4": d(4, 5) - timedelta(milliseconds=500), "c5": d(1, 1), "c6": d(5, 25, 10),
        }  # fmt: skip
        ids = {}
        for token, first in firsts.items():
            c = Customer(
                merchant_id=mid, token=token, referral_code=f"R{token}", spend_currency="EUR",
                first_purchase_at=first,
            )  # fmt: skip
            uow.session.add(c)
            uow.session.flush()
            ids[token] = c.id
        exposures = [
            # customer, variant, total, when, status, eligible, redeemed, cost
            ("c1", "control", 1000, d(4, 10), "paid", True, False, 0),
            ("c1", "control", 2000, d(4, 20), "paid", True, False, 0),
            ("c1", "control", 9999, d(4, 25), "cancelled", True, False, 0),
            ("c2", "control", 3000, d(5, 20), "paid", True, False, 0),
            ("c3", "control", 500, d(5, 1), "paid", False, False, 0),
            ("c4", "B", 1500, d(4, 5), "paid", True, True, 150),
            ("c4", "B", 2500, d(4, 6), "paid", False, False, 0),
            ("c5", "B", 4000, d(4, 1), "paid", True, True, 200),
            ("c6", "holdout", 700, d(5, 25), "paid", True, False, 0),
        ]
        for token, variant, total, at, status, eligible, redeemed, cost in exposures:
            sale_id = _sale(uow, mid, ids[token], total, at, status)
            uow.session.add(
                ExperimentExposure(
                    experiment_id=exp.id,
                    variant=variant,
                    sale_id=sale_id,
                    customer_id=ids[token],
                    eligible=eligible,
                    redeemed=redeemed,
                    cost_minor=cost,
                    created_at=at,
                )
            )
        _sale(uow, mid, ids["c5"], 800, d(5, 15))  # 44 days after c5's first: not retained
        uow.commit()


# Each customer's paid spend, squared: control c1 1000 + 2000, c2 3000; B c4 1500 + 2500,
# c5 4000; holdout c6 700.
SPEND_SUMSQ = {"control": 2 * 3000**2, "B": 2 * 4000**2, "holdout": 700**2}


def test_experiment_results(db: Database, demo: Any) -> None:
    """By hand. control: c1 (2 paid eligible sales 10 days apart, an old customer, retained),
    c2 (new, too recent for retention), c3 (never eligible: not counted). B: c4 (new within
    the 1 s slack, redeemed once and bought again the next day), c5 (old; bought again only
    after 44 days). Holdout: c6 (new, recent)."""
    experiment_day(db)
    with db.unit_of_work(readonly=True) as uow:
        out = results(uow, merchant_id(db), "exp1", now=NOW)
    figures = {f.name: f for f in out.figures}
    assert list(figures) == ["control", "B", "holdout"]
    rows = {
        name: (
            f.customers, f.eligible, f.redemptions, f.purchases, f.ticket_sum_minor,
            f.ticket_sumsq_minor, f.new_customers, f.retained_30d, f.retention_base, f.cost_minor,
        )
        for name, f in figures.items()
    }  # fmt: skip
    assert rows == {
        "control": (2, 3, 0, 3, 6000, 14_000_000, 1, 1, 1, 0),
        "B": (2, 2, 2, 3, 8000, 24_500_000, 1, 1, 2, 350),
        "holdout": (1, 1, 0, 1, 700, 490_000, 1, 0, 0, 0),
    }
    assert out.currency == "EUR" and [c.variant for c in out.comparisons] == ["B", "holdout"]
    b = out.comparisons[0]
    assert [t.metric for t in b.tests] == [
        "conversion", "30-day retention", "average ticket", "new customers",
        "purchases per customer", "spend per customer",
    ]  # fmt: skip
    # Per customer: control c1 bought twice and c2 once (2² + 1²); B: c4 twice, c5 once.
    assert {name: f.purchases_sumsq for name, f in figures.items()} == {
        "control": 5, "B": 5, "holdout": 1,
    }  # fmt: skip
    assert {name: f.spend_sumsq_minor for name, f in figures.items()} == SPEND_SUMSQ
    assert [s.metric for s in b.sequential] == [t.metric for t in b.tests]
    # c1..c6 land in the arms of a 1:1 split with a 5 % holdout: far too few to cry mismatch.
    assert out.sample_ratio.names == ("control", "B", "holdout")
    assert out.sample_ratio.observed == (3, 2, 1) and not out.sample_ratio.mismatch
    assert b.verdict.startswith("Not enough data yet") and "3.50 EUR" in b.verdict
    assert json.loads(json.dumps(out.to_json()))["variants"][1]["cost_minor"] == 350


def run(db: Database, *args: str) -> Any:
    from gateway.entrypoints.cli import main

    return CliRunner().invoke(main, ["promotions", *args], env={"KASSA_DATABASE_URL": db.url})


def test_cli(db: Database, demo: Any) -> None:
    create(db)
    create(db, "batch", "coupon", name="Welcome coupon", spec=BATCH)
    listed = run(db, "list")
    assert listed.exit_code == 0, listed.output
    assert (
        "spring  Spring savings  threshold  draft   0.00 EUR / 100.00 EUR  0.00 EUR  0 / 100"
        in listed.output
    )
    as_json = json.loads(run(db, "list", "--json").output)
    assert {p["key"] for p in as_json} == {"spring", "batch"}

    shown = json.loads(run(db, "show", "spring").output)
    assert shown["spec"]["tiers"] == [[5000, 500], [10000, 1500]]
    assert shown["history"][0]["action"] == "created"

    issued = run(db, "issue-coupons", "batch", "--count", "5", "--expires", "2025-12-31")
    assert issued.exit_code == 0, issued.output
    assert len(set(issued.output.split())) == 5

    for args, message in (
        (("show", "nope"), "kassa: no promotion 'nope' for this merchant"),
        (("issue-coupons", "spring", "--count", "1"), "is not a batch coupon"),
        (("issue-coupons", "batch", "--count", "1", "--expires", "31.12."), "YYYY-MM-DD"),
        (("results", "nope"), "no experiment 'nope'"),
        (("list", "--merchant", "999"), "no merchant 999"),
    ):
        failed = run(db, *args)
        assert failed.exit_code == 2, failed.output
        assert message in failed.output

    experiment_day(db)
    text = run(db, "results", "exp1")
    assert text.exit_code == 0, text.output
    assert "B against control:" in text.output
    assert json.loads(run(db, "results", "exp1", "--json").output)["variants"][0]["eligible"] == 3
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count()).select_from(PromotionRow)) == 2
