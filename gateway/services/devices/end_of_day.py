"""End of day at a till's terminal: close its batch, compare it with Kassa's, capture it.

Card payments approved at a terminal are ``authorised`` until the terminal's batch is closed
(ZVT End-of-Day, 06 50); then the acquirer pays them, so they become ``paid``. End of day is
queued per till on the device queue, like every other card job: on a schedule (each store's
local time, one job a day that queues the next), from the portal's Devices page, or with
``kassa devices end-of-day``. The device host runs it and hands the terminal's totals to
:func:`close_batch`, which compares them with Kassa's side of the batch:

- Kassa's batch is the till's ``authorised`` card payments (count and sum); a reversal (06 30)
  takes its payment out of the batch on both sides (the payment is ``cancelled``);
- card refunds (06 31) the terminal carried out since the previous close: the ZVT spec names
  BMP 04 the batch's total and BMP 60 the number and turnover per card type (PA00P015 §2.15.4,
  BMP 60), and does not say whether refunds are netted; the one published field capture
  (EVerest/zvt, tests/drivers/test_zvt_totals.py) holds payments only. So Kassa takes either
  reading as agreeing: the payments less the refunds (net) or the payments alone (gross), and
  their counts with or without the refunds;
- a difference in total or count is recorded on the batch (the Devices page shows both sides)
  and flagged on each payment of the batch for a manager. The payments are captured anyway:
  the terminal has closed its batch and will not take them back;
- card payments, refunds and reversals whose outcome is unknown (attempted since the previous
  close) are settled together by the totals when exactly one set of them, booked, makes the
  totals agree under some reading of the refunds (:mod:`batch_answers`): booked payments
  become ``paid`` (the others ``failed``), booked refunds ``succeeded`` (a booked reversal
  cancels its payment, out of the batch), the others ``failed``; each says in its history
  ``by: end_of_day`` with the batch. When no set or more than one fits, all stay unknown and
  each payment is flagged for a manager with why. One the totals show not booked stays
  unknown too, flagged, unless the batch's receipt range (BMP 60) proves the batch held its
  attempt: a close retried after its commit failed sees an empty second batch.

Settling is part of the close's one transaction: a retried job writes it all or nothing, and
a later close never takes an outcome attempted before its previous close for its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import CardBatch, Job, Payment, Refund, Store, Till, utcnow
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.money import Money
from gateway.domain.payment import PaymentMethod, PaymentStatus, RefundStatus
from gateway.domain.sentences import N_, say
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.devices import batch_answers
from gateway.services.devices.cards import END_OF_DAY_JOB, device_queue
from gateway.services.payments.lifecycle import flag_attention, move_payment
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope, narrow

# A payment's attention reason (one reason: the difference's own "; " becomes ", ").
BATCH_DIFFERS = N_(
    "end of day at till %(till)s: the terminal's batch differs from Kassa's (%(difference)s)"
)


@dataclass(frozen=True, slots=True)
class TerminalTotals:
    """What the terminal said its closed batch held (from the driver's End-of-Day result)."""

    total_minor: int | None
    count: int | None = None
    # A card type's count is one byte on the wire: at 255 the terminal may have booked more.
    count_saturated: bool = False
    by_card_type: tuple[dict[str, Any], ...] = ()
    receipt_text: str = ""
    # The batch's first and last receipt numbers (BMP 60); None: not sent.
    receipts: tuple[int, int] | None = None


def parse_local_time(text: str) -> time:
    """``"22:30"`` as a time of day; the configuration's end-of-day time."""
    try:
        return time.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"an end-of-day time is HH:MM, like 22:30, not {text!r}") from None


def next_end_of_day(now: datetime, at: time, timezone: str) -> datetime:
    """The next moment after ``now`` that is ``at`` on the store's clock, in UTC."""
    zone = ZoneInfo(timezone)
    local = now.astimezone(zone)
    candidate = datetime.combine(local.date(), at, tzinfo=zone)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tzinfo=zone)
    return candidate.astimezone(ZoneInfo("UTC"))


def schedule_end_of_day(
    uow: UnitOfWork,
    till_id: int,
    at: time,
    timezone: str,
    *,
    after: date | None = None,
) -> Job | None:
    """Queue the till's next scheduled end of day, once per local day (None if queued).

    ``after``: the day whose end of day just ran, so the next is a later day even if that
    one ran early.
    """
    now = utcnow()
    if after is not None:
        done = datetime.combine(after, at, tzinfo=ZoneInfo(timezone)).astimezone(ZoneInfo("UTC"))
        now = max(now, done)
    run_at = next_end_of_day(now, at, timezone)
    day: date = run_at.astimezone(ZoneInfo(timezone)).date()
    key = f"card-eod:{till_id}:{day.isoformat()}"
    if uow.session.scalar(select(Job.id).where(Job.dedupe_key == key)) is not None:
        return None
    return jobs.enqueue(
        uow,
        END_OF_DAY_JOB,
        {"scheduled": True, "day": day.isoformat()},
        queue=device_queue(till_id),
        run_at=run_at,
        dedupe_key=key,
        max_attempts=5,
    )


def request_end_of_day(uow: UnitOfWork, till_id: int, scope: Scope | int, actor: str) -> Job:
    """Queue an end of day now (a manager's button, the CLI); refused if one is waiting."""
    till = uow.session.scalar(
        select(Till)
        .join(Store)
        .where(Till.id == till_id, narrow(scope, Store.merchant_id, Till.store_id))
        .with_for_update()
    )
    if till is None:
        raise NotFound(f"no till {till_id} for this merchant")
    if waiting_end_of_day(uow, till_id):
        raise Conflict(
            f"an end of day for till {till.label} is already waiting for its device host"
        )
    audit.record(
        uow,
        "end_of_day.requested",
        actor=actor,
        merchant_id=till.store.merchant_id,
        store_id=till.store_id,
        target=("till", till.id),
    )
    return jobs.enqueue(
        uow,
        END_OF_DAY_JOB,
        {"requested_by": actor},
        queue=device_queue(till_id),
        max_attempts=3,
    )


def waiting_end_of_day(uow: UnitOfWork, till_id: int) -> bool:
    """Whether an end of day of this till is due or running (a scheduled one later is not)."""
    return (
        uow.session.scalar(
            select(Job.id).where(
                Job.queue == device_queue(till_id),
                Job.kind == END_OF_DAY_JOB,
                ((Job.status == "pending") & (Job.run_at <= utcnow())) | (Job.status == "running"),
            )
        )
        is not None
    )


def till_by_name(uow: UnitOfWork, store_and_till: str) -> Till:
    """The till named ``STORE/TILL`` (store name, till label), as the CLI takes it."""
    store, sep, label = store_and_till.rpartition("/")
    if not sep or not store or not label:
        raise InvalidInput(
            f"name the till as STORE/TILL, like 'Berlin Mitte/T01', not {store_and_till!r}"
        )
    till = uow.session.scalar(
        select(Till).join(Store).where(Store.name == store, Till.label == label)
    )
    if till is None:
        raise NotFound(f"no till {label!r} in store {store!r}")
    return till


def close_batch(
    uow: UnitOfWork, till_id: int, totals: TerminalTotals, currency: str, actor: str
) -> CardBatch:
    """Compare the terminal's closed batch with Kassa's; its payments become ``paid``, and
    unknown outcomes the totals tell are settled (:mod:`batch_answers`)."""
    till = uow.session.get_one(Till, till_id)
    payments = list(
        uow.session.scalars(
            select(Payment)
            .where(
                Payment.till_id == till_id,
                Payment.method == PaymentMethod.CARD.value,
                Payment.status == PaymentStatus.AUTHORISED.value,
            )
            .order_by(Payment.created_at, Payment.id)
            .with_for_update()
        )
    )
    last = uow.session.scalar(
        select(func.max(CardBatch.closed_at)).where(CardBatch.till_id == till_id)
    )
    refunded, refund_count = _refunded_since(uow, till_id, last)
    asked = batch_answers.questions(uow, till_id, payments, last)
    kassa = batch_answers.KassaSide(
        sum(p.amount_minor for p in payments), len(payments), refunded, refund_count
    )
    count = None if totals.count_saturated else totals.count
    answer = batch_answers.explain(asked, totals.total_minor, count, kassa)
    booked = answer.booked or frozenset()
    if answer.booked is not None:  # "not booked" only of what the batch provably holds
        held = batch_answers.covered(uow, till_id, asked, last, totals.receipts)
        told = [q for q in asked if q.id in booked or q.id in held]
        untold = [q for q in asked if q not in told]
    else:
        told, untold = [], asked
    reversed_ids = {q.payment_id for q in asked if q.id in booked and q.kind == "reversal"}
    charged = [
        uow.session.get_one(Payment, q.id) for q in asked if q.id in booked and q.kind == "payment"
    ]
    for question in asked:
        if question.id in booked and question.kind == "refund":
            refunded += question.amount_minor
            refund_count += 1
    captured = [p for p in payments if p.id not in reversed_ids]
    in_batch = [*captured, *charged]
    kassa_total = sum(p.amount_minor for p in in_batch) - refunded
    batch = CardBatch(
        till_id=till_id,
        currency=currency,
        terminal_total_minor=totals.total_minor,
        terminal_count=totals.count,
        terminal_by_card_type=list(totals.by_card_type),
        kassa_total_minor=kassa_total,
        kassa_count=len(in_batch),
        payment_ids=[p.id for p in in_batch],
        difference=_difference(
            totals, kassa_total, len(in_batch), currency, refunds=(refunded, refund_count)
        ),
        receipt_text=scrub_card_numbers(totals.receipt_text) or None,
        actor=actor,
        closed_at=utcnow(),
    )
    uow.session.add(batch)
    uow.session.flush()
    audit.record(
        uow,
        "end_of_day.closed",
        actor=actor,
        merchant_id=till.store.merchant_id,
        store_id=till.store_id,
        target=("card_batch", batch.id),
        after={
            "till": till.label,
            "terminal_total_minor": batch.terminal_total_minor,
            "kassa_total_minor": batch.kassa_total_minor,
            "currency": currency,
            "difference": batch.difference,
            "settled": sorted(q.id for q in told),
        },
    )
    batch_answers.settle(uow, told, booked, actor, batch.id)
    why = answer.why if answer.booked is None else batch_answers.uncovered_why(totals.receipts)
    batch_answers.leave_unknown(uow, untold, why, actor, batch.id)
    detail = {"batch_id": batch.id, "end_of_day": True}
    for payment in captured:
        move_payment(uow, payment, PaymentStatus.PAID, "card_batch_closed", actor, detail)
        if batch.difference:
            flag_attention(
                uow,
                payment,
                say(
                    BATCH_DIFFERS,
                    till=till.label,
                    difference=batch.difference.replace("; ", ", "),
                ),
                actor,
                {**detail, **batch_sides(batch)},
            )
    return batch


def batch_sides(batch: CardBatch) -> dict[str, Any]:
    """Both sides of a closed batch, as shown to a manager."""
    return {
        "terminal_total": _amount(batch.terminal_total_minor, batch.currency),
        "terminal_count": batch.terminal_count,
        "kassa_total": _amount(batch.kassa_total_minor, batch.currency),
        "kassa_count": batch.kassa_count,
    }


def _difference(
    totals: TerminalTotals,
    kassa_total: int,
    kassa_count: int,
    currency: str,
    *,
    refunds: tuple[int, int] = (0, 0),
) -> str | None:
    """What differs between the two sides; refunds (amount, count) may be netted or not."""
    refunded, refund_count = refunds
    found = []
    agreeing_totals = {max(kassa_total, 0), kassa_total + refunded}
    if totals.total_minor is not None and totals.total_minor not in agreeing_totals:
        found.append(
            f"total: terminal {_amount(totals.total_minor, currency)}, "
            f"Kassa {_amount(kassa_total, currency)}"
        )
    count = totals.count
    if count is not None and count not in (kassa_count, kassa_count + refund_count):
        if not (totals.count_saturated and count <= kassa_count + refund_count):
            found.append(f"payments: terminal {count}, Kassa {kassa_count}")
    return "; ".join(found) or None


def _refunded_since(uow: UnitOfWork, till_id: int, last: datetime | None) -> tuple[int, int]:
    """Card refunds the terminal carried out (06 31) since this till's previous close (``last``):
    their sum and how many. A refund belongs to the batch its attempt was sent in, though its
    answer may have come later (from the last receipt, or a manager)."""
    query = (
        select(func.coalesce(func.sum(Refund.amount_minor), 0), func.count(Refund.id))
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.till_id == till_id,
            Payment.method == PaymentMethod.CARD.value,
            Payment.status != PaymentStatus.CANCELLED.value,  # a reversal leaves the batch
            Refund.status == RefundStatus.SUCCEEDED.value,
            Refund.bank_refund_id.like("receipt-%"),  # see cards.refund_receipt_id
        )
    )
    if last is not None:
        query = query.where(func.coalesce(Refund.terminal_attempt_at, Refund.updated_at) > last)
    total, count = uow.session.execute(query).one()
    return int(total or 0), int(count or 0)


def _amount(minor: int | None, currency: str) -> str:
    return "—" if minor is None else str(Money(minor, currency))
