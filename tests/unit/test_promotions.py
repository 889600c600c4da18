"""The promotions pricing engine: each kind with hand-computed amounts, targeting, limits,
combination, allocation and refund reversal, plus Hypothesis properties."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.promotions import (
    Basket,
    BasketLine,
    Coupon,
    Customer,
    FeeWaiver,
    FixedPrice,
    Limits,
    LoyaltyPoints,
    MultiBuy,
    NewCustomerDiscount,
    PercentOff,
    PricedSale,
    Promotion,
    SaleContext,
    Targeting,
    ThresholdDiscount,
    ThresholdGift,
    Tier,
    Usage,
    price,
)

MONDAY_NOON = datetime(2024, 6, 3, 12, 0, tzinfo=UTC)


def line(sku: str, minor: int, qty: int = 1, category: str = "food") -> BasketLine:
    return BasketLine(sku, sku.title(), category, qty, minor)


def basket(*lines: BasketLine, fee: int = 0) -> Basket:
    return Basket(tuple(lines), "EUR", fee)


def ctx(**kw: object) -> SaleContext:
    base: dict[str, object] = {"moment": MONDAY_NOON, "payment_method": "qr", "store_id": "s1"}
    base.update(kw)
    return SaleContext(**base)  # type: ignore[arg-type]


def reasons(sale: PricedSale) -> dict[str, str]:
    return {r.promotion_id: r.reason for r in sale.rejected}


def check_invariants(sale: PricedSale) -> None:
    assert sum(ln.final_minor for ln in sale.lines) == sale.total_after_minor
    for i, ln in enumerate(sale.lines):
        assert ln.final_minor >= 0
        assert ln.original_minor - ln.discount_minor == ln.final_minor
        assert sum(a.per_line[i] for a in sale.applied) == ln.discount_minor


# --- kinds -------------------------------------------------------------------------------


def test_threshold_tiers_and_missing_amount() -> None:
    promo = ThresholdDiscount(id="t", tiers=(Tier(5000, 500), Tier(10000, 1500)))
    sale = price(basket(line("a", 3800)), [promo], ctx())
    assert reasons(sale) == {"t": "spend 12.00 EUR more to save 5.00 EUR"}
    sale = price(basket(line("a", 6000), line("b", 4000)), [promo], ctx())
    assert sale.total_after_minor == 8500
    assert [ln.discount_minor for ln in sale.lines] == [900, 600]


def test_for_every_x_save_y_capped_per_sale() -> None:
    promo = ThresholdDiscount(id="e", every_minor=1000, every_save_minor=100)
    assert price(basket(line("a", 3550)), [promo], ctx()).discount_minor == 300
    capped = ThresholdDiscount(
        id="e", every_minor=1000, every_save_minor=100, limits=Limits(per_sale=2)
    )
    assert price(basket(line("a", 3550)), [capped], ctx()).discount_minor == 200


def test_percent_off_with_cap_on_category() -> None:
    promo = PercentOff(
        id="p", percent_bp=2000, cap_minor=300, targeting=Targeting(categories=frozenset({"d"}))
    )
    sale = price(basket(line("a", 1000), line("b", 1000, category="d")), [promo], ctx())
    assert [ln.discount_minor for ln in sale.lines] == [0, 200]
    sale = price(basket(line("b", 5000, category="d")), [promo], ctx())
    assert sale.discount_minor == 300


def test_multi_buy_cheapest_free() -> None:
    promo = MultiBuy(id="m", buy=2, get=1, targeting=Targeting(skus=frozenset({"x", "y"})))
    sale = price(basket(line("x", 300, qty=2), line("y", 200), line("z", 999)), [promo], ctx())
    assert sale.discount_minor == 200  # the 2.00 unit is free, spread over x and y
    assert [ln.discount_minor for ln in sale.lines] == [150, 50, 0]
    short = price(basket(line("x", 300)), [promo], ctx())
    assert reasons(short) == {"m": "add 2 more eligible items"}


def test_fixed_price_three_for_ten() -> None:
    promo = FixedPrice(id="f", quantity=3, price_minor=1000)
    sale = price(basket(line("a", 450, qty=4)), [promo], ctx())
    assert sale.discount_minor == 350  # 3 × 4.50 = 13.50 for 10.00
    assert sale.total_after_minor == 1450


def test_new_customer_first_use_only() -> None:
    promo = NewCustomerDiscount(id="n", amount_off_minor=200, percent_bp=1000)
    first = ctx(customer=Customer("c1", segment="new", first_use=True))
    assert price(basket(line("a", 2000)), [promo], first).discount_minor == 400
    again = ctx(customer=Customer("c1", purchases=3))
    assert reasons(price(basket(line("a", 2000)), [promo], again)) == {
        "n": "only on a customer's first purchase"
    }
    assert reasons(price(basket(line("a", 2000)), [promo], ctx())) == {
        "n": "needs an identified customer"
    }


def test_fee_waiver_on_first_order() -> None:
    promo = FeeWaiver(id="w")
    sale = price(
        basket(line("a", 1000), fee=50), [promo], ctx(customer=Customer("c", first_use=True))
    )
    assert [ln.final_minor for ln in sale.lines] == [1000, 0]
    assert sale.lines[-1].sku == "fee" and sale.total_before_minor == 1050
    assert reasons(price(basket(line("a", 1000)), [promo], ctx())) == {
        "w": "no service fee to waive"
    }


def test_coupon_needs_code() -> None:
    promo = Coupon(id="c", code="SUMMER", amount_off_minor=500)
    assert reasons(price(basket(line("a", 1000)), [promo], ctx())) == {"c": "needs its coupon code"}
    sale = price(basket(line("a", 1000)), [promo], ctx(coupon_codes=frozenset({"SUMMER"})))
    assert sale.total_after_minor == 500


def test_points_after_discounts_and_gift() -> None:
    points = LoyaltyPoints(id="pt", points=1, per_minor=100, priority=99)
    off = PercentOff(id="p", percent_bp=1000)
    gift = ThresholdGift(id="g", gift="free coffee", after_purchases=10)
    customer = Customer("c", purchases=9)
    sale = price(basket(line("a", 2550)), [points, off, gift], ctx(customer=customer))
    assert sale.total_after_minor == 2295 and sale.points == 22
    assert sale.gifts == ("free coffee",)
    early = price(basket(line("a", 2550)), [gift], ctx(customer=Customer("c", purchases=5)))
    assert reasons(early) == {"g": "4 more purchases to earn free coffee"}


# --- targeting and limits ----------------------------------------------------------------


def test_targeting_reasons() -> None:
    promos = [
        PercentOff(id="qr", percent_bp=100, targeting=Targeting(payment_methods=frozenset({"qr"}))),
        PercentOff(id="st", percent_bp=100, targeting=Targeting(stores=frozenset({"s9"}))),
        PercentOff(id="day", percent_bp=100, targeting=Targeting(weekdays=frozenset({5, 6}))),
        PercentOff(id="hr", percent_bp=100, targeting=Targeting(hours=(17, 20))),
        PercentOff(id="seg", percent_bp=100, targeting=Targeting(segments=frozenset({"lapsed"}))),
        PercentOff(id="cur", percent_bp=100, targeting=Targeting(currency="CHF")),
        PercentOff(id="sku", percent_bp=100, targeting=Targeting(skus=frozenset({"nope"}))),
    ]
    sale = price(
        basket(line("a", 1000)), promos, ctx(payment_method="card", customer=Customer("c"))
    )
    assert reasons(sale) == {
        "qr": "only when paying by wallet QR",
        "st": "not offered in this store",
        "day": "only on Sat, Sun",
        "hr": "only between 17:00 and 20:00",
        "seg": "only for lapsed customers",
        "cur": "only for sales in CHF",
        "sku": "none of its items are in the basket",
    }
    assert sale.applied == ()


def test_usage_limits() -> None:
    day = PercentOff(id="d", percent_bp=100, limits=Limits(per_customer_per_day=1))
    life = PercentOff(id="l", percent_bp=100, limits=Limits(per_customer_lifetime=2))
    glob = PercentOff(id="g", percent_bp=100, limits=Limits(global_count=5))
    used = {"d": Usage(customer_today=1), "l": Usage(customer_lifetime=2), "g": Usage(5)}
    sale = price(
        basket(line("a", 1000)), [day, life, glob], ctx(customer=Customer("c"), usage=used)
    )
    assert reasons(sale) == {
        "d": "already used today",
        "l": "already used the maximum of 2 times",
        "g": "no uses left: all 5 have been used",
    }


def test_budget_caps_discount_then_runs_out() -> None:
    promo = Coupon(id="b", code="X", amount_off_minor=500, limits=Limits(budget_minor=10000))
    codes = frozenset({"X"})
    sale = price(
        basket(line("a", 2000)), [promo], ctx(coupon_codes=codes, usage={"b": Usage(0, 9700)})
    )
    assert sale.discount_minor == 300
    assert sale.applied[0].note == "reduced to the 3.00 EUR left in its budget"
    gone = price(
        basket(line("a", 2000)), [promo], ctx(coupon_codes=codes, usage={"b": Usage(0, 10000)})
    )
    assert reasons(gone) == {"b": "budget used up"}


# --- combination ---------------------------------------------------------------------------


def test_exclusive_stops_later_discounts_but_not_points() -> None:
    excl = PercentOff(id="x", percent_bp=5000, exclusive=True, priority=10)
    other = PercentOff(id="o", percent_bp=1000)
    pts = LoyaltyPoints(id="pt", points=1, per_minor=100)
    sale = price(basket(line("a", 1000)), [other, pts, excl], ctx(customer=Customer("c")))
    assert [a.promotion_id for a in sale.applied] == ["x", "pt"]
    assert reasons(sale) == {"o": "not combinable with exclusive promotion x"}
    late = PercentOff(id="x", percent_bp=5000, exclusive=True, priority=-1)
    sale = price(basket(line("a", 1000)), [other, late], ctx())
    assert reasons(sale) == {"x": "exclusive, but o already applied"}


def test_group_keeps_the_first_by_priority_then_id() -> None:
    a = PercentOff(id="a", percent_bp=1000, group="g")
    b = PercentOff(id="b", percent_bp=2000, group="g")
    sale = price(basket(line("z", 1000)), [b, a], ctx())
    assert [p.promotion_id for p in sale.applied] == ["a"]
    assert reasons(sale) == {"b": "another promotion of group 'g' applied: a"}


# --- allocation and refunds ----------------------------------------------------------------


def test_ten_off_over_three_lines() -> None:
    promo = ThresholdDiscount(id="t", tiers=(Tier(0, 1000),))
    sale = price(basket(line("a", 333), line("b", 333), line("c", 334)), [promo], ctx())
    assert [ln.final_minor for ln in sale.lines] == [0, 0, 0]
    sale = price(basket(line("a", 1000), line("b", 1000), line("c", 1000)), [promo], ctx())
    assert [ln.discount_minor for ln in sale.lines] == [334, 333, 333]


def test_refund_share_full_and_partial() -> None:
    promos = [
        Coupon(id="c", code="X", amount_off_minor=1000, limits=Limits(budget_minor=10**6)),
        LoyaltyPoints(id="p", points=1, per_minor=100),
    ]
    b = basket(line("a", 333, qty=3), line("b", 500))
    sale = price(b, promos, ctx(coupon_codes=frozenset({"X"}), customer=Customer("c")))
    full = sale.refund_share([ln.original_minor for ln in sale.lines])
    assert [(s.discount_minor, s.points, s.budget_minor) for s in full] == [
        (1000, 0, 1000),
        (0, 4, 0),  # 14.99 - 10.00 = 4.99 paid: 4 points
    ]
    part = sale.refund_share([333, 0])
    assert part[0].discount_minor == 222 and part[0].budget_minor == 222


def test_points_need_someone_to_credit_them_to() -> None:
    pts = LoyaltyPoints(id="pt", points=1, per_minor=100)
    sale = price(basket(line("a", 1000)), [pts], ctx())
    assert (sale.points, reasons(sale)) == (0, {"pt": "needs an identified customer"})


# --- properties ----------------------------------------------------------------------------

lines_st = st.lists(
    st.builds(
        BasketLine,
        sku=st.sampled_from("abcdef"),
        name=st.just("n"),
        category=st.sampled_from(["food", "drink"]),
        quantity=st.integers(1, 5),
        unit_price_minor=st.integers(0, 5000),
    ),
    min_size=1,
    max_size=8,
)


def promos_st() -> st.SearchStrategy[list[Promotion]]:
    common = {
        "priority": st.integers(0, 3),
        "exclusive": st.booleans(),
        "group": st.sampled_from([None, "g1", "g2"]),
        "targeting": st.sampled_from(
            [
                Targeting(),
                Targeting(categories=frozenset({"food"})),
                Targeting(skus=frozenset("ab")),
            ]
        ),
        "limits": st.sampled_from([Limits(), Limits(budget_minor=700), Limits(per_sale=1)]),
    }
    tier = st.builds(Tier, st.integers(0, 9000), st.integers(0, 9000))
    cap = st.none() | st.integers(0, 3000)
    kinds = st.one_of(
        st.builds(PercentOff, percent_bp=st.integers(0, 10000), cap_minor=cap, **common),
        st.builds(
            ThresholdDiscount, tiers=st.lists(tier, min_size=1, max_size=3).map(tuple), **common
        ),
        st.builds(
            ThresholdDiscount,
            every_minor=st.integers(1, 3000),
            every_save_minor=st.integers(0, 800),
            **common,
        ),
        st.builds(MultiBuy, buy=st.integers(1, 3), get=st.integers(1, 2), **common),
        st.builds(
            FixedPrice, quantity=st.integers(1, 4), price_minor=st.integers(0, 5000), **common
        ),
        st.builds(LoyaltyPoints, points=st.integers(1, 5), per_minor=st.integers(1, 500), **common),
        st.builds(FeeWaiver, **common),
    )
    return st.lists(kinds, max_size=6).map(
        lambda ps: [type(p)(**{**p.__dict__, "id": f"p{i}"}) for i, p in enumerate(ps)]
    )


CUSTOMER_CTX = ctx(customer=Customer("c", first_use=True))


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(lines_st, promos_st(), st.integers(0, 300), st.randoms(use_true_random=False))
def test_properties(
    lines: list[BasketLine], promos: list[Promotion], fee: int, rnd: random.Random
) -> None:
    b = basket(*lines, fee=fee)
    sale = price(b, promos, CUSTOMER_CTX)
    check_invariants(sale)
    for a in sale.applied:
        assert all(0 <= d for d in a.per_line) and sum(a.per_line) == a.discount_minor
    shuffled = promos[:]
    rnd.shuffle(shuffled)
    again = price(b, shuffled, CUSTOMER_CTX)
    assert again == sale and again.rejected == sale.rejected
    full = sale.refund_share([ln.original_minor for ln in sale.lines])
    assert [(s.discount_minor, s.points) for s in full] == [
        (a.discount_minor, a.points) for a in sale.applied
    ]
    part = sale.refund_share([rnd.randint(0, ln.original_minor) for ln in sale.lines])
    for s, a in zip(part, sale.applied, strict=True):
        assert 0 <= s.discount_minor <= a.discount_minor and 0 <= s.points <= a.points
        assert s.budget_minor <= s.discount_minor
