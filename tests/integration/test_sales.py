"""Sales priced with promotions, paid and refunded, on SQLite and PostgreSQL: reservations
held while the payment is open, committed when it is paid, released when it is not, and
reversed in proportion by refunds; budgets exact under 50 concurrent checkouts."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, text

from gateway.adapters.db import Database
from gateway.adapters.models import CustomerTap, Payment, utcnow
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    CustomerIdentity,
    DrawEntry,
    Experiment,
    ExperimentExposure,
    PointsLot,
    PromotionRow,
    ReferralRow,
    Sale,
    SalePromotion,
)
from gateway.domain.money import Money
from gateway.domain.promotions import draw as lucky
from gateway.domain.promotions import experiments as ab
from gateway.errors import Conflict
from gateway.services.payments import cancellation, qr_payments, refunds
from gateway.services.promotions import sales
from gateway.services.promotions.customers import IdentityInput
from gateway.services.staff.auth import TillContext, authenticate_till
from tests.conftest import isolated_env
from tests.factories import paid_by_bank

SETTINGS = sales.PromotionSettings(identity_key=b"test-identity-key")
PAYMENTS = qr_payments.PaymentSettings()


_TILLS: dict[str, TillContext] = {}


def till_of(db: Database, demo: dict[str, Any]) -> TillContext:
    key = demo["tills"][0]["api_key"]
    if key not in _TILLS:
        with db.unit_of_work(readonly=True) as uow:
            _TILLS[key] = authenticate_till(uow, f"Bearer {key}")
    return _TILLS[key]


def add_promotion(
    db: Database,
    demo: dict[str, Any],
    key: str,
    kind: str,
    spec: dict[str, Any],
    **columns: Any,
) -> int:
    limits = spec.get("limits", {})
    with db.unit_of_work() as uow:
        row = PromotionRow(
            merchant_id=till_of(db, demo).merchant_id,
            key=key,
            name=spec.get("name", key),
            kind=kind,
            spec=spec,
            state="active",
            currency=spec.get("targeting", {}).get("currency"),
            budget_minor=limits.get("budget_minor"),
            count_limit=limits.get("global_count"),
            created_by="test",
            **columns,
        )
        uow.session.add(row)
        uow.commit()
        return row.id


def line(sku: str, price: str, qty: int = 1, category: str = "food") -> sales.LineInput:
    return sales.LineInput(sku, sku.title(), category, qty, Money.parse(price, "EUR"))


def quote(db: Database, demo: dict[str, Any], *lines: sales.LineInput, **kw: Any) -> Sale:
    request = sales.SaleRequest(lines=lines or (line("a", "20.00"),), currency="EUR", **kw)
    with db.unit_of_work() as uow:
        sale = sales.price_sale(uow, till_of(db, demo), request, SETTINGS)
        uow.commit()
        return sale


def pay(db: Database, demo: dict[str, Any], sale_id: str, method: str = "qr") -> Payment | None:
    with db.unit_of_work() as uow:
        _, payment = sales.pay_sale(
            uow,
            till_of(db, demo),
            sale_id,
            method=method,
            settings=SETTINGS,
            payment_settings=PAYMENTS,
        )
        uow.commit()
        return payment


def bank_pays(db: Database, payment: Payment) -> None:
    with db.unit_of_work() as uow:
        paid_by_bank(uow, payment.id, bank_payment_id="B-" + payment.reference)
        uow.commit()


def bought_once(db: Database, demo: dict[str, Any], who: IdentityInput) -> Payment:
    """``who`` buys a 20.00 basket, paid at the bank: a known, returning customer now."""
    payment = pay(db, demo, quote(db, demo, customer=who).id)
    assert payment is not None
    bank_pays(db, payment)
    return payment


def refund(db: Database, demo: dict[str, Any], payment_id: str, amount: str) -> None:
    with db.unit_of_work() as uow:
        made = refunds.request_refund(
            uow,
            payment_id,
            till_of(db, demo).merchant_id,
            amount=Money.parse(amount, "EUR"),
            reason=None,
            actor="test",
        )
        uow.commit()
    with db.unit_of_work() as uow:
        refunds.record_bank_result(
            uow,
            refund_id=made.id,
            succeeded=True,
            bank_refund_id="R" + made.id[:8],
            amount_minor=made.amount_minor,
            currency=made.currency,
            reason=None,
        )
        uow.commit()


def sale_row(db: Database, sale_id: str) -> Sale:
    with db.unit_of_work(readonly=True) as uow:
        sale = uow.session.get_one(Sale, sale_id)
        uow.session.expunge(sale)
        return sale


def promotion(db: Database, key: str) -> PromotionRow:
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalar(select(PromotionRow).where(PromotionRow.key == key))
        assert row is not None
        uow.session.expunge(row)
        return row


def count(db: Database, model: Any, *where: Any) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


TEN_PERCENT = {"name": "10 % off", "percent_bp": 1000, "limits": {"budget_minor": 10_000}}


# --- pricing and the payment's life -----------------------------------------------------


def test_the_sale_is_paid_for_its_discounted_total_and_the_budget_follows_the_payment(
    db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "ten", "percent", TEN_PERCENT)
    sale = quote(db, demo, line("a", "12.34"), line("b", "7.66", 2))
    assert (sale.status, sale.total_before_minor, sale.total_after_minor) == ("priced", 2766, 2490)
    assert sum(ln["final_minor"] for ln in sale.lines) == sale.total_after_minor
    assert promotion(db, "ten").used_money_minor == 0  # a quote holds nothing

    payment = pay(db, demo, sale.id)
    assert payment is not None and payment.amount_minor == 2490
    assert payment.sale_id == sale.id
    assert promotion(db, "ten").used_money_minor == 276
    assert pay(db, demo, sale.id).id == payment.id  # type: ignore[union-attr]  # double click

    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, payment.id, till_of(db, demo).merchant_id, "test")
        uow.commit()
    assert sale_row(db, sale.id).status == "cancelled"
    assert (promotion(db, "ten").used_money_minor, promotion(db, "ten").used_count) == (0, 0)
    with pytest.raises(Conflict, match="cancelled"):
        pay(db, demo, sale.id)


def test_an_expired_qr_releases_and_a_paid_one_commits(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "ten", "percent", TEN_PERCENT)
    first = pay(db, demo, quote(db, demo).id)
    assert first is not None
    with db.unit_of_work() as uow:
        uow.session.get_one(Payment, first.id).expires_at = utcnow() - timedelta(seconds=1)
        uow.commit()
    with db.unit_of_work() as uow:
        qr_payments.expire_payment(uow, {"payment_id": first.id})
        uow.commit()
    assert sale_row(db, first.sale_id or "").status == "expired"
    second = pay(db, demo, quote(db, demo).id)
    assert second is not None
    bank_pays(db, second)
    assert sale_row(db, second.sale_id or "").status == "paid"
    assert count(db, SalePromotion, SalePromotion.state == "committed") == 1
    assert count(db, SalePromotion, SalePromotion.state == "released") == 1
    assert promotion(db, "ten").used_money_minor == 200


def test_nothing_to_pay_commits_at_once_without_a_payment(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "free", "percent", {"percent_bp": 10_000})
    sale = quote(db, demo, line("a", "3.00"))
    assert sale.total_after_minor == 0
    assert pay(db, demo, sale.id) is None
    assert sale_row(db, sale.id).status == "paid"


def test_promotions_for_other_stores_are_counted_not_listed(db: Database, demo: Any) -> None:
    for n in range(5):
        add_promotion(
            db, demo, f"far{n}", "percent", {"percent_bp": 500, "targeting": {"stores": ["999"]}}
        )
    add_promotion(db, demo, "tea", "percent", {"percent_bp": 500, "targeting": {"skus": ["tea"]}})
    add_promotion(db, demo, "big", "threshold", {"tiers": [[10_000, 500]]})
    sale = quote(db, demo)
    assert sale.rejected == [
        {"promotion_id": "big", "name": "big", "reason": "spend 80.00 EUR more to save 5.00 EUR"},
        {
            "promotion_id": "",
            "name": "5 other promotions",
            "reason": "not offered in this store",
            "count": 5,
        },
        {
            "promotion_id": "tea",
            "name": "tea",
            "reason": "none of its items are in the basket",
            "count": 1,
        },
    ]


def test_bad_baskets_are_refused_and_nothing_is_stored(db: Database, demo: Any) -> None:
    from gateway.errors import InvalidInput

    with pytest.raises(InvalidInput, match=r"lines\[0\].unit_price: must not be negative"):
        quote(db, demo, line("a", "-1.00"))
    with pytest.raises(InvalidInput, match="phone"):
        quote(db, demo, customer=IdentityInput(phone="12"))
    with pytest.raises(InvalidInput, match=r"^currency: unknown currency 'EUX'"):
        sales_request = sales.SaleRequest(lines=(line("a", "1.00"),), currency="EUX")
        with db.unit_of_work() as uow:
            sales.price_sale(uow, till_of(db, demo), sales_request, SETTINGS)
    with pytest.raises(InvalidInput, match="the most one sale takes"):
        quote(db, demo, line("a", "99999999999.99", 100_000))
    assert count(db, Sale) == 0


# --- budgets under concurrency ------------------------------------------------------------


def test_fifty_concurrent_checkouts_never_overspend_the_budget(db: Database, demo: Any) -> None:
    """Each sale earns 1.00 off (budget 25.50) and 5 % off the rest (only 10 uses). Exactly
    25 full discounts and one of 0.50, and exactly 10 uses of the 5 %, are given whatever the
    interleaving (PostgreSQL: row locks, always taken in one order; SQLite: one writer)."""
    spec = {"tiers": [[1000, 100]], "priority": 10, "limits": {"budget_minor": 2550}}
    add_promotion(db, demo, "save1", "threshold", spec)
    add_promotion(db, demo, "five", "percent", {"percent_bp": 500, "limits": {"global_count": 10}})
    quotes = [quote(db, demo).id for _ in range(50)]
    assert {sale_row(db, q).total_after_minor for q in quotes} == {1805}  # 1.00, then 0.95 off
    failures: list[BaseException] = []
    start = threading.Barrier(50)

    def checkout(sale_id: str) -> None:
        try:
            start.wait()
            pay(db, demo, sale_id)
        except BaseException as exc:
            failures.append(exc)

    threads = [threading.Thread(target=checkout, args=(q,)) for q in quotes]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:3]
    with db.unit_of_work(readonly=True) as uow:
        given = dict(
            uow.session.execute(
                select(SalePromotion.kind, func.sum(SalePromotion.discount_minor)).group_by(
                    SalePromotion.kind
                )
            ).all()
        )
        by_kind = sorted(
            uow.session.execute(select(SalePromotion.kind, SalePromotion.discount_minor)).all()
        )
        totals = uow.session.scalars(select(Payment.amount_minor)).all()
    thresholds = sorted((d for k, d in by_kind if k == "threshold"), reverse=True)
    assert thresholds == [100] * 25 + [50]
    assert len([d for k, d in by_kind if k == "percent"]) == 10
    assert given["threshold"] == promotion(db, "save1").used_money_minor == 2550
    assert promotion(db, "five").used_count == 10
    assert sum(totals) == 50 * 2000 - given["threshold"] - given["percent"]


# --- customers, coupons, points, referrals, draws ------------------------------------------


def test_phone_numbers_are_kept_only_as_keyed_hashes_and_first_use_is_once(
    db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "welcome", "new_customer", {"amount_off_minor": 300})
    phone = IdentityInput(phone="+49 170 1234567")
    first = quote(db, demo, customer=phone)
    assert first.total_after_minor == 1700
    payment = pay(db, demo, first.id)
    assert payment is not None
    second = quote(db, demo, customer=phone)  # the first is still open: it counts
    assert second.total_after_minor == 2000
    assert any("first purchase" in r["reason"] for r in second.rejected)
    bank_pays(db, payment)
    with db.unit_of_work(readonly=True) as uow:
        customer = uow.session.scalars(select(Customer)).one()
        assert (customer.purchases, customer.spend_minor) == (1, 1700)
        dump = " ".join(
            str(v) for row in uow.session.execute(text("SELECT * FROM sales")) for v in row
        ) + " ".join(str(d) for d in uow.session.scalars(select(CustomerIdentity.digest)))
    assert "1701234567" not in dump and "170 1234567" not in dump


def test_a_batch_coupon_code_is_single_use_and_comes_back_if_unpaid(
    db: Database, demo: Any
) -> None:
    pid = add_promotion(db, demo, "c5", "coupon", {"batch": True, "amount_off_minor": 500})
    with db.unit_of_work() as uow:
        uow.session.add(
            CouponCode(merchant_id=till_of(db, demo).merchant_id, promotion_id=pid, code="K7QX2M9P")
        )
        uow.commit()
    first = quote(db, demo, coupon_codes=("k7qx2m9p",))
    assert first.total_after_minor == 1500
    payment = pay(db, demo, first.id)
    assert payment is not None
    taken = quote(db, demo, coupon_codes=("K7QX2M9P",))
    assert taken.total_after_minor == 2000
    assert {
        "name": "coupon K7QX2M9P",
        "promotion_id": "",
        "reason": "this coupon code has already been used",
    } in taken.rejected
    unknown = quote(db, demo, coupon_codes=("NOPE1234",))
    assert any(r["reason"] == "unknown coupon code" for r in unknown.rejected)
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, payment.id, till_of(db, demo).merchant_id, "test")
        uow.commit()
    again = pay(db, demo, quote(db, demo, coupon_codes=("K7QX2M9P",)).id)
    assert again is not None and again.amount_minor == 1500
    bank_pays(db, again)
    with db.unit_of_work(readonly=True) as uow:
        code = uow.session.scalars(select(CouponCode)).one()
        assert (code.status, code.sale_id) == ("redeemed", again.sale_id)


def test_points_are_earned_when_paid_redeemed_later_and_restored_if_unpaid(
    db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100, "expiry_days": 365})
    add_promotion(db, demo, "redeem", "points_redeem", {"point_value_minor": 10, "min_points": 5})
    member = IdentityInput(member_code="m-0042")
    bought_once(db, demo, member)
    with db.unit_of_work(readonly=True) as uow:
        lot = uow.session.scalars(select(PointsLot)).one()
        assert (lot.points, lot.remaining) == (20, 20)
        assert lot.expires_at is not None and lot.expires_at - lot.earned_at == timedelta(days=365)
    spend = quote(db, demo, customer=member, redeem_points=15)
    assert spend.points_redeemed == 15 and spend.total_after_minor == 1850
    assert spend.points_earned == 18  # earned on what is paid after redemption
    open_payment = pay(db, demo, spend.id)
    assert open_payment is not None
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PointsLot.remaining)).one() == 5
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, open_payment.id, till_of(db, demo).merchant_id, "test")
        uow.commit()
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PointsLot.remaining)).one() == 20
    too_many = quote(db, demo, customer=member, redeem_points=500)
    assert too_many.points_redeemed == 20  # never more than the balance


def test_referral_rewards_both_once_and_refuses_self_referral(db: Database, demo: Any) -> None:
    add_promotion(
        db,
        demo,
        "ref",
        "referral",
        {"amount_off_minor": 200, "referrer_points": 50, "max_referrals": 1},
    )
    alice = IdentityInput(wallet_id="wallet-alice")
    bought_once(db, demo, alice)
    with db.unit_of_work(readonly=True) as uow:
        code = uow.session.scalars(select(Customer.referral_code)).one()
    self_ref = quote(db, demo, customer=alice, referral_code=code)
    assert self_ref.total_after_minor == 2000
    bob = IdentityInput(wallet_id="wallet-bob")
    referred = quote(db, demo, customer=bob, referral_code=code.lower())
    assert referred.total_after_minor == 1800
    payment = pay(db, demo, referred.id)
    assert payment is not None
    bank_pays(db, payment)
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(ReferralRow.state)).one() == "committed"
        assert (
            uow.session.scalars(
                select(PointsLot.points).where(PointsLot.source == "referral")
            ).one()
            == 50
        )
    carol = quote(db, demo, customer=IdentityInput(wallet_id="wallet-carol"), referral_code=code)
    assert any("limit of 1 referrals" in r["reason"] for r in carol.rejected)
    refund(db, demo, payment.id, "18.00")  # bob's first purchase, refunded in full
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(ReferralRow.state)).one() == "reversed"
        lot = select(PointsLot.remaining).where(PointsLot.source == "referral")
        assert uow.session.scalars(lot).one() == 0
    carol = quote(db, demo, customer=IdentityInput(wallet_id="wallet-carol"), referral_code=code)
    assert carol.total_after_minor == 1800  # the reversed referral no longer counts


def test_lucky_draw_respects_its_daily_cap_and_every_draw_replays(db: Database, demo: Any) -> None:
    table = {
        "prizes": [
            {
                "id": "mug",
                "name": "Kassa mug",
                "probability_ppm": 1_000_000,
                "value_minor": 400,
                "daily_cap": 1,
            }
        ],
        "budget_minor": 10_000,
    }
    add_promotion(db, demo, "draw", "draw", {"table": table, "min_spend_minor": 1000})
    unpaid = pay(db, demo, quote(db, demo).id)
    assert unpaid is not None
    assert "draws" not in sale_row(db, unpaid.sale_id or "").request  # nothing known before paying
    with db.unit_of_work() as uow:
        cancellation.cancel_payment(uow, unpaid.id, till_of(db, demo).merchant_id, "test")
        uow.commit()
    assert count(db, DrawEntry) == 0  # an unpaid sale is never drawn
    first, second = (pay(db, demo, quote(db, demo).id) for _ in range(2))
    assert first is not None and second is not None
    bank_pays(db, first)
    bank_pays(db, second)
    assert sale_row(db, first.sale_id or "").request["draws"][0]["prize"] == "Kassa mug"
    assert sale_row(db, second.sale_id or "").request["draws"][0]["outcome"] == "capped"
    from gateway.domain.promotions.spec import promotion_from_spec

    with db.unit_of_work(readonly=True) as uow:
        spec = uow.session.scalars(select(PromotionRow.spec)).one()
        drawn = promotion_from_spec("draw", "draw", spec)
        entries = uow.session.scalars(select(DrawEntry).order_by(DrawEntry.id)).all()
        assert [e.outcome for e in entries] == ["won", "capped"]
        for entry in entries:
            stock = lucky.PrizeStock(entry.stock["budget_used_minor"], entry.stock["won_today"])
            replay = lucky.draw(drawn.table, entry.seed, entry.draw_key, stock)  # type: ignore[attr-defined]
            assert (replay.roll, replay.outcome) == (entry.roll, entry.outcome)


def test_a_tap_on_the_reader_identifies_the_customer(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "welcome", "new_customer", {"amount_off_minor": 100})
    with pytest.raises(Exception, match="tapped"):
        quote(db, demo, use_last_tap=True)
    with db.unit_of_work() as uow:
        uow.session.add(
            CustomerTap(till_id=till_of(db, demo).till_id, token="ab" * 32, kind="phone")
        )
        uow.commit()
    sale = quote(db, demo, use_last_tap=True)
    assert sale.total_after_minor == 1900


def test_experiment_variants_are_assigned_by_hash_and_exposures_recorded(
    db: Database, demo: Any
) -> None:
    with db.unit_of_work() as uow:
        exp = Experiment(
            merchant_id=till_of(db, demo).merchant_id,
            key="spring",
            name="Spring test",
            variants=[{"name": "control", "weight": 1}, {"name": "B", "weight": 1}],
            holdout_bp=0,
            control="control",
        )
        uow.session.add(exp)
        uow.commit()
    add_promotion(
        db, demo, "b-offer", "percent", {"percent_bp": 2000}, experiment_id=exp.id, variant="B"
    )
    domain = ab.Experiment("spring", (ab.Variant("control", 1), ab.Variant("B", 1)))
    seen = {}
    for n in range(12):
        sale = quote(db, demo, customer=IdentityInput(wallet_id=f"w{n}"))
        pay(db, demo, sale.id)
        seen[n] = sale_row(db, sale.id)
    with db.unit_of_work(readonly=True) as uow:
        exposures = {e.sale_id: e for e in uow.session.scalars(select(ExperimentExposure))}
        tokens = {c.id: c.token for c in uow.session.scalars(select(Customer))}
        uow.session.expunge_all()
    assert len(exposures) == 12
    for s in seen.values():
        exposure = exposures[s.id]
        assert exposure.variant == ab.assign(domain, tokens[exposure.customer_id])
        assert exposure.eligible
        assert exposure.redeemed == (exposure.variant == "B")
        assert s.total_after_minor == (1600 if exposure.variant == "B" else 2000)
    assert {e.variant for e in exposures.values()} == {"control", "B"}


# --- refunds ----------------------------------------------------------------------------


def test_partial_refunds_reverse_discount_budget_and_points_in_proportion(
    db: Database, demo: Any
) -> None:
    add_promotion(db, demo, "ten", "percent", TEN_PERCENT)
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    who = IdentityInput(wallet_id="wallet-r")
    sale = quote(db, demo, line("a", "33.33"), line("b", "16.67"), customer=who)
    payment = pay(db, demo, sale.id)
    assert payment is not None and payment.amount_minor == 4500
    bank_pays(db, payment)
    assert promotion(db, "ten").used_money_minor == 500
    refund(db, demo, payment.id, "15.00")  # a third
    with db.unit_of_work(readonly=True) as uow:
        ten = uow.session.scalars(
            select(SalePromotion).where(SalePromotion.kind == "percent")
        ).one()
        lot = uow.session.scalars(select(PointsLot)).one()
        uow.session.expunge_all()
    assert ten.returned_budget_minor == 166  # 1/3 of 333 + 1/3 of 167, each rounded down
    assert promotion(db, "ten").used_money_minor == 500 - 166
    assert lot.remaining == 45 - 15
    refund(db, demo, payment.id, "30.00")  # the rest
    assert promotion(db, "ten").used_money_minor == 0
    assert promotion(db, "ten").used_count == 0
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PointsLot.remaining)).one() == 0


def test_a_card_sale_commits_on_approval_and_a_reversal_undoes_it(db: Database, demo: Any) -> None:
    from gateway.services.devices.cards import TerminalOutcome, apply_charge, apply_reversal

    add_promotion(db, demo, "ten", "percent", TEN_PERCENT)
    add_promotion(db, demo, "earn", "points", {"points": 1, "per_minor": 100})
    who = IdentityInput(member_code="M-CARD")
    payment = pay(db, demo, quote(db, demo, customer=who).id, method="card")
    assert payment is not None and (payment.method, payment.amount_minor) == ("card", 1800)
    approved = TerminalOutcome(approved=True, result_code=0, message="Approved", amount_minor=1800)
    with db.unit_of_work() as uow:
        apply_charge(uow, payment.id, approved, "device")
        uow.commit()
    assert sale_row(db, payment.sale_id or "").status == "paid"
    assert promotion(db, "ten").used_money_minor == 200
    with db.unit_of_work() as uow:
        apply_reversal(uow, payment.id, approved, "device")
        uow.commit()
    assert sale_row(db, payment.sale_id or "").status == "reversed"
    assert (promotion(db, "ten").used_money_minor, promotion(db, "ten").used_count) == (0, 0)
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalars(select(PointsLot.remaining)).one() == 0
        assert uow.session.scalars(select(Customer.purchases)).one() == 0


# --- the HTTP API -------------------------------------------------------------------------


def _h(demo: dict[str, Any], **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {demo['tills'][0]['api_key']}", **extra}


def test_the_api_prices_explains_and_pays_a_sale(live_server: Any, db: Database, demo: Any) -> None:
    add_promotion(
        db,
        demo,
        "qr5",
        "threshold",
        {
            "name": "Wallet 5 off 50",
            "tiers": [[5000, 500]],
            "targeting": {"payment_methods": ["qr"]},
        },
    )
    body = {
        "currency": "EUR",
        "lines": [
            {
                "sku": "tea",
                "name": "Tea",
                "category": "drinks",
                "quantity": 3,
                "unit_price": "4.50",
            },
            {
                "sku": "cake",
                "name": "Cake",
                "category": "food",
                "quantity": 1,
                "unit_price": "40.00",
            },
        ],
    }
    plain = requests.post(
        f"{live_server.url}/api/v1/sales", json=body, headers=_h(demo), timeout=10
    )
    assert plain.status_code == 201, plain.text
    out = plain.json()
    assert (out["total"], out["savings_text"]) == ("53.50", "No savings on this sale")
    assert out["rejected"] == [
        {
            "promotion": "qr5",
            "name": "Wallet 5 off 50",
            "reason": "only when paying by wallet QR",
            "count": 1,
        }
    ]
    quoted = requests.post(
        f"{live_server.url}/api/v1/sales",
        json={**body, "payment_method": "qr"},
        headers=_h(demo, **{"Idempotency-Key": "sale-1"}),
        timeout=10,
    )
    sale = quoted.json()
    assert (sale["total"], sale["discount"], sale["savings_text"]) == (
        "48.50",
        "5.00",
        "You save 5.00 EUR",
    )
    # 5.00 spread by largest remainder over 13.50 and 40.00: 126.17 → 1.26, 373.83 → 3.74
    assert sale["applied"][0]["per_line_minor"] == [126, 374]
    assert [ln["total"] for ln in sale["lines"]] == ["12.24", "36.26"]
    paid = requests.post(
        f"{live_server.url}/api/v1/sales/{sale['id']}/pay",
        json={"method": "qr"},
        headers=_h(demo),
        timeout=10,
    )
    assert paid.status_code == 201, paid.text
    assert paid.json()["payment"]["amount"] == "48.50"
    assert paid.json()["status"] == "reserved"
    bad = requests.post(
        f"{live_server.url}/api/v1/sales",
        json={**body, "currency": "EURO"},
        headers=_h(demo),
        timeout=10,
    )
    assert bad.status_code == 422 and bad.headers["Content-Type"].startswith("application/problem")
    number = requests.post(
        f"{live_server.url}/api/v1/sales",
        json={"currency": "EUR", "lines": [{**body["lines"][0], "unit_price": 4.5}]},  # type: ignore[index]
        headers=_h(demo),
        timeout=10,
    )
    assert number.status_code == 422
    cents = requests.post(
        f"{live_server.url}/api/v1/sales",
        json={"currency": "EUR", "lines": [{**body["lines"][0], "unit_price": "4.505"}]},  # type: ignore[index]
        headers=_h(demo),
        timeout=10,
    )
    assert cents.status_code == 422 and cents.json()["detail"].startswith("lines[0].unit_price: ")
    got = requests.get(f"{live_server.url}/api/v1/sales/{sale['id']}", headers=_h(demo), timeout=10)
    assert got.json()["payment"]["status"] == "pending"
    payment_id = got.json()["payment"]["id"]
    payment = requests.get(
        f"{live_server.url}/api/v1/payments/{payment_id}", headers=_h(demo), timeout=10
    ).json()
    assert payment["sale_id"] == sale["id"]


def test_the_demo_promotions_price_a_coffee_round(db: Database, tmp_path: Any) -> None:
    """`kassa run` seeds the demo's promotions: a first-time wallet customer buying three
    coffees and a cake by wallet QR gets the welcome, 3-for-2 and the 20.00 threshold (the
    A/B test's offer only if hashed into its group), earns points and enters the draw."""
    from gateway.services.demo import seed_demo

    with db.unit_of_work() as uow:
        demo = seed_demo(uow, tmp_path / "creds.json")
    coffee = sales.LineInput("coffee", "Coffee", "coffee", 3, Money.parse("3.00", "EUR"))
    cake = sales.LineInput("cake", "Cake", "bakery", 1, Money.parse("16.00", "EUR"))
    sale = quote(
        db, demo, coffee, cake, customer=IdentityInput(wallet_id="w-demo"), payment_method="qr"
    )
    applied = {a["promotion_id"] for a in sale.applied}
    assert {"welcome-3", "coffee-3-for-2", "wallet-2-off-20", "points", "lucky-draw"} <= applied
    assert applied - {"wallet-10-off"} == {
        "welcome-3",
        "coffee-3-for-2",
        "wallet-2-off-20",
        "points",
        "lucky-draw",
    }
    reasons = {r["promotion_id"]: r["reason"] for r in sale.rejected}
    assert reasons["pay-with-points"] == "the customer did not ask to pay with points"
    assert reasons["friends"] == "needs a referral code"
    assert sale.total_before_minor == 2500
    assert sum(ln["final_minor"] for ln in sale.lines) == sale.total_after_minor


def test_a_paused_or_ended_promotion_stops_applying_at_once(
    db: Database, demo: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The parsed catalog is kept per process, but every sale checks it against the database."""
    from gateway.services.promotions import promotion_admin as admin

    add_promotion(db, demo, "ten", "percent", TEN_PERCENT)
    ends_at = utcnow() + timedelta(hours=1)
    add_promotion(db, demo, "brief", "percent", {"percent_bp": 500}, ends_at=ends_at)
    assert quote(db, demo).total_after_minor == 2000 - 200 - 90
    # "brief" ends by its date, nothing in the database changed: the sale's clock is moved past
    # the end instead of waiting for it (a wait would race a slow machine's first quote).
    monkeypatch.setattr(sales, "utcnow", lambda: ends_at + timedelta(seconds=1))
    assert quote(db, demo).total_after_minor == 2000 - 200
    with db.unit_of_work() as uow:
        admin.pause(uow, till_of(db, demo).merchant_id, "ten", actor="manager")
        uow.commit()
    assert quote(db, demo).total_after_minor == 2000


def test_expired_points_cannot_be_spent(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "redeem", "points_redeem", {"point_value_minor": 1})
    member = IdentityInput(member_code="M-OLD")
    bought_once(db, demo, member)
    with db.unit_of_work() as uow:
        customer_id = uow.session.scalars(select(Customer.id)).one()
        now = utcnow()
        uow.session.add_all(
            [
                PointsLot(
                    customer_id=customer_id,
                    source="earned",
                    points=300,
                    remaining=300,
                    earned_at=now - timedelta(days=400),
                    expires_at=now - timedelta(days=35),
                ),
                PointsLot(
                    customer_id=customer_id,
                    source="earned",
                    points=120,
                    remaining=120,
                    earned_at=now - timedelta(days=10),
                    expires_at=now + timedelta(days=355),
                ),
            ]
        )
        uow.commit()
    sale = quote(db, demo, customer=member, redeem_points=1000)
    assert (sale.points_redeemed, sale.total_after_minor) == (120, 2000 - 120)


def test_the_worker_deletes_old_unpaid_quotes_and_queues_the_next_clean_up(
    db: Database, demo: Any
) -> None:
    from gateway.adapters.models import Job
    from gateway.config import load_config
    from gateway.services import jobs
    from gateway.services.registry import job_handlers

    old_quote, new_quote = quote(db, demo).id, quote(db, demo).id
    old_paid = quote(db, demo).id
    assert pay(db, demo, old_paid) is not None
    with db.unit_of_work() as uow:
        for sale_id in (old_quote, old_paid):
            uow.session.get_one(Sale, sale_id).created_at = utcnow() - timedelta(days=8)
        sales.schedule_purge(uow, utcnow().date() - timedelta(days=1))
        uow.session.execute(
            text("UPDATE jobs SET run_at = :at WHERE kind = :kind"),
            {"at": utcnow() - timedelta(seconds=1), "kind": sales.PURGE_JOB},
        )
        uow.commit()
    handlers = job_handlers(
        load_config(env=isolated_env(), overrides={"database": {"url": db.url}})
    )
    assert jobs.run_due_jobs(db, {sales.PURGE_JOB: handlers[sales.PURGE_JOB]}) == 1
    with db.unit_of_work(readonly=True) as uow:
        left = set(uow.session.scalars(select(Sale.id)))
        queued = uow.session.scalars(
            select(Job.dedupe_key).where(Job.kind == sales.PURGE_JOB, Job.status == "pending")
        ).all()
    assert left == {new_quote, old_paid}
    assert queued == [f"{sales.PURGE_JOB}:{utcnow().date().isoformat()}"]


def test_an_experiment_run_through_real_sales_reads_back_per_group(db: Database, demo: Any) -> None:
    """Sixty customers buy through the sales service (paid at the bank); the results page's
    figures come back from what was recorded: the offer redeemed only in its group, the
    holdout untouched, the cost equal to the discounts given."""
    from gateway.services.promotions import promotion_admin as admin
    from gateway.services.promotions.experiment_results import results

    merchant_id = till_of(db, demo).merchant_id
    with db.unit_of_work() as uow:
        admin.create_experiment(
            uow,
            merchant_id,
            key="ab",
            name="A/B",
            variants=[("control", 1), ("B", 1)],
            holdout_bp=2000,
            control="control",
        )
        uow.commit()
    with db.unit_of_work() as uow:
        experiment_id = uow.session.scalars(select(Experiment.id)).one()
    add_promotion(
        db, demo, "b-off", "percent", {"percent_bp": 1000}, experiment_id=experiment_id, variant="B"
    )
    given = 0
    for n in range(60):
        for _ in range(1 + n % 2):
            payment = pay(db, demo, quote(db, demo, customer=IdentityInput(wallet_id=f"c{n}")).id)
            assert payment is not None
            bank_pays(db, payment)
            given += 2000 - payment.amount_minor
    with db.unit_of_work(readonly=True) as uow:
        found = results(uow, merchant_id, "ab", now=utcnow())
    by_name = {f.name: f for f in found.figures}
    assert set(by_name) == {"control", "B", "holdout"}
    assert sum(f.customers for f in by_name.values()) == 60
    assert sum(f.purchases for f in by_name.values()) == 90
    assert by_name["B"].redemptions == by_name["B"].eligible > 0
    assert by_name["control"].redemptions == by_name["holdout"].redemptions == 0
    assert by_name["B"].cost_minor == given == 200 * by_name["B"].purchases
    assert by_name["control"].ticket_sum_minor == 2000 * by_name["control"].purchases
    assert all(f.new_customers == f.customers for f in by_name.values())
    assert [c.variant for c in found.comparisons] == ["B", "holdout"]
    b_verdict, holdout_verdict = (c.verdict for c in found.comparisons)
    assert b_verdict.startswith("Variant B converts 100.0 % of eligible sales against 0.0 %")
    # every B ticket is 18.00 and every control ticket 20.00: certain, not "no difference"
    assert "Average ticket 18.00 EUR against 20.00 EUR: the difference is statistically" in (
        b_verdict
    )
    assert holdout_verdict.startswith("Not enough data yet")


def test_a_lucky_draw_is_audited_by_replaying_every_roll(db: Database, demo: Any) -> None:
    from click.testing import CliRunner

    from gateway.entrypoints.cli import main
    from gateway.services.promotions import promotion_admin as admin

    prize = {"id": "mug", "name": "Kassa mug", "probability_ppm": 500_000, "value_minor": 400}
    add_promotion(db, demo, "draw", "draw", {"table": {"prizes": [prize]}})
    for _ in range(6):
        payment = pay(db, demo, quote(db, demo).id)
        assert payment is not None
        bank_pays(db, payment)

    def audit(*extra: str) -> Any:
        env = {"KASSA_DATABASE_URL": db.url}
        return CliRunner().invoke(main, ["promotions", "audit-draws", "draw", *extra], env=env)

    honest = audit()
    assert honest.exit_code == 0, honest.output
    assert "6 of 6 draws replay exactly" in honest.output
    secret = audit("--reveal-seed")
    assert secret.exit_code == 2 and "stays secret while the promotion can still draw" in (
        secret.output
    )
    with db.unit_of_work() as uow:
        entry = uow.session.scalars(select(DrawEntry).order_by(DrawEntry.id)).first()
        assert entry is not None
        entry.outcome = "won" if entry.outcome != "won" else "no_prize"  # a tampered record
        admin.end(uow, till_of(db, demo).merchant_id, "draw", actor="manager")
        uow.commit()
    tampered = audit("--reveal-seed")
    assert tampered.exit_code == 1
    assert "5 of 6 draws replay exactly" in tampered.output and "DIFFERS" in tampered.output
    with db.unit_of_work(readonly=True) as uow:
        seed = uow.session.scalars(select(PromotionRow.draw_seed)).one()
    assert f"seed: {seed}" in tampered.output


def test_a_personal_coupon_issued_from_the_cli_works_only_for_its_customer(
    db: Database, demo: Any
) -> None:
    from click.testing import CliRunner

    from gateway.entrypoints.cli import main

    add_promotion(db, demo, "vip", "coupon", {"batch": True, "amount_off_minor": 400})
    alice = IdentityInput(wallet_id="wallet-alice")
    bought_once(db, demo, alice)
    with db.unit_of_work(readonly=True) as uow:
        token = uow.session.scalars(select(Customer.token)).one()

    def cli(*args: str) -> Any:
        return CliRunner().invoke(
            main, ["promotions", "issue-coupons", "vip", *args], env={"KASSA_DATABASE_URL": db.url}
        )

    assert cli("--customer", "cus_nobody").exit_code == 2
    assert cli().exit_code == 2  # neither --count nor --customer
    issued = cli("--customer", token)
    assert issued.exit_code == 0, issued.output
    code, owner = issued.output.strip().split("\t")
    assert owner == token
    someone_else = quote(
        db, demo, customer=IdentityInput(wallet_id="wallet-bob"), coupon_codes=(code,)
    )
    assert {
        "name": f"coupon {code}",
        "promotion_id": "",
        "reason": "this coupon code belongs to another customer",
    } in someone_else.rejected
    anonymous = quote(db, demo, coupon_codes=(code,))
    assert anonymous.total_after_minor == 2000
    mine = quote(db, demo, customer=alice, coupon_codes=(code,))
    assert mine.total_after_minor == 1600


def test_a_refund_gives_redeemed_points_back_in_proportion(db: Database, demo: Any) -> None:
    add_promotion(db, demo, "redeem", "points_redeem", {"point_value_minor": 1})
    member = IdentityInput(member_code="M-PTS")
    bought_once(db, demo, member)
    with db.unit_of_work() as uow:
        customer_id = uow.session.scalars(select(Customer.id)).one()
        expires = utcnow() + timedelta(days=100)
        uow.session.add(
            PointsLot(
                customer_id=customer_id,
                source="earned",
                points=400,
                remaining=400,
                earned_at=utcnow(),
                expires_at=expires,
            )
        )
        uow.commit()
    sale = quote(db, demo, customer=member, redeem_points=400)
    payment = pay(db, demo, sale.id)
    assert payment is not None and payment.amount_minor == 1600
    bank_pays(db, payment)
    refund(db, demo, payment.id, "8.00")  # half of what was paid
    with db.unit_of_work(readonly=True) as uow:
        back = uow.session.scalars(select(PointsLot).where(PointsLot.source == "refund")).one()
        assert (back.points, back.remaining) == (200, 200)
        assert back.expires_at == expires  # never later than the points it replaces
    refund(db, demo, payment.id, "8.00")  # the rest: every redeemed point is back
    with db.unit_of_work(readonly=True) as uow:
        backs = uow.session.scalars(
            select(PointsLot.points).where(PointsLot.source == "refund")
        ).all()
    assert sorted(backs) == [200, 200]


def test_a_referee_whose_first_card_purchase_was_reversed_is_not_referred_twice(
    db: Database, demo: Any
) -> None:
    from gateway.services.devices.cards import TerminalOutcome, apply_charge, apply_reversal

    add_promotion(db, demo, "ref", "referral", {"amount_off_minor": 200, "referrer_points": 50})
    alice = IdentityInput(wallet_id="wallet-alice")
    bought_once(db, demo, alice)
    with db.unit_of_work(readonly=True) as uow:
        code = uow.session.scalars(select(Customer.referral_code)).one()
    bob = IdentityInput(wallet_id="wallet-bob")
    card = pay(db, demo, quote(db, demo, customer=bob, referral_code=code).id, method="card")
    assert card is not None and card.amount_minor == 1800
    approved = TerminalOutcome(approved=True, result_code=0, message="Approved", amount_minor=1800)
    with db.unit_of_work() as uow:
        apply_charge(uow, card.id, approved, "device")
        uow.commit()
    with db.unit_of_work() as uow:
        apply_reversal(uow, card.id, approved, "device")  # bob is "new" again: no purchase
        uow.commit()
    again = quote(db, demo, customer=bob, referral_code=code)
    assert again.total_after_minor == 2000
    assert any(r["reason"] == "this customer was referred before" for r in again.rejected)
    assert pay(db, demo, again.id) is not None  # and paying does not trip over the old referral
