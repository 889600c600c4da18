"""The kinds added for sales: paying with points, referrals, draw entries, batch coupons,
gift periods and experiment variants; the JSON spec managers write; refunds of a total."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.promotions import (
    Basket,
    BasketLine,
    Coupon,
    Customer,
    Limits,
    LoyaltyPoints,
    LuckyDraw,
    PercentOff,
    PointsRedemption,
    PricedSale,
    Referral,
    ReferralClaim,
    SaleContext,
    ThresholdGift,
    Usage,
    price,
)
from gateway.domain.promotions.draw import DrawTable, Prize
from gateway.domain.promotions.spec import KINDS, promotion_from_spec, spec_of
from gateway.errors import InvalidInput

NOON = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)
ALICE = Customer("alice", segment="returning", purchases=3, points_balance=120)
NEWBIE = Customer("bob", segment="new", first_use=True)


def basket(*amounts: int, fee: int = 0) -> Basket:
    lines = tuple(BasketLine(f"s{i}", f"Item {i}", "food", 1, a) for i, a in enumerate(amounts))
    return Basket(lines, "EUR", fee)


def ctx(**kw: object) -> SaleContext:
    return SaleContext(moment=NOON, payment_method="qr", **kw)  # type: ignore[arg-type]


def reasons(sale: PricedSale) -> dict[str, str]:
    return {r.promotion_id: r.reason for r in sale.rejected}


# --- paying with points ---------------------------------------------------------------


REDEEM = PointsRedemption(id="pay-points", point_value_minor=5, min_points=10, max_share_bp=5000)


def test_points_pay_part_of_the_sale_within_balance_and_share() -> None:
    sale = price(basket(1000), [REDEEM], ctx(customer=ALICE, redeem_points=80))
    assert (sale.points_redeemed, sale.total_after_minor) == (80, 600)
    capped = price(basket(1000), [REDEEM], ctx(customer=ALICE, redeem_points=500))
    assert capped.points_redeemed == 100  # at most half of 10.00, at 0.05 a point
    all_in = price(basket(10_000), [REDEEM], ctx(customer=ALICE, redeem_points=500))
    assert all_in.points_redeemed == 120  # never more than the balance


@pytest.mark.parametrize(
    ("customer", "asked", "reason"),
    [
        (ALICE, 0, "the customer did not ask to pay with points"),
        (None, 50, "needs an identified customer"),
        (NEWBIE, 50, "the customer has no points to redeem"),
        (ALICE, 5, "at least 10 points are needed, the customer has 120"),
    ],
)
def test_points_redemption_says_why_not(customer: Customer | None, asked: int, reason: str) -> None:
    sale = price(basket(1000), [REDEEM], ctx(customer=customer, redeem_points=asked))
    assert reasons(sale) == {"pay-points": reason}


def test_an_exclusive_discount_does_not_stop_paying_with_points() -> None:
    only = PercentOff(id="only", percent_bp=1000, exclusive=True, priority=9)
    sale = price(basket(1000), [only, REDEEM], ctx(customer=ALICE, redeem_points=20))
    assert [a.promotion_id for a in sale.applied] == ["only", "pay-points"]
    assert sale.total_after_minor == 1000 - 100 - 100


def test_points_are_earned_on_what_is_paid_after_redemption() -> None:
    earn = LoyaltyPoints(id="earn", points=1, per_minor=100)
    sale = price(basket(2000), [REDEEM, earn], ctx(customer=ALICE, redeem_points=100))
    assert (sale.total_after_minor, sale.points) == (1500, 15)


# --- referrals --------------------------------------------------------------------------


REFER = Referral(
    id="ref", amount_off_minor=300, referrer_points=50, max_referrals=3, max_referrals_per_day=1
)


@pytest.mark.parametrize(
    ("customer", "claim", "reason"),
    [
        (NEWBIE, None, "needs a referral code"),
        (ALICE, ReferralClaim("carol"), "only on a customer's first purchase"),
        (NEWBIE, ReferralClaim("bob"), "a customer cannot refer themselves"),
        (
            NEWBIE,
            ReferralClaim("carol", referee_referred_before=True),
            "this customer was referred before",
        ),
        (
            NEWBIE,
            ReferralClaim("carol", referrer_has_purchased=False),
            "the referrer has not made a purchase yet",
        ),
        (
            NEWBIE,
            ReferralClaim("carol", referrer_referrals=3),
            "the referrer has reached the limit of 3 referrals",
        ),
        (
            NEWBIE,
            ReferralClaim("carol", referrer_referrals=1, referrer_referrals_today=1),
            "the referrer has reached today's limit of 1 referrals",
        ),
    ],
)
def test_referral_abuse_limits(
    customer: Customer, claim: ReferralClaim | None, reason: str
) -> None:
    sale = price(basket(2000), [REFER], ctx(customer=customer, referral=claim))
    assert reasons(sale) == {"ref": reason}


def test_a_referee_saves_and_the_referrer_is_promised_points() -> None:
    sale = price(basket(2000), [REFER], ctx(customer=NEWBIE, referral=ReferralClaim("carol")))
    (applied,) = sale.applied
    assert (applied.discount_minor, applied.referrer_points) == (300, 50)


# --- draws, coupons, gifts, variants ---------------------------------------------------


DRAW = LuckyDraw(
    id="draw",
    table=DrawTable((Prize("mug", "Mug", 100_000, 400),)),
    min_spend_minor=1500,
)


def test_a_sale_enters_the_draw_above_its_minimum_spend() -> None:
    assert reasons(price(basket(1000), [DRAW], ctx())) == {
        "draw": "spend 5.00 EUR more to enter the draw"
    }
    (entry,) = price(basket(1500), [DRAW], ctx()).applied
    assert entry.draw and entry.discount_minor == 0


def test_a_batch_coupon_applies_only_when_the_service_vouched_for_its_code() -> None:
    batch = Coupon(id="c", batch=True, amount_off_minor=200)
    assert reasons(price(basket(1000), [batch], ctx())) == {"c": "needs its coupon code"}
    sale = price(basket(1000), [batch], ctx(coupon_promotions=frozenset({"c"})))
    assert sale.total_after_minor == 800
    with pytest.raises(InvalidInput, match="needs a code or a batch"):
        Coupon(id="x", amount_off_minor=1)


def test_a_gift_with_a_period_counts_only_that_period() -> None:
    gift = ThresholdGift(id="g", gift="Tote bag", after_purchases=5, period_days=30)
    usage = {"g": Usage(period_purchases=3)}
    assert reasons(price(basket(100), [gift], ctx(customer=ALICE, usage=usage))) == {
        "g": "1 more purchases to earn Tote bag"
    }
    usage = {"g": Usage(period_purchases=4)}
    assert price(basket(100), [gift], ctx(customer=ALICE, usage=usage)).gifts == ("Tote bag",)


def test_a_variant_promotion_applies_only_to_its_group() -> None:
    offer = PercentOff(id="b", percent_bp=1000, experiment="spring", variant="B")
    assert reasons(price(basket(1000), [offer], ctx())) == {"b": "needs an identified customer"}
    control = ctx(customer=ALICE, variants={"spring": "control"})
    assert reasons(price(basket(1000), [offer], control)) == {
        "b": "not in this customer's test group"
    }
    treated = ctx(customer=ALICE, variants={"spring": "B"})
    assert price(basket(1000), [offer], treated).total_after_minor == 900


# --- the spec managers write -----------------------------------------------------------


EXAMPLES = {
    "threshold": {"tiers": [[5000, 500]]},
    "percent": {"percent_bp": 1000, "cap_minor": 500},
    "multi_buy": {"buy": 2},
    "fixed_price": {"quantity": 3, "price_minor": 1000},
    "new_customer": {"amount_off_minor": 300},
    "fee_waiver": {},
    "coupon": {"code": "SPRING", "amount_off_minor": 200},
    "points": {"points": 1, "per_minor": 100, "expiry_days": 365},
    "gift": {"gift": "Mug", "after_purchases": 5},
    "points_redeem": {"point_value_minor": 1},
    "referral": {"amount_off_minor": 300, "referrer_points": 50},
    "draw": {"table": {"prizes": [{"id": "m", "name": "Mug", "probability_ppm": 1000}]}},
}


def test_every_kind_round_trips_through_its_spec() -> None:
    assert set(EXAMPLES) == set(KINDS)
    for kind, raw in EXAMPLES.items():
        spec = {
            "name": f"A {kind}",
            "targeting": {"payment_methods": ["qr"], "weekdays": [0, 6], "hours": [22, 2]},
            "limits": {"per_customer_per_day": 1, "budget_minor": 10_000},
            **raw,
        }
        made = promotion_from_spec("p", kind, spec)
        assert made.kind == kind
        assert promotion_from_spec("p", kind, spec_of(made)) == made


@pytest.mark.parametrize(
    ("kind", "spec", "message"),
    [
        ("bogus", {}, "kind: expected one of"),
        ("percent", {"percent_bp": 1000, "colour": "red"}, "colour: not a field of a percent"),
        ("percent", {"percent_bp": "10"}, "percent_bp: expected a whole number"),
        ("percent", {"percent_bp": 10.5}, "percent_bp: expected a whole number"),
        ("percent", {}, "percent_bp: required for a percent promotion"),
        ("percent", {"percent_bp": 1, "limits": {"budget_minor": -1}}, "limits.budget_minor"),
        (
            "percent",
            {"percent_bp": 1, "targeting": {"payment_methods": ["cash"]}},
            "targeting.payment_methods: unknown 'cash'",
        ),
        ("percent", {"percent_bp": 1, "targeting": {"hours": [9, 9]}}, "targeting.hours"),
        ("percent", {"percent_bp": 1, "targeting": {"weekdays": [7]}}, "targeting.weekdays"),
        ("threshold", {"tiers": [[100]]}, r"tiers\[0\]"),
        (
            "draw",
            {"table": {"prizes": [{"id": "m", "name": "M", "probability_ppm": 0}]}},
            r"table.prizes\[0\].probability_ppm",
        ),
        ("percent", {"percent_bp": 1, "exclusive": "yes"}, "exclusive: expected true or false"),
    ],
)
def test_a_bad_spec_names_the_field(kind: str, spec: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        promotion_from_spec("p", kind, spec)


# --- refunds of a total ----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(
    amounts=st.lists(st.integers(1, 50_000), min_size=1, max_size=6),
    percent=st.integers(1, 10_000),
    cuts=st.lists(st.integers(1, 100), min_size=1, max_size=5),
)
def test_refunds_of_a_total_return_budget_and_points_exactly_once(
    amounts: list[int], percent: int, cuts: list[int]
) -> None:
    """However a total is refunded in parts, each share is monotone, never more than was
    given, and the last (full) refund returns exactly the discount, budget and points."""
    promos = [
        PercentOff(id="p", percent_bp=percent, limits=Limits(budget_minor=10**9)),
        LoyaltyPoints(id="earn", points=3, per_minor=100),
    ]
    sale = price(basket(*amounts), promos, ctx(customer=ALICE))
    paid = sale.total_after_minor
    refunded, before = 0, {a.promotion_id: (0, 0, 0) for a in sale.applied}
    steps = [paid * c // 100 for c in sorted(cuts)] + [paid]
    for step in steps:
        refunded = max(refunded, step)
        for share in sale.refund_share_of_total(refunded):
            applied = next(a for a in sale.applied if a.promotion_id == share.promotion_id)
            now = (share.discount_minor, share.budget_minor, share.points)
            assert all(n >= b for n, b in zip(now, before[share.promotion_id], strict=True))
            assert share.discount_minor <= applied.discount_minor
            assert share.points <= applied.points
            before[share.promotion_id] = now
    for applied in sale.applied:
        discount, budget, points = before[applied.promotion_id]
        assert (discount, points) == (applied.discount_minor, applied.points)
        assert budget == (applied.discount_minor if applied.budgeted else 0)
