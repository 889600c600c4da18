"""Reconciliation matching: every outcome by hand, batches, refunds, decisions, and properties."""

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
from sandbox_bank.settlement import fee_minor

FEES = FeeSchedule.of(qr=FeeRate(90, 0), card=FeeRate(140, 5))
DAY = date(2026, 3, 2)
AS_OF = DAY + timedelta(days=5)


def pay(n: int, amount: int = 1234, method: str = "qr", **kw: object) -> KassaPayment:
    fields: dict[str, object] = {"paid_on": DAY, "currency": "EUR", "reference": f"K{n:04d}"} | kw
    return KassaPayment(id=f"p{n}", method=method, amount_minor=amount, **fields)  # type: ignore[arg-type]


def line(lid: str, amount: int, ref: str | None = None, **kw: object) -> BankLine:
    fields: dict[str, object] = {"currency": "EUR", "booking_date": DAY + timedelta(days=1)} | kw
    return BankLine(line_id=lid, amount_minor=amount, end_to_end_id=ref, **fields)  # type: ignore[arg-type]


def fee(amount: int, method: str = "qr") -> int:
    return FEES.rate(method).fee(amount)


def run(payments=(), refunds=(), lines=(), **kw):  # type: ignore[no-untyped-def]
    return reconcile(payments, refunds, lines, fees=FEES, as_of=kw.pop("as_of", AS_OF), **kw)


@given(st.integers(0, 10**9), st.integers(0, 10_000), st.integers(0, 1_000))
def test_fee_is_the_sandbox_banks(amount: int, bp: int, fixed: int) -> None:
    assert FeeRate(bp, fixed).fee(amount) == fee_minor(amount, bp, fixed)


def test_matched_by_reference() -> None:
    rec = run([pay(1)], (), [line("L1", 1234, "K0001", fee_minor=fee(1234))])
    r = rec.of("p1")
    assert (r.outcome, r.linked, r.settled_minor) == (Outcome.MATCHED, ("L1",), 1234)
    assert r.reason == "matched with L1: 12.34 EUR"
    assert rec.of("L1").linked == ("p1",)
    assert rec.days[0].status == "reconciled" and rec.days[0].difference_minor == 0


def test_card_payment_found_by_receipt_in_remittance() -> None:
    p = pay(1, method="card", receipt_no="R-000815", reference="T1")
    rec = run(
        [p], (), [line("L1", 1234, remittance="Terminal 7 R-000815", fee_minor=fee(1234, "card"))]
    )
    assert rec.of("p1").outcome is Outcome.MATCHED


def test_amount_mismatch_says_by_how_much() -> None:
    rec = run([pay(1)], (), [line("L1", 1230, "K0001", fee_minor=fee(1234))])
    assert rec.of("p1").outcome is Outcome.AMOUNT_MISMATCH
    assert rec.of("p1").reason == (
        "bank settled 12.30 EUR for 12.34 EUR (difference -0.04 EUR), linked with L1"
    )
    assert rec.of("L1").outcome is Outcome.AMOUNT_MISMATCH


def test_currency_mismatch() -> None:
    rec = run([pay(1)], (), [line("L1", 1234, "K0001", currency="USD")])
    assert rec.of("p1").outcome is Outcome.CURRENCY_MISMATCH
    assert rec.of("p1").reason == "currencies differ, linked with L1; bank booked 12.34 USD"


def test_fee_difference_against_schedule() -> None:
    rec = run([pay(1, 10_000)], (), [line("L1", 10_000, "K0001", fee_minor=95)])
    r = rec.of("p1")
    assert r.outcome is Outcome.MATCHED_FEE_DIFFERENCE
    assert r.reason == (
        "matched with L1, but the bank charged a fee of 0.95 EUR where the schedule gives "
        "0.90 EUR (difference 0.05 EUR)"
    )


def test_fee_from_net_of_one_transaction_entry() -> None:
    ln = line("L1", 10_000, "K0001", entry_amount_minor=10_000 - 90)
    assert run([pay(1, 10_000)], (), [ln]).of("p1").outcome is Outcome.MATCHED


def test_settled_twice() -> None:
    ls = [
        line("L2", 1234, "K0001", fee_minor=fee(1234)),
        line("L1", 1234, "K0001", fee_minor=fee(1234)),
    ]
    rec = run([pay(1)], (), ls)
    assert rec.of("p1").outcome is Outcome.SETTLED_TWICE
    assert rec.of("p1").linked == ("L1", "L2")
    assert rec.of("L1").outcome is Outcome.MATCHED
    assert rec.of("L2").outcome is Outcome.SETTLED_TWICE


def test_split_settlement_one_payment_many_lines() -> None:
    ls = [line("L1", 1000, "K0001", fee_minor=9), line("L2", 234, "K0001", fee_minor=2)]
    rec = run([pay(1)], (), ls)
    assert rec.of("p1").outcome is Outcome.MATCHED
    assert "settled in 2 parts" in rec.of("p1").reason


@pytest.mark.parametrize(
    ("as_of", "outcome"),
    [(DAY + timedelta(days=2), Outcome.AWAITING_SETTLEMENT), (AS_OF, Outcome.PAID_NOT_SETTLED)],
)
def test_unsettled_payment_after_n_days(as_of: date, outcome: Outcome) -> None:
    rec = run([pay(1)], (), [], as_of=as_of)
    assert rec.of("p1").outcome is outcome
    assert rec.of("p1").reason.startswith("payment of 12.34 EUR on 2026-03-02 has no bank line")


def test_unknown_line() -> None:
    rec = run([], (), [line("L9", 500, "NOPE")])
    assert rec.of("L9").outcome is Outcome.SETTLED_UNKNOWN
    assert rec.of("L9").reason == "bank line of 5.00 EUR matches no Kassa payment or refund"
    assert rec.days[0].status == "exceptions"


def test_refund_by_end_to_end_id_and_refund_not_settled() -> None:
    p, rid = pay(1), "a" * 32
    refunds = [
        KassaRefund(rid, "p1", 234, "EUR", DAY),
        KassaRefund("b" * 32, "p1", 100, "EUR", DAY),
    ]
    ls = [line("L1", 1234, "K0001", fee_minor=fee(1234)), line("R1", -234, rid, fee_minor=0)]
    rec = run([p], refunds, ls)
    assert rec.of(rid).outcome is Outcome.MATCHED
    assert rec.of("b" * 32).outcome is Outcome.REFUND_NOT_SETTLED


def test_refund_netted_into_payment_line() -> None:
    p = pay(1, refunded_minor=234)
    rec = run(
        [p],
        [KassaRefund("a" * 32, "p1", 234, "EUR", DAY)],
        [line("L1", 1000, "K0001", fee_minor=fee(1234))],
    )
    assert rec.of("p1").outcome is Outcome.MATCHED
    assert rec.of("a" * 32).outcome is Outcome.MATCHED
    assert "netted" in rec.of("a" * 32).reason


def test_chargeback_on_known_payment() -> None:
    ls = [
        line("L1", 1234, "K0001", fee_minor=fee(1234)),
        line("C1", -1234, "K0001", kind="chargeback"),
    ]
    rec = run([pay(1)], (), ls)
    assert rec.of("C1").outcome is Outcome.MATCHED
    assert "chargeback of 12.34 EUR on payment p1" in rec.of("C1").reason
    assert rec.days[0].difference_minor == 0


def test_amount_match_within_window_when_unique() -> None:
    rec = run([pay(1)], (), [line("L1", 1234, None, fee_minor=fee(1234))])
    assert rec.of("p1").outcome is Outcome.MATCHED
    assert "matched on amount and date" in rec.of("p1").reason


def test_amount_match_outside_window_is_not_taken() -> None:
    ln = line("L1", 1234, None, booking_date=DAY + timedelta(days=4))
    rec = run([pay(1)], (), [ln], window_days=3)
    assert rec.of("p1").outcome is Outcome.PAID_NOT_SETTLED
    assert rec.of("L1").outcome is Outcome.SETTLED_UNKNOWN


def test_ambiguous_amount_is_not_guessed() -> None:
    payments = [pay(1), pay(2, paid_on=DAY + timedelta(days=1))]
    rec = run(payments, (), [line("L1", 1234, None)])
    assert rec.of("L1").outcome is Outcome.SETTLED_UNKNOWN
    assert "ambiguous: p1, p2 all fit 12.34 EUR ±3 days" in rec.of("L1").reason
    assert rec.of("p1").outcome is Outcome.PAID_NOT_SETTLED
    assert "ambiguous: bank lines L1" in rec.of("p2").reason


def test_interchangeable_candidates_are_paired_in_id_order() -> None:
    ls = [line("L2", 1234, None, fee_minor=fee(1234)), line("L1", 1234, None, fee_minor=fee(1234))]
    rec = run([pay(2), pay(1)], (), ls)
    assert rec.of("p1").linked == ("L1",) and rec.of("p2").linked == ("L2",)
    assert rec.of("p1").outcome is Outcome.MATCHED


def test_batch_many_payments_one_line_net_of_fees_and_refunds() -> None:
    payments = [pay(1, 1000), pay(2, 2000), pay(3, 3000)]
    refund = KassaRefund("a" * 32, "p1", 500, "EUR", DAY)
    net = 6000 - fee(1000) - fee(2000) - fee(3000) - 500
    batch = line("B1", net, None, entry_ref="E1", entry_amount_minor=net, entry_tx_count=4)
    rec = run(payments, [refund], [batch])
    assert rec.counts() == {Outcome.MATCHED: 5}
    assert rec.of("B1").linked == ("p1", "p2", "p3", "a" * 32)
    assert "settled in batch E1 of 4 transactions" in rec.of("p2").reason


def test_batch_with_fee_difference() -> None:
    payments = [pay(1, 1000), pay(2, 2000)]
    batch = line("B1", 3000, None, fee_minor=40, entry_ref="E1", entry_tx_count=2)
    rec = run(payments, (), [batch])
    assert rec.of("B1").outcome is Outcome.MATCHED_FEE_DIFFERENCE
    assert sum(rec.of(p).fee_charged_minor or 0 for p in ("p1", "p2")) == 40


def test_batch_of_detail_lines_one_entry_many_lines() -> None:
    payments = [pay(1, 1000), pay(2, 2000)]
    ls = [line(f"L{i}", a, f"K{i:04d}", fee_minor=fee(a), entry_ref="E1", entry_tx_count=2)
          for i, a in ((1, 1000), (2, 2000))]  # fmt: skip
    assert run(payments, (), ls).counts() == {Outcome.MATCHED: 4}


def test_manual_link_and_write_off_survive_a_rerun() -> None:
    payments = [pay(1), pay(2)]
    ls = [line("L1", 1200, "ZZZ", fee_minor=fee(1200)), line("L2", 99, "YYY")]
    at = datetime(2026, 3, 5, 9, 0)
    decisions = [
        ManualDecision("accept_difference", "p1", ("L1",), "ana", at, "short paid, agreed"),
        ManualDecision("write_off", "p2", (), "ana", at, "customer never paid"),
        ManualDecision("write_off", None, ("L2",), "ben", at, "bank error, reversed"),
    ]
    first = run(payments, (), ls, decisions=decisions)
    again = run(list(reversed(payments)), (), list(reversed(ls)), decisions=decisions)
    assert first == again
    assert first.of("p1").outcome is Outcome.MATCHED
    assert "difference accepted by ana on 2026-03-05: short paid, agreed" in first.of("p1").reason
    assert first.of("p2").outcome is Outcome.WRITTEN_OFF
    assert first.of("L2").outcome is Outcome.WRITTEN_OFF
    assert {d.status for d in first.days} == {"reconciled"}


def test_stale_decision_is_returned_unused() -> None:
    d = ManualDecision("link", "p404", ("L1",), "ana")
    assert run([], (), [line("L1", 1, "X")], decisions=[d]).unused_decisions == (d,)


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="appears twice"):
        run([pay(1), pay(1)])


# ---- properties ----------------------------------------------------------------------------


def clean_day(seed: int, n: int) -> tuple[list[KassaPayment], list[BankLine]]:
    """A day without faults: every payment settled once, by reference or (some) by amount."""
    rng = random.Random(seed)
    payments, lines = [], []
    for i in range(n):
        method = rng.choice(("qr", "card"))
        amount = rng.randrange(1, 10**6)
        p = pay(i, amount, method, paid_on=DAY + timedelta(days=rng.randrange(3)))
        payments.append(p)
        lines.append(line(f"L{i}", amount, p.reference, fee_minor=fee(amount, method),
                          booking_date=p.paid_on + timedelta(days=rng.randrange(3))))  # fmt: skip
    return payments, lines


FAULTS = {
    "missing": (Outcome.PAID_NOT_SETTLED, None),
    "duplicate": (Outcome.SETTLED_TWICE, Outcome.SETTLED_TWICE),
    "wrong_fee": (Outcome.MATCHED_FEE_DIFFERENCE, Outcome.MATCHED_FEE_DIFFERENCE),
    "amount": (Outcome.AMOUNT_MISMATCH, Outcome.AMOUNT_MISMATCH),
    "currency": (Outcome.CURRENCY_MISMATCH, Outcome.CURRENCY_MISMATCH),
    "unknown": (None, Outcome.SETTLED_UNKNOWN),
}


def inject(fault: str, lines: list[BankLine], i: int) -> tuple[list[BankLine], str]:
    """Apply one fault to line ``i``; returns the lines and the id of the line that shows it."""
    ln, out = lines[i], list(lines)
    change: dict[str, dict[str, object]] = {
        "wrong_fee": {"fee_minor": (ln.fee_minor or 0) + 1},
        "amount": {"amount_minor": ln.amount_minor + 1},
        "currency": {"currency": "USD"},
    }
    if fault == "missing":
        del out[i]
        return out, ""
    if fault in change:
        out[i] = BankLine(**{**{f: getattr(ln, f) for f in ln.__slots__}, **change[fault]})  # type: ignore[arg-type]
        return out, ln.line_id
    extra = "Z" if fault == "duplicate" else "U"
    ref = ln.end_to_end_id if fault == "duplicate" else "UNKNOWN"
    amount = ln.amount_minor if fault == "duplicate" else 10**9
    out.append(
        line(f"{extra}{i}", amount, ref, fee_minor=ln.fee_minor, booking_date=ln.booking_date)
    )
    return out, f"{extra}{i}"


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 30))
def test_clean_day_matches_everything(seed: int, n: int) -> None:
    payments, lines = clean_day(seed, n)
    rec = run(payments, (), lines)
    assert rec.counts() == {Outcome.MATCHED: 2 * n}
    assert all(d.difference_minor == 0 and d.status == "reconciled" for d in rec.days)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 30), st.randoms(use_true_random=False))
def test_every_item_judged_once_and_order_does_not_matter(
    seed: int, n: int, rnd: random.Random
) -> None:
    payments, lines = clean_day(seed, n)
    lines = [*lines[: n // 2], line("X1", 777, None), line("X2", lines[-1].amount_minor, None)]
    rec = run(payments, (), lines)
    ids = [r.id for r in rec.results]
    assert sorted(ids) == sorted([p.id for p in payments] + [ln.line_id for ln in lines])
    rnd.shuffle(payments)
    rnd.shuffle(lines)
    assert run(payments, (), lines) == rec


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.integers(1, 20), st.sampled_from(sorted(FAULTS)), st.data())
def test_one_fault_changes_exactly_the_expected_classes(
    seed: int, n: int, fault: str, data: st.DataObject
) -> None:
    payments, lines = clean_day(seed, n)
    i = data.draw(st.integers(0, n - 1))
    faulty, shown = inject(fault, lines, i)
    rec = run(payments, (), faulty, as_of=DAY + timedelta(days=30))
    pay_out, line_out = FAULTS[fault]
    unusual = {r.id: r.outcome for r in rec.results if r.outcome is not Outcome.MATCHED}
    want = {}
    if pay_out is not None:
        want[f"p{i}"] = pay_out
    if line_out is not None:
        want[shown] = line_out
    assert unusual == want


def test_first_payment_found_by_servicer_ref_and_remittance() -> None:
    """The lowest-id payment is found by every kind of reference (stage 2 indexes payments)."""
    pays = [pay(0, 500, terminal_trace="T0"), pay(1, 600, receipt_no="R1")]
    lines = [line("L0", 500, account_servicer_ref="T0"), line("L1", 600, remittance="x R1")]
    rec = run(pays, (), lines)
    assert [(r.id, r.outcome, r.linked) for r in rec.results] == [
        ("p0", Outcome.MATCHED, ("L0",)),
        ("p1", Outcome.MATCHED, ("L1",)),
        ("L0", Outcome.MATCHED, ("p0",)),
        ("L1", Outcome.MATCHED, ("p1",)),
    ]


def test_decided_and_matched_results_keep_id_order_and_gc_state() -> None:
    """Results of a decision and of plain matching interleave in id order; gc is restored."""
    import gc

    pays = [pay(1, 100), pay(2, 200), pay(3, 300)]
    lines = [line("L1", 100, "K0001"), line("L2", 999, "K0002"), line("L3", 300, "K0003")]
    link = ManualDecision("accept_difference", "p2", ("L2",), by="ann")
    assert gc.isenabled()
    rec = run(pays, (), lines, decisions=[link])
    assert gc.isenabled()
    assert [r.id for r in rec.results] == ["p1", "p2", "p3", "L1", "L2", "L3"]
    assert {r.outcome for r in rec.results} == {Outcome.MATCHED}
    assert rec.of("p2").note.startswith("difference accepted by ann")
    assert sum(d.expected_minor for d in rec.days) == 600
