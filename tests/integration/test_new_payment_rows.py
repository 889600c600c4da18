"""A payment made and moved in one unit of work (a QR payment: created, then pending) is written
by two INSERTs of its own (lifecycle._insert_new) instead of the ORM's flush. This checks that
those rows are the ones the flush writes (the flush still writes a payment made inside a
savepoint), and that the payment is then held as if just read: clean, its version the first,
and moved on by the version-guarded UPDATE as any payment read from the database."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, PaymentEvent, Till
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.services.payments import qr_payments
from gateway.services.payments.lifecycle import move_payment
from gateway.services.staff.auth import TillContext

# What differs between two payments made alike.
OWN = {"id", "reference", "qr_payload", "created_at", "updated_at", "expires_at"}


def _till(db: Database) -> TillContext:
    with db.unit_of_work(readonly=True) as uow:
        till = uow.session.scalars(select(Till).order_by(Till.id)).first()
        assert till is not None
        return TillContext(till.id, till.store_id, till.store.merchant_id, till.label)


def _make(db: Database, till: TillContext, *, in_savepoint: bool) -> str:
    with db.unit_of_work() as uow:
        money = Money.parse("12.34", "EUR")
        settings = qr_payments.PaymentSettings()
        if in_savepoint:  # the flush's path: a savepoint rolled back takes what it flushed
            with uow.session.begin_nested():
                payment = qr_payments.create_qr_payment(uow, till, money=money, settings=settings)
        else:
            sent: list[str] = []

            def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
                sent.append(statement)

            event.listen(db.engine, "before_cursor_execute", record)
            try:
                payment = qr_payments.create_qr_payment(uow, till, money=money, settings=settings)
            finally:
                event.remove(db.engine, "before_cursor_execute", record)
            # Not read back: no column of it was left for a lazy load (the hooks read sale_id).
            assert not [s for s in sent if s.lstrip().startswith("SELECT payments.")]
            inserts = [s for s in sent if "INSERT INTO payment" in s]
            if db.dialect == "postgresql":  # the row and its history in one statement
                assert len(inserts) == 1 and "WITH new_payment AS" in inserts[0]
            else:
                assert len(inserts) == 2
            state = inspect(payment)
            assert state.persistent and not state.modified and not state.expired_attributes
            # Every column held: reading one (sale_id, card …) asks the database nothing.
            assert not state.unloaded & {c.key for c in inspect(Payment).column_attrs}
            # Nothing of it left for a flush (the watcher job is added after the move).
            assert not [o for o in uow.session.new if isinstance(o, Payment | PaymentEvent)]
        payment_id = payment.id
        uow.commit()
    return payment_id


def _rows(db: Database, payment_id: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with db.unit_of_work(readonly=True) as uow:
        payment = uow.session.get_one(Payment, payment_id)
        row = {c.key: getattr(payment, c.key) for c in inspect(Payment).column_attrs}
        events = uow.session.scalars(
            select(PaymentEvent)
            .where(PaymentEvent.payment_id == payment_id)
            .order_by(PaymentEvent.id)
        )
        history = [
            {
                "kind": e.kind,
                "from_status": e.from_status,
                "to_status": e.to_status,
                "actor": e.actor,
                "detail": e.detail,
                "created_at": e.created_at,
            }
            for e in events
        ]
    return row, history


def test_a_new_payment_is_written_as_the_flush_writes_it(db: Database, demo: dict[str, Any]):
    till = _till(db)
    fast_id = _make(db, till, in_savepoint=False)
    flushed_id = _make(db, till, in_savepoint=True)

    fast, fast_history = _rows(db, fast_id)
    flushed, flushed_history = _rows(db, flushed_id)

    assert {k: v for k, v in fast.items() if k not in OWN} == {
        k: v for k, v in flushed.items() if k not in OWN
    }
    assert fast["version"] == 1 and fast["refunded_minor"] == 0
    assert fast["status"] == PaymentStatus.PENDING
    assert fast["updated_at"] >= fast["created_at"] and fast["expires_at"] is not None
    # The same history, in the same order (ids), each entry no earlier than the one before.
    assert [h["kind"] for h in fast_history] == ["created", "qr_issued"]
    times = [h.pop("created_at") for h in fast_history]
    assert times == sorted(times)
    for entry in flushed_history:
        entry.pop("created_at")
    for entry in (*fast_history, *flushed_history):
        entry["detail"].pop("expires_at", None)  # the payment's own
    assert fast_history == flushed_history


def test_a_payment_written_so_moves_on_under_its_version(db: Database, demo: dict[str, Any]):
    till = _till(db)
    with db.unit_of_work() as uow:
        payment = qr_payments.create_qr_payment(
            uow, till, money=Money.parse("5.00", "EUR"), settings=qr_payments.PaymentSettings()
        )
        # Moved again in the same unit of work: the UPDATE finds the row at version 1.
        move_payment(uow, payment, PaymentStatus.CANCELLED, "cancelled", "test")
        payment_id = payment.id
        uow.commit()

    row, history = _rows(db, payment_id)
    assert row["status"] == PaymentStatus.CANCELLED and row["version"] == 2
    assert [h["kind"] for h in history] == ["created", "qr_issued", "cancelled"]
