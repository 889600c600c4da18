"""The one home of a payment's and a refund's status.

Every status change of a payment goes through :func:`move_payment`, and of a refund through
:func:`move_refund`, whoever asks (the API, the cashier screen, bank callbacks, card jobs, end of
day, expiry, reconciliation). Each checks the domain's transition table, writes the payment's
history row and then fires the after-change hooks from :func:`_after_move`, so a sale's
promotions, points, referrals and draws follow their payment in one place.

Entries in a payment's history that do not change its status (a refund requested, a reversal
refused, a person asked to look, that question answered) are written by :func:`record_event`,
:func:`flag_attention` and :func:`clear_attention`.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from functools import lru_cache
from typing import Any, NoReturn, cast

from sqlalchemy import (
    Table,
    bindparam,
    insert,
    inspect,
    literal_column,
    select,
    union_all,
    update,
)
from sqlalchemy.orm import make_transient_to_detached
from sqlalchemy.orm.exc import StaleDataError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.logging_setup import about_payment
from gateway.adapters.models import Payment, PaymentEvent, Refund, utcnow
from gateway.domain.card_data import scrub_card_numbers, scrub_json
from gateway.domain.money import Money
from gateway.domain.payment import (
    PaymentMethod,
    PaymentStatus,
    RefundStatus,
    check_refund_transition,
    check_transition,
)
from gateway.domain.sentences import N_
from gateway.errors import Conflict, InvalidInput
from gateway.services.monitoring import rules as monitoring
from gateway.services.promotions import redemptions
from gateway.services.staff import audit
from gateway.services.staff.auth import TillContext
from gateway.services.webhooks import outbox, payloads

# States in which the customer has paid (whatever happened afterwards).
NO_REASON_GIVEN = N_("the bank did not say why")  # a failed refund's failure
PAID_STATES = frozenset(
    {
        PaymentStatus.PAID,
        PaymentStatus.SETTLED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
    }
)


def positive_amount(money: Money) -> Money:
    """``money`` if it is more than zero; a payment or refund of nothing is refused."""
    if money.minor <= 0:
        raise InvalidInput(f"amount must be greater than zero, got {money.to_decimal_string()}")
    return money


def new_payment(
    uow: UnitOfWork,
    till: TillContext,
    money: Money,
    method: PaymentMethod,
    *,
    reference: str,
    bill_number: str | None,
    actor: str | None,
    created_at: datetime | None = None,
    **fields: Any,
) -> Payment:
    """A new payment in state ``created`` with the first entry of its history (not committed)."""
    now = created_at or utcnow()
    payment = Payment(
        id=str(uuid.uuid4()),
        merchant_id=till.merchant_id,
        store_id=till.store_id,
        till_id=till.till_id,
        method=method.value,
        status=PaymentStatus.CREATED.value,
        amount_minor=positive_amount(money).minor,
        currency=money.currency,
        reference=reference,
        bill_number=bill_number,
        created_by=actor or till.actor,
        created_at=now,
        updated_at=now,
        **fields,
    )
    uow.session.add(payment)
    _history(
        uow,
        payment,
        "created",
        None,
        PaymentStatus.CREATED.value,
        payment.created_by,
        {"amount": money.to_decimal_string(), "currency": money.currency},
    )
    audit.record(
        uow,
        "payment.created",
        actor=payment.created_by,
        merchant_id=till.merchant_id,
        store_id=till.store_id,
        target=("payment", payment.id),
        after={
            "method": method.value,
            "amount": money.to_decimal_string(),
            "currency": money.currency,
            "reference": reference,
            "till": till.label,
        },
    )
    about_payment(payment.id)
    return payment


def move_payment(
    uow: UnitOfWork,
    payment: Payment,
    target: PaymentStatus,
    kind: str,
    actor: str,
    detail: dict[str, Any] | None = None,
    *,
    paid_at: datetime | None = None,
    by_manager: bool = False,
) -> None:
    """Move ``payment`` to ``target`` if the state machine allows it, and say so in its history.

    The caller holds the payment's row lock (or relies on its version column: a concurrent
    change is refused as a :class:`Conflict`). ``paid_at`` is when the money was paid, for a
    move into ``paid``. ``by_manager`` allows the domain's manager-only moves (the caller has
    checked that a manager decided, and puts their note in ``detail``).
    """
    before = payment.status
    about_payment(payment.id)  # later log lines of this request or job carry its id
    check_transition(before, target, by_manager=by_manager)
    payment.status = target.value
    payment.updated_at = utcnow()
    if target == PaymentStatus.PAID:
        payment.paid_at = paid_at or payment.paid_at or payment.updated_at
    entry = _entry(payment, kind, before, target.value, actor, detail or {})
    # Written without the ORM's flush when it is new here or changed only in its columns.
    if not (_insert_new(uow, payment, entry) or _write_move(uow, payment, entry)):
        uow.session.add(PaymentEvent(**entry))
        try:
            uow.session.flush()
        except StaleDataError:
            _conflict(uow)
    _after_move(uow, payment, before, target)


def after_written_move(
    uow: UnitOfWork, payment: Payment, before: str, target: PaymentStatus
) -> None:
    """What :func:`move_payment` does after writing, for a move the caller wrote itself in
    one statement with its history row (a bank callback's ``payment.succeeded`` on
    PostgreSQL): ``payment`` as now stored, ``before`` its status until then. The caller's
    statement must write exactly what :func:`move_payment` would (its tests compare them)."""
    about_payment(payment.id)
    check_transition(before, target)
    _after_move(uow, payment, before, target)


def history_entry(
    payment_id: str, kind: str, before: str | None, after: str, actor: str, detail: dict[str, Any]
) -> dict[str, Any]:
    """One row of a payment's history, as column values (its detail scrubbed of card numbers)."""
    return {
        "payment_id": payment_id,
        "kind": kind,
        "from_status": before,
        "to_status": after,
        "actor": actor,
        "detail": scrub_json(detail),  # a bank's or terminal's text may hold a card number
        "created_at": utcnow(),
    }


def _write_move(uow: UnitOfWork, payment: Payment, entry: dict[str, Any]) -> bool:
    """Write the payment's changed columns as one UPDATE guarded by its version, and its
    history ``entry``; False (nothing written) if the ORM's flush must do it.

    The statements the flush would send, without the flush's bookkeeping (a third of a bank
    callback's time was spent there); on PostgreSQL both are one statement. A version that
    moved meanwhile is a Conflict, as with the flush's StaleDataError.
    """
    state = inspect(payment)
    if not state.persistent or state.expired_attributes or "version" in state.committed_state:
        return False
    if uow.session.in_nested_transaction():
        return False  # a savepoint rolled back expires only what its flushes wrote
    changed = state.committed_state.keys()
    if not changed <= _PAYMENT_COLUMNS:
        return False
    keys = tuple(sorted(changed))
    values = {f"new_{key}": state.dict[key] for key in keys}
    version = state.dict["version"]
    state.dict["version"] = version + 1
    # What the flush does once it has written an object: its state is the database's now (a
    # conflict below rolls the whole session back, this included).
    state._commit_all(state.dict, uow.session.identity_map)
    session = uow.session
    try:
        session.flush()  # what the session still holds goes first (an earlier history entry)
    except StaleDataError:
        _conflict(uow)
    connection = session.connection()
    # Only names no payments column has: an UPDATE would also SET a column an extra one names.
    params = {**values, "payment_id": payment.id, "payment_version": version}
    if connection.dialect.name == "postgresql":
        entry_params = {f"entry_{name}": value for name, value in entry.items()}
        if connection.scalar(_move_with_history(keys), params | entry_params) is None:
            _conflict(uow)
        return True
    if connection.execute(_move(keys), params).rowcount != 1:
        _conflict(uow)
    connection.execute(_history_insert(), entry)
    return True


def _insert_new(uow: UnitOfWork, payment: Payment, entry: dict[str, Any]) -> bool:
    """Write a payment made in this unit of work (not flushed yet) with its history so far and
    ``entry`` (two INSERTs; one statement on PostgreSQL), and hold it in the session as if just
    read; False (nothing written) if the ORM's flush must do it.

    The rows the flush would write, without its bookkeeping (unit-of-work sort, attribute
    history, an id read back for every history row nobody reads): a fifth of a sale's CPU.
    Only when nothing else waits for a flush, so no row goes out of order.
    """
    session = uow.session
    state = inspect(payment)
    if not state.pending or session.in_nested_transaction() or session.deleted:
        return False
    earlier = []
    for new in session.new:
        if new is payment:
            continue
        if not isinstance(new, PaymentEvent) or new.payment_id != payment.id:
            return False
        earlier.append(new)
    if any(True for _ in session.dirty):
        return False
    values = state.dict
    row = {key: values.get(key) for key in _PAYMENT_COLUMNS}
    for key, default in _PAYMENT_DEFAULTS.items():
        if row[key] is None:
            row[key] = default
    earlier.sort(key=lambda event: inspect(event).insert_order or 0)  # as the flush orders them
    entries = [{n: getattr(event, n) for n in HISTORY_COLUMNS} for event in earlier] + [entry]
    for event in earlier:
        session.expunge(event)
    connection = session.connection()
    if connection.dialect.name == "postgresql":  # one statement: the history needs the row
        params = {f"entry{i}_{n}": v for i, e in enumerate(entries) for n, v in e.items()}
        connection.execute(_insert_with_history(len(entries)), row | params)
    else:
        connection.execute(_payment_insert(), row)
        connection.execute(_history_insert(), entries)
    # Held as a row just read: every column set (none expired), no changes pending.
    session.expunge(payment)
    for key, value in row.items():
        if key not in values:  # left unset: it would be read back from the database
            setattr(payment, key, value)
    make_transient_to_detached(payment)
    session.add(payment)
    return True


_PAYMENT_COLUMNS = frozenset(column.key for column in inspect(Payment).column_attrs)
# What a new payment's row holds where it was given no value (as the ORM's flush writes it):
# nothing refunded yet, the first version.
_PAYMENT_DEFAULTS = {"refunded_minor": 0, "version": 1}
HISTORY_COLUMNS = (
    "payment_id",
    "kind",
    "from_status",
    "to_status",
    "actor",
    "detail",
    "created_at",
)


@lru_cache(maxsize=32)
def _move(keys: tuple[str, ...]) -> Any:
    """``UPDATE payments SET <keys>, version = version + 1 WHERE id AND version``, built once
    per set of changed columns (then compiled once and reused)."""
    table = cast(Table, Payment.__table__)
    return (
        update(table)
        .where(
            table.c.id == bindparam("payment_id"),
            table.c.version == bindparam("payment_version"),
        )
        .values(
            {
                **{key: bindparam(f"new_{key}", type_=table.c[key].type) for key in keys},
                "version": table.c.version + literal_column("1"),  # a bound 1 is lost in a CTE
            }
        )
    )


@lru_cache(maxsize=32)
def _move_with_history(keys: tuple[str, ...]) -> Any:
    """PostgreSQL: ``WITH moved AS (<the move> RETURNING id) INSERT INTO payment_events …
    SELECT … FROM moved RETURNING id``: the history row exists only if the move happened
    (else no id is returned)."""
    moved = _move(keys).returning(Payment.__table__.c.id).cte("moved")
    table = cast(Table, PaymentEvent.__table__)
    return (
        insert(table)
        .from_select(
            list(HISTORY_COLUMNS),
            select(
                moved.c.id,
                *(bindparam(f"entry_{n}", type_=table.c[n].type) for n in HISTORY_COLUMNS[1:]),
            ),
        )
        .returning(table.c.id)
    )


@lru_cache(maxsize=1)
def _payment_insert() -> Any:
    """Built once: a new payment's row, every column bound."""
    table = cast(Table, Payment.__table__)
    return insert(table).values({n: bindparam(n, type_=table.c[n].type) for n in _PAYMENT_COLUMNS})


@lru_cache(maxsize=4)
def _insert_with_history(entries: int) -> Any:
    """PostgreSQL: ``WITH new AS (<the payment's INSERT> RETURNING id) INSERT INTO
    payment_events … SELECT … FROM new UNION ALL …``, one SELECT per history entry, in order."""
    events = cast(Table, PaymentEvent.__table__)
    new = _payment_insert().returning(Payment.__table__.c.id).cte("new_payment")
    rows = [
        select(
            new.c.id,
            *(bindparam(f"entry{i}_{n}", type_=events.c[n].type) for n in HISTORY_COLUMNS[1:]),
        )
        for i in range(entries)
    ]
    return insert(events).from_select(list(HISTORY_COLUMNS), union_all(*rows))


@lru_cache(maxsize=1)
def _history_insert() -> Any:
    """Built once: a statement with bound parameters compiles once and is then reused."""
    table = cast(Table, PaymentEvent.__table__)
    return insert(table).values({n: bindparam(n, type_=table.c[n].type) for n in HISTORY_COLUMNS})


def _conflict(uow: UnitOfWork) -> NoReturn:
    uow.session.rollback()
    raise Conflict("the payment was changed by someone else at the same moment; read it again")


def record_event(
    uow: UnitOfWork,
    payment: Payment,
    kind: str,
    actor: str,
    detail: dict[str, Any] | None = None,
) -> None:
    """An entry in the payment's history that leaves its status as it is."""
    _history(uow, payment, kind, payment.status, payment.status, actor, detail or {})


def flag_attention(
    uow: UnitOfWork, payment: Payment, reason: str, actor: str, detail: dict[str, Any]
) -> None:
    """Ask a person to look at the payment, once per reason, and say why in its history."""
    if reason in (payment.attention or ""):
        return
    payment.attention = f"{payment.attention}; {reason}" if payment.attention else reason
    payment.updated_at = utcnow()
    record_event(uow, payment, "attention", actor, {"reason": reason, **detail})
    monitoring.on_attention_flagged(uow, payment)


def clear_attention(uow: UnitOfWork, payment: Payment, reason: str, actor: str) -> None:
    """The question behind ``reason`` is answered: take it off the payment, and say so."""
    # Reasons are joined with "; ", which a reason may hold itself: match it whole, in place.
    current = f"; {payment.attention or ''}; "
    if f"; {reason}; " not in current:
        return
    left = current.replace(f"; {reason}; ", "; ", 1)[2:-2]
    payment.attention = left or None
    payment.updated_at = utcnow()
    record_event(uow, payment, "attention_cleared", actor, {"reason": reason})


def move_refund(
    uow: UnitOfWork,
    payment: Payment,
    refund: Refund,
    target: RefundStatus,
    actor: str,
    *,
    failure: str | None = None,
    bank_refund_id: str | None = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Move ``refund`` to ``target``; a refund that succeeds moves its payment too.

    The caller holds the payment's and the refund's row locks. A success adds the amount to
    what the payment has refunded and makes the payment ``partially_refunded`` or ``refunded``
    through :func:`move_payment`; a failure gives the amount back to what may be refunded; an
    unknown outcome keeps it counted and says why in the payment's history. ``detail`` adds
    to the history entry (how the outcome was found, a manager's note).
    """
    about_payment(payment.id)
    before = refund.status
    check_refund_transition(before, target)
    refund.status = target.value
    refund.bank_refund_id = bank_refund_id or refund.bank_refund_id
    refund.updated_at = utcnow()
    detail = {**(detail or {}), **refund_detail(refund)}
    if target == RefundStatus.SUCCEEDED:
        payment.refunded_minor += refund.amount_minor
        full = payment.refunded_minor >= payment.amount_minor
        to = PaymentStatus.REFUNDED if full else PaymentStatus.PARTIALLY_REFUNDED
        move_payment(uow, payment, to, "refund_succeeded", actor, detail)
    elif target == RefundStatus.FAILED:
        refund.failure = scrub_card_numbers(failure or NO_REASON_GIVEN)
        record_event(uow, payment, "refund_failed", actor, {**detail, "reason": refund.failure})
    elif target == RefundStatus.UNKNOWN:
        record_event(uow, payment, "refund_outcome_unknown", actor, detail)
    _after_refund_move(uow, payment, refund)
    monitoring.on_refund_moved(uow, payment, refund, before, target.value)


def void_by_refund(
    uow: UnitOfWork, payment: Payment, refund: Refund, actor: str, detail: dict[str, Any]
) -> None:
    """A refund carried out as a reversal of the whole payment in the terminal's open batch:
    the refund succeeds and the payment is cancelled (voided), so it is never captured."""
    before = refund.status
    check_refund_transition(before, RefundStatus.SUCCEEDED)
    refund.status = RefundStatus.SUCCEEDED.value
    refund.updated_at = utcnow()
    payment.refunded_minor += refund.amount_minor
    move_payment(
        uow,
        payment,
        PaymentStatus.CANCELLED,
        "card_reversed",
        actor,
        {**detail, **refund_detail(refund)},
    )
    _after_refund_move(uow, payment, refund)
    monitoring.on_refund_moved(uow, payment, refund, before, RefundStatus.SUCCEEDED.value)


def refund_detail(refund: Refund) -> dict[str, Any]:
    """How a refund is named in its payment's history."""
    return {
        "refund_id": refund.id,
        "amount": Money(refund.amount_minor, refund.currency).to_decimal_string(),
        "currency": refund.currency,
    }


def _after_move(
    uow: UnitOfWork, payment: Payment, before: str | None, target: PaymentStatus
) -> None:
    """The after-change hooks, in one place: a sale's promotions follow its payment, the
    anomaly rules look at what just happened, and the merchant's webhook endpoints hear of it
    (``payment.<status>``, sent only if this commits)."""
    if payment.sale_id is not None:
        redemptions.on_payment_moved(uow, payment, target.value)
    monitoring.on_payment_moved(uow, payment, before, target.value)
    if outbox.known_none_active(uow, payment.merchant_id):
        return  # nobody to tell: the event's data is not even built
    outbox.publish(
        uow,
        merchant_id=payment.merchant_id,
        event_type=f"payment.{target.value}",
        data=payloads.payment_data(payment),
    )


def _after_refund_move(uow: UnitOfWork, payment: Payment, refund: Refund) -> None:
    """A refund's after-change hook: ``refund.<status>`` for the merchant's endpoints."""
    outbox.publish(
        uow,
        merchant_id=payment.merchant_id,
        event_type=f"refund.{refund.status}",
        data=payloads.refund_data(payment, refund),
    )


def _history(
    uow: UnitOfWork,
    payment: Payment,
    kind: str,
    before: str | None,
    after: str,
    actor: str,
    detail: dict[str, Any],
) -> None:
    uow.session.add(PaymentEvent(**_entry(payment, kind, before, after, actor, detail)))


def _entry(
    payment: Payment,
    kind: str,
    before: str | None,
    after: str,
    actor: str,
    detail: dict[str, Any],
) -> dict[str, Any]:
    """One row of the payment's history, as column values."""
    return history_entry(payment.id, kind, before, after, actor, detail)
