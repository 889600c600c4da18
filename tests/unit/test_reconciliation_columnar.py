"""The columnar fast path gives exactly the pure engine's verdicts on random days, every fault."""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.domain.reconciliation import (
    BankLine,
    FeeRate,
    FeeSchedule,
    KassaPayment,
    KassaRefund,
    ManualDecision,
    Outcome,
    reconcile,
)
from gateway.domain.reconciliation.columnar import (
    lines_frame,
    payments_frame,
    reconcile_frames,
    refunds_frame,
)

FEES = FeeSchedule.of(qr=FeeRate(90, 0), card=FeeRate(140, 5))
DAY = date(2026, 3, 2)
FAULTS = (
    "missing",
    "unknown",
    "amount",
    "currency",
    "duplicate",
    "split",
    "wrong_fee",
    "fee_from_entry",
    "no_fee",
    "refund_line",
    "refund_missing",
    "refund_netted",
    "chargeback",
    "shared_reference",
    "by_servicer_ref",
    "by_remittance",
    "by_trace",
    "by_amount",
    "trace_is_other_reference",
    "batch",
    "batch_detail",
    "mentioned_twice",
    "kind_fee",
    "not_settleable",
    "decision",
    "reference_is_refund_id",
)
# Python's str.split() breaks on these too; polars must see the same words.
SPACES = (" ", "\t", "\x1c", "\x1f", "\u3000", "\n")


def random_day(rng: random.Random, n: int, faults: list[str]) -> dict[str, list]:  # type: ignore[type-arg]
    """N payments settled by reference, then each chosen fault applied to a random payment."""
    pays: list[KassaPayment] = []
    lines: list[BankLine] = []
    refunds: list[KassaRefund] = []
    decisions: list[ManualDecision] = []
    for i in range(n):
        method = rng.choice(("qr", "card", "other"))
        amount = rng.choice((rng.randrange(1, 5000), 1000))  # equal amounts now and then
        paid_on = DAY + timedelta(days=rng.randrange(3))
        p = KassaPayment(f"p{i:03d}", f"K{i:04d}", method, amount, "EUR", paid_on)
        pays.append(p)
        fee = FEES.rate(method).fee(amount)
        booked = paid_on + timedelta(days=rng.randrange(2))
        ref = p.reference
        lines.append(BankLine(line_id=f"L{i:03d}", amount_minor=amount, currency="EUR",
                              booking_date=booked, end_to_end_id=ref, fee_minor=fee))  # fmt: skip
    originals = list(lines)
    for k, fault in enumerate(faults):
        i = rng.randrange(n)
        p = pays[i]
        ln = next((x for x in lines if x.line_id == f"L{i:03d}"), originals[i])
        apply_fault(rng, fault, k, i, p, ln, pays, lines, refunds, decisions)
    rng.shuffle(pays)
    rng.shuffle(lines)
    return {"payments": pays, "refunds": refunds, "lines": lines, "decisions": decisions}


def apply_fault(
    rng: random.Random,
    fault: str,
    k: int,
    i: int,
    p: KassaPayment,
    ln: BankLine,
    pays: list[KassaPayment],
    lines: list[BankLine],
    refunds: list[KassaRefund],
    decisions: list[ManualDecision],
) -> None:
    def replace_line(**kw: object) -> None:
        at = next((j for j, x in enumerate(lines) if x.line_id == ln.line_id), None)
        if at is not None:
            fields = {f: getattr(ln, f) for f in ln.__slots__}
            lines[at] = BankLine(**{**fields, **kw})  # type: ignore[arg-type]

    def replace_pay(**kw: object) -> None:
        at = next(j for j, x in enumerate(pays) if x.id == p.id)
        fields = {f: getattr(p, f) for f in p.__slots__}
        pays[at] = KassaPayment(**{**fields, **kw})  # type: ignore[arg-type]

    def extra(lid: str, amount: int, **kw: object) -> None:
        base = {"currency": "EUR", "booking_date": ln.booking_date} | kw
        lines.append(BankLine(line_id=lid, amount_minor=amount, **base))  # type: ignore[arg-type]

    space = rng.choice(SPACES)
    if fault == "missing":
        lines[:] = [x for x in lines if x.line_id != ln.line_id]
    elif fault == "unknown":
        extra(f"U{k}", rng.randrange(1, 5000), end_to_end_id=f"X{k}", fee_minor=0)
    elif fault == "amount":
        replace_line(amount_minor=ln.amount_minor + rng.choice((-4, 1)))
    elif fault == "currency":
        replace_line(currency="USD")
    elif fault == "duplicate":
        extra(f"D{k}", ln.amount_minor, end_to_end_id=ln.end_to_end_id, fee_minor=ln.fee_minor)
    elif fault == "split":
        half = ln.amount_minor // 2
        replace_line(amount_minor=half)
        extra(f"S{k}", ln.amount_minor - half, end_to_end_id=ln.end_to_end_id)
    elif fault == "wrong_fee":
        replace_line(fee_minor=(ln.fee_minor or 0) + 1)
    elif fault == "fee_from_entry":
        replace_line(fee_minor=None, entry_amount_minor=ln.amount_minor - rng.randrange(0, 40))
    elif fault == "no_fee":
        replace_line(fee_minor=None, entry_tx_count=rng.choice((0, 1)))
    elif fault in ("refund_line", "refund_missing", "refund_netted"):
        amount = max(1, p.amount_minor // 3)
        r = KassaRefund(f"r{k:03d}", p.id, amount, "EUR", p.paid_on + timedelta(days=1))
        refunds.append(r)
        if fault == "refund_line":
            extra(f"R{k}", -amount, end_to_end_id=r.id, kind=rng.choice(("refund", None)))
        elif fault == "refund_netted":
            replace_pay(refunded_minor=amount, status="partially_refunded")
            replace_line(amount_minor=ln.amount_minor - amount)
    elif fault == "chargeback":
        extra(f"C{k}", -rng.randrange(1, 2 * p.amount_minor + 2), end_to_end_id=p.reference)
    elif fault == "shared_reference":
        j = rng.randrange(len(pays))
        replace_pay(reference=pays[j].reference if pays[j].id != p.id else p.reference)
    elif fault == "by_servicer_ref":
        other = pays[rng.randrange(len(pays))].reference  # the end-to-end id may name another
        replace_line(end_to_end_id=rng.choice((None, "NOTPROVIDED", other)),
                     account_servicer_ref=p.reference)  # fmt: skip
    elif fault == "by_remittance":
        words = [f"W{k}", p.reference, "X"]
        rng.shuffle(words)
        replace_line(end_to_end_id=None, remittance=space.join(words))
    elif fault == "by_trace":
        trace = f"T{k:05d}"
        replace_pay(terminal_trace=trace, receipt_no=rng.choice((None, f"R{k}", p.reference)))
        replace_line(end_to_end_id=trace)
        if rng.random() < 0.5:  # a second line naming the same payment in its remittance
            extra(f"M{k}", ln.amount_minor, remittance=f"Beleg{space}{p.reference}")
    elif fault == "trace_is_other_reference":  # a key of p's is another payment's reference
        replace_pay(
            **{
                rng.choice(("terminal_trace", "receipt_no")): pays[
                    rng.randrange(len(pays))
                ].reference
            }
        )
    elif fault == "by_amount":
        replace_line(end_to_end_id=None, remittance=rng.choice(("", f"pos{space}{k}")))
    elif fault == "batch":
        replace_line(
            end_to_end_id=None,
            entry_tx_count=rng.choice((2, 3)),
            entry_ref=rng.choice(("", f"E{k}", "E0")),
            entry_amount_minor=ln.amount_minor - (ln.fee_minor or 0),
        )
    elif fault == "batch_detail":  # named by reference, but a detail of a batch entry E0
        replace_line(entry_tx_count=2, entry_ref="E0")
    elif fault == "mentioned_twice":
        extra(f"M{k}", rng.choice((ln.amount_minor, 7)), remittance=f"Beleg{space}{p.reference}")
    elif fault == "kind_fee":
        replace_line(kind=rng.choice(("fee", "chargeback", "payment", "refund")))
    elif fault == "not_settleable":
        replace_pay(status=rng.choice(("failed", "created", "settled", "refunded")))
    elif fault == "decision":
        action = rng.choice(("link", "accept_difference", "write_off"))
        subject = rng.choice((p.id, None)) if action == "write_off" else p.id
        line_ids = (ln.line_id,) if subject is None or rng.random() < 0.7 else ()
        if action != "write_off" and not line_ids:
            line_ids = (ln.line_id,)
        decisions.append(
            ManualDecision(action, subject, line_ids, by="ana", at=datetime(2026, 3, 9), note="x")
        )
    elif fault == "reference_is_refund_id":
        if all(r.id != p.reference for r in refunds):
            refunds.append(KassaRefund(p.reference, pays[0].id, 5, "EUR", DAY))


def both(day: dict[str, list], as_of: date, window: int = 3):  # type: ignore[no-untyped-def,type-arg]
    kw = {"fees": FEES, "as_of": as_of, "window_days": window, "decisions": day["decisions"]}
    pure = reconcile(day["payments"], day["refunds"], day["lines"], **kw)
    fast = reconcile_frames(
        payments_frame(day["payments"]),
        refunds_frame(day["refunds"]),
        lines_frame(day["lines"]),
        **kw,
    )
    return pure, fast


@settings(max_examples=150, deadline=None)
@given(
    st.integers(0, 2**32),
    st.integers(1, 40),
    st.lists(st.sampled_from(FAULTS), max_size=12),
    st.integers(0, 20),
    st.integers(0, 4),
)
def test_fast_path_gives_exactly_the_pure_verdicts(
    seed: int, n: int, faults: list[str], late: int, window: int
) -> None:
    day = random_day(random.Random(seed), n, faults)
    pure, fast = both(day, DAY + timedelta(days=late), window)
    assert tuple(fast.results()) == pure.results
    assert fast.days == pure.days
    assert fast.unused_decisions == pure.unused_decisions
    for d in {r.day for r in pure.results}:
        assert list(fast.results(d)) == [r for r in pure.results if r.day == d]


@pytest.mark.parametrize("fault", FAULTS)
def test_each_fault_alone_many_times(fault: str) -> None:
    rng = random.Random(fault)
    for _ in range(25):
        day = random_day(rng, rng.randrange(1, 15), [fault] * rng.randrange(1, 4))
        pure, fast = both(day, DAY + timedelta(days=10))
        assert tuple(fast.results()) == pure.results
        assert fast.days == pure.days


@pytest.mark.parametrize("seed", range(12))
def test_faults_together_many_times(seed: int) -> None:
    """Faults that only show in company (a batch and a detail of its entry, shared keys …)."""
    rng = random.Random(seed)
    for _ in range(40):
        n = rng.randrange(1, 12)
        day = random_day(rng, n, rng.choices(FAULTS, k=rng.randrange(2, 2 * n + 3)))
        pure, fast = both(day, DAY + timedelta(days=rng.randrange(8)), rng.randrange(4))
        assert tuple(fast.results()) == pure.results
        assert fast.days == pure.days


def test_clean_pairs_are_taken_by_the_fast_path() -> None:
    """The point of it: a plain day leaves the pure engine nothing to do."""
    day = random_day(random.Random(3), 200, [])
    pure, fast = both(day, DAY + timedelta(days=10))
    assert fast.pairs.height == 200
    assert fast.rest.results == ()
    assert fast.counts() == {("payment", Outcome.MATCHED): 200, ("line", Outcome.MATCHED): 200}
    assert tuple(fast.results()) == pure.results


def test_duplicate_ids_are_refused_as_by_the_pure_engine() -> None:
    day = random_day(random.Random(1), 3, [])
    day["lines"].append(day["lines"][0])
    with pytest.raises(ValueError, match=r"line id .L00.. appears twice"):
        both(day, DAY)
