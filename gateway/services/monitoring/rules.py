"""The anomaly rules, checked as events happen: each hook counts what its rule needs in the
caller's unit of work and raises (or updates) an alert on a verdict.

Called from the one home of each event: :mod:`gateway.services.payments.lifecycle` (a payment
or refund moved, a payment flagged for a person) and :mod:`gateway.services.staff.throttling`
(a failed sign-in). Time is the event's own (when the payment or refund was made, when it
moved), so a replayed or late event is judged in its own window, and tests pass it in.
"""

from __future__ import annotations

import time
import weakref
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import ColumnElement, bindparam, func, select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import AuditEntry, Payment, PaymentEvent, Refund, StaffUser, Store
from gateway.domain import monitoring as rules
from gateway.domain.card_data import scrub_card_numbers
from gateway.domain.monitoring import Rule, Subject, Tally, Thresholds
from gateway.domain.payment import PaymentMethod, PaymentStatus, RefundStatus
from gateway.services.monitoring import thresholds
from gateway.services.monitoring.alerts import Where, raise_alert

# A payment in one of these has been sold (approved by the terminal or paid).
SOLD = tuple(
    s.value
    for s in (
        PaymentStatus.AUTHORISED,
        PaymentStatus.PAID,
        PaymentStatus.SETTLED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    )
)
# Cancelling a payment from one of these reverses money the customer was charged: a void.
VOIDABLE = (PaymentStatus.AUTHORISED.value, PaymentStatus.PAID.value, PaymentStatus.UNKNOWN.value)
# A payment's updated_at is set a moment before its history row's created_at; counting events
# of a window starts from payments updated since a little earlier, so none is missed.
SLACK_MINUTES = 1


def on_payment_moved(uow: UnitOfWork, payment: Payment, before: str | None, target: str) -> None:
    """After a payment's status changed (:func:`lifecycle.move_payment`)."""
    t = thresholds.for_merchant(uow, payment.merchant_id)
    where = Where(payment.merchant_id, payment.store_id, payment.till_id)
    if target == PaymentStatus.PENDING and payment.method == PaymentMethod.QR:
        _qr_velocity(uow, payment, where, t)
    if target in SOLD and before not in SOLD:
        _large_ticket(uow, payment, where, t)
        _outside_hours(uow, where, payment.created_at, "payment", t)
    if target == PaymentStatus.CANCELLED and before in VOIDABLE:
        _voids(uow, payment, where, t)
    if target == PaymentStatus.FAILED and payment.method == PaymentMethod.CARD:
        _card_declines(uow, payment, where, t)


def on_refund_moved(
    uow: UnitOfWork, payment: Payment, refund: Refund, before: str, target: str
) -> None:
    """After a refund's status changed (:func:`lifecycle.move_refund`, a void)."""
    t = thresholds.for_merchant(uow, payment.merchant_id)
    where = Where(payment.merchant_id, payment.store_id, payment.till_id)
    if before == RefundStatus.REQUESTED:
        _refund_velocity(uow, refund, where, t)
    if target == RefundStatus.SUCCEEDED:
        _refund_ratio(uow, payment, refund, where, t)
        _outside_hours(uow, where, refund.created_at, "refund", t)


def on_attention_flagged(uow: UnitOfWork, payment: Payment) -> None:
    """After a payment was flagged for a person (:func:`lifecycle.flag_attention`)."""
    t = thresholds.for_merchant(uow, payment.merchant_id)
    at = payment.updated_at
    for subject, of, threshold, where in (
        (
            Subject("till", str(payment.till_id)),
            Payment.till_id == payment.till_id,
            t.attention_flags,
            Where(payment.merchant_id, payment.store_id, payment.till_id),
        ),
        (
            Subject("store", str(payment.store_id)),
            (Payment.merchant_id == payment.merchant_id) & (Payment.store_id == payment.store_id),
            t.attention_flags_per_store,
            Where(payment.merchant_id, payment.store_id),
        ),
    ):
        if threshold <= 0:
            continue
        count = uow.session.scalar(
            select(func.count())
            .select_from(PaymentEvent)
            .join(Payment, Payment.id == PaymentEvent.payment_id)
            .where(
                of,
                Payment.updated_at >= rules.since(at, t.attention_window_minutes + SLACK_MINUTES),
                PaymentEvent.kind == "attention",
                PaymentEvent.created_at >= rules.since(at, t.attention_window_minutes),
            )
        )
        verdict = rules.count_reached(
            Rule.ATTENTION_FLAGS, subject, count or 0, threshold, t.attention_window_minutes
        )
        if verdict:
            raise_alert(uow, verdict, where, at)


def on_login_failed(uow: UnitOfWork, username: str, address: str, now: datetime) -> None:
    """After a failed sign-in (:func:`throttling.failed`), before its own audit row is written:
    the audit trail's earlier ``login.failed`` rows in the window, plus this one. A name no
    staff member has belongs to no merchant, so it raises nothing."""
    user = uow.session.scalar(select(StaffUser).where(StaffUser.username == username.strip()))
    if user is None:
        return
    t = thresholds.for_merchant(uow, user.merchant_id)
    start = rules.since(now, t.login_window_minutes)
    failed = (AuditEntry.action == "login.failed") & (AuditEntry.created_at >= start)
    where = Where(user.merchant_id, user.store_id)
    by_user = uow.session.scalar(
        select(func.count())
        .select_from(AuditEntry)
        .where(failed, AuditEntry.target_type == "staff", AuditEntry.target_id == str(user.id))
    )
    by_source = uow.session.scalar(
        select(func.count()).select_from(AuditEntry).where(failed, AuditEntry.source == address)
    )
    for subject, count, threshold in (
        (Subject("staff", user.username), (by_user or 0) + 1, t.login_failures_per_user),
        (Subject("source", address[:100]), (by_source or 0) + 1, t.login_failures_per_source),
    ):
        verdict = rules.count_reached(
            Rule.LOGIN_FAILURES, subject, count, threshold, t.login_window_minutes
        )
        if verdict:
            raise_alert(uow, verdict, where, now)


# -- payments ---------------------------------------------------------------------------------


def _qr_velocity(uow: UnitOfWork, payment: Payment, where: Where, t: Thresholds) -> None:
    if t.qr_payments_per_minute <= 0:
        return
    at = payment.created_at
    count = uow.session.scalar(
        _qr_count(), {"till_id": payment.till_id, "since": at - timedelta(minutes=1), "at": at}
    )
    verdict = rules.count_reached(
        Rule.QR_VELOCITY,
        Subject("till", str(payment.till_id)),
        count or 0,
        t.qr_payments_per_minute,
        1,
    )
    if verdict:
        raise_alert(uow, verdict, where, at)


@lru_cache(maxsize=1)
def _qr_count() -> Any:
    """Built once (a sale asks it every time): a till's QR payments in a minute's window."""
    return (
        select(func.count())
        .select_from(Payment)
        .where(
            Payment.till_id == bindparam("till_id"),
            Payment.method == PaymentMethod.QR.value,
            Payment.created_at > bindparam("since", type_=Payment.created_at.type),
            Payment.created_at <= bindparam("at", type_=Payment.created_at.type),
        )
    )


def _large_ticket(uow: UnitOfWork, payment: Payment, where: Where, t: Thresholds) -> None:
    if t.large_ticket_factor <= 0:
        return
    at = payment.created_at
    found = _usual_ticket(uow, payment, t)
    if found is None:
        return
    usual, count = found
    if count < max(1, t.large_ticket_min_history):
        return
    verdict = rules.large_ticket_over(
        Subject("till", str(payment.till_id)),
        payment.amount_minor,
        usual,
        count,
        payment.currency,
        t,
    )
    if verdict:
        verdict.facts["payment_id"] = payment.id
        raise_alert(uow, verdict, where, at)


# A store's usual ticket that stands on at least this many amounts is reused by this process
# for a few seconds, for payments made within minutes of the one it was ranked for: one payment
# more or less barely moves the median or p95 of so many over weeks, and on a busy day the rule
# would otherwise rank the store's whole history again for every payment.
USUAL_REUSE_SECONDS = 10.0
USUAL_REUSE_WINDOW = timedelta(minutes=5)
USUAL_REUSE_MIN_AMOUNTS = 200
_UsualKey = tuple[int, int, str, str, int]
_usual_tickets: weakref.WeakKeyDictionary[object, dict[_UsualKey, tuple[float, datetime, int, int]]]
_usual_tickets = weakref.WeakKeyDictionary()


def _usual_ticket(uow: UnitOfWork, payment: Payment, t: Thresholds) -> tuple[int, int] | None:
    """(the usual ticket, how many amounts it stands on) for ``payment``'s store and currency,
    or None without history; the amounts are counted and ranked in one statement."""
    key = (
        payment.merchant_id,
        payment.store_id,
        payment.currency,
        t.large_ticket_statistic,
        t.large_ticket_history_days,
    )
    known = _usual_tickets.get(uow.session.get_bind(), {})
    reused = known.get(key)
    at = payment.created_at
    if (
        reused is not None
        and time.monotonic() - reused[0] < USUAL_REUSE_SECONDS
        and abs(at - reused[1]) < USUAL_REUSE_WINDOW
    ):
        return reused[2], reused[3]
    history = (
        Payment.merchant_id == payment.merchant_id,  # its index, then the store
        Payment.store_id == payment.store_id,
        Payment.currency == payment.currency,
        Payment.status.in_(SOLD),
        Payment.id != payment.id,
        Payment.created_at >= at - timedelta(days=t.large_ticket_history_days),
        Payment.created_at <= at,
    )
    ranked = (
        select(
            Payment.amount_minor.label("amount"),
            (func.row_number().over(order_by=Payment.amount_minor) - 1).label("position"),
            func.count().over().label("total"),
        )
        .where(*history)
        .subquery()
    )
    total = ranked.c.total  # rules.usual_rank, in SQL
    rank = (
        (total - 1) // 2 if t.large_ticket_statistic == "median" else (95 * total + 99) // 100 - 1
    )
    found = uow.session.execute(
        select(ranked.c.amount, ranked.c.total).where(ranked.c.position == rank)
    ).first()
    if found is None:
        return None
    usual, count = int(found[0]), int(found[1])
    if count >= USUAL_REUSE_MIN_AMOUNTS:
        bind = uow.session.get_bind()
        _usual_tickets.setdefault(bind, {})[key] = (time.monotonic(), at, usual, count)
    return usual, count


def _outside_hours(
    uow: UnitOfWork, where: Where, at: datetime, activity: str, t: Thresholds
) -> None:
    store = uow.session.get(Store, where.store_id)
    if store is None or not store.opening_hours:
        return
    local = rules.local_time(at, store.timezone)
    verdict = rules.outside_hours(
        Subject("store", str(store.id)), store.opening_hours, local, store.timezone, activity, t
    )
    if verdict:
        raise_alert(uow, verdict, where, at)


def _voids(uow: UnitOfWork, payment: Payment, where: Where, t: Thresholds) -> None:
    if t.voids_per_till <= 0:
        return
    at = payment.updated_at
    count = uow.session.scalar(
        select(func.count())
        .select_from(PaymentEvent)
        .join(Payment, Payment.id == PaymentEvent.payment_id)
        .where(
            Payment.till_id == payment.till_id,
            Payment.status == PaymentStatus.CANCELLED.value,
            Payment.updated_at >= rules.since(at, t.voids_window_minutes + SLACK_MINUTES),
            PaymentEvent.to_status == PaymentStatus.CANCELLED.value,
            PaymentEvent.from_status.in_(VOIDABLE),
            PaymentEvent.created_at >= rules.since(at, t.voids_window_minutes),
        )
    )
    verdict = rules.count_reached(
        Rule.VOIDS,
        Subject("till", str(payment.till_id)),
        count or 0,
        t.voids_per_till,
        t.voids_window_minutes,
    )
    if verdict:
        raise_alert(uow, verdict, where, at)


def card_token(card: dict[str, object] | None) -> str | None:
    """A card's identity as Kassa keeps it: the terminal's masked number (first six, last
    four), with the card's name when the terminal gave one; never a full number."""
    masked = (card or {}).get("masked_pan")
    if not masked:
        return None
    name = (card or {}).get("card_name")
    token = f"{masked} {name}" if name else str(masked)
    return scrub_card_numbers(token)[:100]


def _card_declines(uow: UnitOfWork, payment: Payment, where: Where, t: Thresholds) -> None:
    token = card_token(payment.card)
    if token is None or t.card_declines <= 0:
        return
    at = payment.updated_at
    cards = uow.session.scalars(
        select(Payment.card).where(
            Payment.merchant_id == payment.merchant_id,
            Payment.method == PaymentMethod.CARD.value,
            Payment.status == PaymentStatus.FAILED.value,
            Payment.updated_at >= rules.since(at, t.card_declines_window_minutes),
        )
    )
    count = sum(1 for card in cards if card_token(card) == token)
    verdict = rules.count_reached(
        Rule.CARD_DECLINES,
        Subject("card", token),
        count,
        t.card_declines,
        t.card_declines_window_minutes,
    )
    if verdict:
        raise_alert(uow, verdict, where, at)


# -- refunds ----------------------------------------------------------------------------------


def _refund_velocity(uow: UnitOfWork, refund: Refund, where: Where, t: Thresholds) -> None:
    if t.refunds_per_minute <= 0:
        return
    at = refund.created_at
    count = uow.session.scalar(
        select(func.count())
        .select_from(Refund)
        .join(Payment, Payment.id == Refund.payment_id)
        .where(
            Payment.till_id == where.till_id,
            Refund.created_at > at - timedelta(minutes=1),
            Refund.created_at <= at,
        )
    )
    verdict = rules.count_reached(
        Rule.REFUND_VELOCITY,
        Subject("till", str(where.till_id)),
        count or 0,
        t.refunds_per_minute,
        1,
    )
    if verdict:
        raise_alert(uow, verdict, where, at)


def _refund_ratio(
    uow: UnitOfWork, payment: Payment, refund: Refund, where: Where, t: Thresholds
) -> None:
    """Per till, and per cashier when a person (not a till's key) made the refund."""
    if t.refund_ratio_percent <= 0:
        return
    at = refund.created_at
    start = rules.since(at, t.refund_ratio_window_minutes)
    subjects: list[tuple[Subject, ColumnElement[bool], str | None]] = [
        (Subject("till", str(payment.till_id)), Payment.till_id == payment.till_id, None)
    ]
    if refund.created_by.startswith("staff:"):
        subjects.append(
            (
                Subject("cashier", refund.created_by.removeprefix("staff:")),
                Payment.merchant_id == payment.merchant_id,
                refund.created_by,
            )
        )
    for subject, of, person in subjects:
        refunded = select(func.count(), func.coalesce(func.sum(Refund.amount_minor), 0)).join(
            Payment, Payment.id == Refund.payment_id
        )
        refunded = refunded.where(
            of,
            Refund.status == RefundStatus.SUCCEEDED.value,
            Refund.currency == refund.currency,
            Refund.created_at >= start,
            Refund.created_at <= at,
        )
        sold = select(func.count(), func.coalesce(func.sum(Payment.amount_minor), 0)).where(
            of,
            Payment.currency == refund.currency,
            Payment.status.in_(SOLD),
            Payment.created_at >= start,
            Payment.created_at <= at,
        )
        if person is not None:
            refunded = refunded.where(Refund.created_by == person)
            sold = sold.where(Payment.created_by == person)
        r_count, r_sum = uow.session.execute(refunded).one()
        s_count, s_sum = uow.session.execute(sold).one()
        verdict = rules.refund_ratio(
            subject, Tally(r_count, int(r_sum)), Tally(s_count, int(s_sum)), refund.currency, t
        )
        if verdict:
            spot = where if person is None else Where(where.merchant_id, where.store_id, None)
            raise_alert(uow, verdict, spot, at)
