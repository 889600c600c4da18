"""The bank's signed callbacks (docs/bank-api.md, "Callbacks"): verify, store, process.

Each delivery goes through two steps, so that no event is ever lost or applied twice:

1. :func:`verify_callback` checks the Standard Webhooks signature and the timestamp tolerance;
   a delivery that fails is refused and nothing of it is stored.
2. :func:`receive` inserts the raw event first; the unique constraint on ``(source,
   external_id)`` is the dedupe point, so a second delivery of the same ``webhook-id`` (a retry,
   or ten at once) inserts nothing and is answered "duplicate". The event is applied in the same
   transaction, which commits the raw event and its effect together. If applying fails, the raw
   event is stored on its own as ``failed`` and a ``process_bank_event`` job retries it; the
   bank is answered 2xx only once the event is committed, so nothing is ever lost.

Every handler is idempotent under the payment's row lock, so re-deliveries and events that
arrive out of order change nothing twice.

==============  =======================================================================
event status    meaning
==============  =======================================================================
received        stored, not applied yet (the column's default; callbacks always set another)
processed       applied
unmatched       refers to a payment or refund Kassa does not know (reconciliation looks)
unknown_type    an event type this version does not handle; kept, never dropped
invalid         signed by the bank but not as the contract says; retrying cannot help
failed          applying it failed (e.g. the database); a job retries it
==============  =======================================================================
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import (
    JSON,
    Connection,
    Table,
    Text,
    bindparam,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy import cast as cast_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import IntegrityError
from standardwebhooks.webhooks import EmptyWebhookSecretError, Webhook

from gateway.adapters import metrics
from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.logging_setup import about_payment
from gateway.adapters.models import (
    BankSettlement,
    InboundEvent,
    Job,
    Merchant,
    Payment,
    PaymentEvent,
    Store,
    utcnow,
)
from gateway.domain.card_data import has_card_number, scrub_bytes, scrub_card_numbers
from gateway.domain.money import Money
from gateway.domain.payment import PaymentStatus
from gateway.errors import ConfigurationError, InvalidInput, NotFound, Unauthorised
from gateway.services import jobs
from gateway.services.bank import prepared
from gateway.services.payments import lifecycle, qr_payments, refunds
from gateway.services.webhooks import outbox

log = logging.getLogger(__name__)

SOURCE = "bank"
PROCESS_JOB = "process_bank_event"
ACTOR = "bank"
# The spec's webhook-timestamp is "integer unix timestamp (seconds since epoch)".
_TIMESTAMP = re.compile(r"^[0-9]{1,12}$")
_MAX_ID_LENGTH = 255  # inbound_events.external_id
# The headers kept with the raw event, so its signature can be checked again later.
KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type")


class EventStatus(StrEnum):
    RECEIVED = "received"
    PROCESSED = "processed"
    UNMATCHED = "unmatched"
    UNKNOWN_TYPE = "unknown_type"
    INVALID = "invalid"
    FAILED = "failed"
    DUPLICATE = "duplicate"  # an answer only: a duplicate is never stored


@dataclass(frozen=True, slots=True)
class VerifiedCallback:
    """A delivery whose signature and timestamp checked out."""

    event_id: str
    timestamp: int
    body: bytes
    headers: dict[str, str]


# -- 1. verification ---------------------------------------------------------------------------


@lru_cache(maxsize=8)
def signer(secret: str) -> Webhook:
    """The Standard Webhooks signer for a ``whsec_<base64>`` secret (decoded once per secret)."""
    try:
        return Webhook(secret)
    except (EmptyWebhookSecretError, binascii.Error, ValueError):
        raise ConfigurationError(
            "the bank webhook secret is not valid: expected 'whsec_' followed by base64"
        ) from None


def verify_callback(
    secret: str, body: bytes, headers: Mapping[str, str], *, now: float, tolerance: int
) -> VerifiedCallback:
    """Check a delivery's Standard Webhooks headers and signature; raise Unauthorised if bad.

    The timestamp may be at most ``tolerance`` whole seconds from ``now`` in either direction,
    both taken as whole Unix seconds (as the spec's JavaScript, Java, Ruby, PHP and Rust
    libraries do), so exactly ``tolerance`` seconds is still accepted. The HMAC itself is the
    ``standardwebhooks`` package's; its ``verify()`` is not used because it fixes the tolerance
    at 5 minutes against a fractional clock, accepts fractional timestamps, and raises
    ValueError rather than its own error on a malformed signature list.
    """
    lowered = {k.lower(): v for k, v in headers.items()}
    event_id = lowered.get("webhook-id", "")
    stamp = lowered.get("webhook-timestamp", "")
    signatures = lowered.get("webhook-signature", "")
    if not (event_id and stamp and signatures):
        raise Unauthorised(
            "the callback lacks a webhook-id, webhook-timestamp or webhook-signature header"
        )
    timestamp = _check_timestamp(stamp, now, tolerance)
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise Unauthorised(
            "the callback body is not UTF-8, so its signature cannot match"
        ) from None
    expected = signer(secret).sign(event_id, datetime.fromtimestamp(timestamp, UTC), text)
    if not _any_matches(signatures, expected):
        raise Unauthorised("the callback's signature does not match the bank webhook secret")
    if len(event_id) > _MAX_ID_LENGTH:
        raise InvalidInput(f"webhook-id is longer than {_MAX_ID_LENGTH} characters")
    kept = {name: lowered[name] for name in KEPT_HEADERS if name in lowered}
    if has_card_number(event_id):
        event_id = kept["webhook-id"] = stored_event_id(event_id)
    return VerifiedCallback(event_id, timestamp, body, kept)


def stored_event_id(event_id: str) -> str:
    """How an event id that holds a card number is stored, logged and shown: masked, then the
    SHA-256 of the id as sent (``…~sha256:<hex>``). The id is the event's dedupe key, so two
    ids that mask alike stay two, and a re-delivery of either is still its duplicate; a bank's
    numeric ids (a snowflake id is Luhn-valid one time in ten) are taken, not refused."""
    digest = hashlib.sha256(event_id.encode()).hexdigest()
    masked = scrub_card_numbers(event_id)[: _MAX_ID_LENGTH - len(_DIGEST_MARK) - len(digest)]
    return f"{masked}{_DIGEST_MARK}{digest}"


_DIGEST_MARK = "~sha256:"


def _check_timestamp(stamp: str, now: float, tolerance: int) -> int:
    if not _TIMESTAMP.match(stamp):
        raise Unauthorised(f"webhook-timestamp {stamp[:20]!r} is not whole Unix seconds")
    timestamp = int(stamp)
    skew = int(now) - timestamp
    if skew > tolerance:
        raise Unauthorised(f"webhook-timestamp is {skew} s old; at most {tolerance} s is accepted")
    if -skew > tolerance:
        raise Unauthorised(
            f"webhook-timestamp is {-skew} s in the future; at most {tolerance} s is accepted"
        )
    return timestamp


def _any_matches(header: str, expected: str) -> bool:
    """True if one ``v1,<base64>`` entry of the space-separated list is the expected HMAC."""
    want = base64.b64decode(expected.partition(",")[2])
    for entry in header.split(" "):
        version, _, signature = entry.partition(",")
        if version != "v1":
            continue  # v1a (asymmetric) and unknown versions are not ours to check
        try:
            given = base64.b64decode(signature, validate=True)
        except (binascii.Error, ValueError):
            continue
        if hmac.compare_digest(given, want):
            return True
    return False


# -- 2. storing and processing ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Envelope:
    """The parsed body: ``{"type": …, "timestamp": …, "data": {…}}``, or why it is not one."""

    kind: str | None
    data: dict[str, Any]
    problem: str | None = None


NOT_PARSED: Any = object()


def parse_envelope(body: bytes, document: Any = NOT_PARSED) -> Envelope:
    """The envelope of ``body``; ``document`` is ``body`` already parsed, if it was (the web
    edge's input guard parses and checks a callback's JSON before the view runs)."""
    if document is NOT_PARSED:
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):  # the web edge refuses deep JSON; a stored one too
            return Envelope(None, {}, "the body is not JSON")
    if not isinstance(document, dict) or not isinstance(document.get("type"), str):
        return Envelope(None, {}, "the body is not an object with a string 'type'")
    # Stored and logged as sent when unknown: a card number in it is masked first.
    kind = scrub_card_numbers(document["type"][:64])
    data = document.get("data")
    if not isinstance(data, dict):
        return Envelope(kind, {}, "the body has no 'data' object")
    return Envelope(kind, data)


def receive(
    db: Database, callback: VerifiedCallback, *, document: Any = NOT_PARSED, logged: bool = True
) -> EventStatus:
    """Store a verified delivery and apply it; the stored event's status, or DUPLICATE.

    The raw event is inserted first, and its unique ``(source, external_id)`` is the dedupe
    point: a concurrent duplicate waits on it, then inserts nothing. Storing and applying share
    one transaction (the fewest round trips); if applying fails, that transaction is rolled
    back and the event is stored on its own as ``failed`` (or ``invalid``), with a job to retry
    it. Either way the event is committed before the bank hears 2xx. ``document``: the body
    already parsed as JSON, if the caller has it. ``logged``: the outcome has a log line of
    its own (:func:`outcome_line`); the web tier puts it on the request's line instead.
    """
    started = time.perf_counter()
    status = _receive(db, callback, document)
    metrics.CALLBACKS.labels(outcome=status.value).inc()
    metrics.CALLBACK_SECONDS.observe(time.perf_counter() - started)
    if logged:
        # With the bank's X-Request-Id (the request that caused the event) and the payment's id.
        log.info("%s", outcome_line(callback, status))
    return status


def outcome_line(callback: VerifiedCallback, status: EventStatus) -> str:
    """What the log says of a received callback: ``bank event <its id>: <status>``."""
    return f"bank event {callback.event_id}: {status.value}"  # escaped as logged, as any text


def _receive(db: Database, callback: VerifiedCallback, document: Any) -> EventStatus:
    envelope = parse_envelope(callback.body, document)
    try:
        with db.unit_of_work() as uow:
            status = _store_and_apply(uow, callback, envelope)
            uow.commit()
            return status
    except InvalidInput as exc:
        return _store_outcome(db, callback, envelope, EventStatus.INVALID, str(exc))
    except Exception as exc:  # stored below as failed: a job will try again
        log.exception(
            "bank event %s could not be processed; a job will retry it", callback.event_id
        )
        return _store_outcome(
            db, callback, envelope, EventStatus.FAILED, f"{type(exc).__name__}: {exc}"
        )


def _store_and_apply(
    uow: UnitOfWork, callback: VerifiedCallback, envelope: Envelope
) -> EventStatus:
    if envelope.problem:
        raise InvalidInput(envelope.problem)
    handler = HANDLERS.get(envelope.kind or "")
    if (
        handler is _payment_succeeded
        and (connection := uow.session.connection()).dialect.name == "postgresql"
        and not uow.session.identity_map  # a caller's objects could go stale (see below)
    ):
        status = _store_and_apply_payment(uow, connection, callback, envelope)
        if status is not None:
            return status
    return _store_and_apply_general(uow, callback, envelope, handler)


def _store_and_apply_general(
    uow: UnitOfWork, callback: VerifiedCallback, envelope: Envelope, handler: Handler | None
) -> EventStatus:
    # Stored with the outcome it will most likely have, so the common case needs no UPDATE;
    # nobody sees the row before this transaction commits it with its real outcome.
    guess = EventStatus.PROCESSED if handler else EventStatus.UNKNOWN_TYPE
    event_id = _insert_event(uow, callback, envelope, guess, None)
    if event_id is None:
        return EventStatus.DUPLICATE
    if handler is None:
        log.warning("bank event %s has unknown type %r; stored", event_id, envelope.kind)
        return guess
    status = handler(uow, envelope.data, event_id)
    if status != guess:
        _set_status(uow, event_id, status, None)
    return status


def _store_outcome(
    db: Database,
    callback: VerifiedCallback,
    envelope: Envelope,
    status: EventStatus,
    error: str,
) -> EventStatus:
    """Store the event alone with an outcome other than success; a failed one gets a job."""
    with db.unit_of_work() as uow:
        event_id = _insert_event(uow, callback, envelope, status, error[:2000])
        if event_id is None:
            return EventStatus.DUPLICATE  # a concurrent delivery stored it meanwhile
        if status == EventStatus.FAILED:
            jobs.enqueue(uow, PROCESS_JOB, {"event_id": event_id})
        uow.commit()
    return status


def _insert_event(
    uow: UnitOfWork,
    callback: VerifiedCallback,
    envelope: Envelope,
    status: EventStatus,
    error: str | None,
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new row's id, None for a duplicate."""
    connection = uow.session.connection()
    try:
        values = _event_values(callback, envelope, status, error)
        return connection.scalar(_insert_statement(connection.dialect.name), values)
    except IntegrityError:  # a conflict ON CONFLICT does not cover: still a duplicate
        return None


def _event_values(
    callback: VerifiedCallback, envelope: Envelope, status: EventStatus, error: str | None
) -> dict[str, Any]:
    now = utcnow()
    return {
        "source": SOURCE,
        "external_id": callback.event_id,
        "kind": envelope.kind,
        "headers": callback.headers,
        "body": scrub_bytes(callback.body),  # the hash is the original's
        "content_hash": hashlib.sha256(callback.body).hexdigest(),
        "status": status.value,
        "error": None if error is None else scrub_card_numbers(error),
        "received_at": now,
        "processed_at": None if status == EventStatus.FAILED else now,
    }


@lru_cache(maxsize=2)
def _insert_statement(dialect: str) -> Any:
    """Built once per dialect: a statement with bound parameters compiles once and is cached."""
    inserts: dict[str, Callable[..., Any]] = {
        "postgresql": postgresql.insert,
        "sqlite": sqlite.insert,
    }
    columns = (
        "source",
        "external_id",
        "kind",
        "headers",
        "body",
        "content_hash",
        "status",
        "error",
        "received_at",
        "processed_at",
    )
    table = InboundEvent.__table__
    return (
        inserts[dialect](table)
        .values({name: bindparam(name, type_=table.c[name].type) for name in columns})
        .on_conflict_do_nothing(index_elements=["source", "external_id"])
        .returning(table.c.id)
    )


def apply_event(uow: UnitOfWork, event_id: int, envelope: Envelope) -> EventStatus:
    """Apply a stored event and record its outcome on its row, in the caller's transaction."""
    handler = HANDLERS.get(envelope.kind or "")
    status = EventStatus.UNKNOWN_TYPE if handler is None else handler(uow, envelope.data, event_id)
    _set_status(uow, event_id, status, None)
    return status


def _set_status(uow: UnitOfWork, event_id: int, status: EventStatus, error: str | None) -> None:
    done = status not in (EventStatus.FAILED, EventStatus.RECEIVED)
    uow.session.execute(
        update(InboundEvent)
        .where(InboundEvent.id == event_id)
        .values(
            status=status.value,
            error=None if error is None else scrub_card_numbers(error),
            processed_at=utcnow() if done else None,
        )
    )


def process_bank_event(uow: UnitOfWork, payload: dict[str, Any]) -> None:
    """Job handler: apply a stored event that failed before (a no-op once it has an outcome)."""
    event = uow.session.get(InboundEvent, payload["event_id"], with_for_update=True)
    if event is None or event.status not in (EventStatus.RECEIVED, EventStatus.FAILED):
        return
    envelope = parse_envelope(event.body)
    try:
        with uow.session.begin_nested():
            if envelope.problem:
                raise InvalidInput(envelope.problem)
            apply_event(uow, event.id, envelope)
    except InvalidInput as exc:
        _set_status(uow, event.id, EventStatus.INVALID, str(exc))


def replay_event(uow: UnitOfWork, event_id: int) -> EventStatus:
    """Apply a stored event again, whatever its status, and record the outcome on its row.

    For a person (``kassa events replay``, the portal): every handler is idempotent, so a
    replay of a processed event changes nothing; one that failed, or found nothing to apply
    to then, is applied now. The caller commits.
    """
    event = uow.session.get(InboundEvent, event_id, with_for_update=True)
    if event is None or event.source != SOURCE:
        raise NotFound(f"no bank event {event_id}")
    envelope = parse_envelope(event.body)
    try:
        with uow.session.begin_nested():
            if envelope.problem:
                raise InvalidInput(envelope.problem)
            return apply_event(uow, event.id, envelope)
    except InvalidInput as exc:
        _set_status(uow, event.id, EventStatus.INVALID, str(exc))
        return EventStatus.INVALID


def receive_answer(
    uow: UnitOfWork, kind: str, answer: dict[str, Any], external_id: str, asked: str
) -> EventStatus:
    """The bank's answer to Kassa's own question (``asked``, e.g. ``GET /v1/payments/K…``),
    stored and applied exactly as a callback of type ``kind`` would be, in the caller's
    transaction: a poll and a callback for the same payment change it once. ``external_id``
    names the answer (``poll:<bank id>``), so asking again stores and applies nothing.
    """
    body = json.dumps(
        {"type": kind, "timestamp": utcnow().isoformat(), "data": answer},
        separators=(",", ":"),
    ).encode()
    answered = VerifiedCallback(
        external_id[:_MAX_ID_LENGTH], int(time.time()), body, {"x-kassa-asked": asked}
    )
    return _store_and_apply(uow, answered, parse_envelope(body))


# -- the event types ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BankPayment:
    """A ``payment.succeeded`` event's data, checked against the contract."""

    money: Money
    bank_payment_id: str
    paid_at: datetime
    reference: str
    wallet: str | None

    @classmethod
    def parse(cls, data: dict[str, Any]) -> BankPayment:
        return cls(
            _amount(data),
            _text(data, "bank_payment_id"),
            _instant(data, "paid_at"),
            _text(data, "reference"),
            _optional(data, "wallet"),
        )


def _payment_succeeded(uow: UnitOfWork, data: dict[str, Any], event_id: int) -> EventStatus:
    return _apply_payment(uow, BankPayment.parse(data), event_id)


def _apply_payment(uow: UnitOfWork, paid: BankPayment, event_id: int) -> EventStatus:
    payment = qr_payments.payment_by_reference(uow, paid.reference)
    if payment is None:
        return EventStatus.UNMATCHED
    _record_bank_payment(uow, payment, paid, event_id)
    return EventStatus.PROCESSED


def _record_bank_payment(
    uow: UnitOfWork, payment: Payment, paid: BankPayment, event_id: int
) -> None:
    about_payment(payment.id)
    qr_payments.record_bank_payment(
        uow,
        payment,
        money=paid.money,
        bank_payment_id=paid.bank_payment_id,
        paid_at=paid.paid_at,
        actor=ACTOR,
        detail=_callback_detail(paid, event_id),
    )


def _store_and_apply_payment(
    uow: UnitOfWork, connection: Connection, callback: VerifiedCallback, envelope: Envelope
) -> EventStatus | None:
    """``payment.succeeded`` on PostgreSQL in one statement (:func:`_insert_and_move`): store
    the raw event, and if it is new and its payment is ``pending`` for exactly this amount
    (the common case), move the payment to ``paid`` with its history row, as
    :func:`qr_payments.record_bank_payment` would, then run the move's after-change hooks as
    :func:`lifecycle.move_payment` does. Any other case (another status or amount, no such
    payment) takes the general path for the stored event, which locks the payment. A
    duplicate inserts and moves nothing. None: the general path must do it (nothing
    was sent). Only in a unit of work that holds no objects yet: the statement's rows are
    the database's, and an object the caller holds would not be refreshed by them."""
    paid = BankPayment.parse(envelope.data)  # invalid: nothing stored here (see _receive)
    detail = _history_detail(connection.dialect, paid)
    if detail is None:
        return None  # the general path, then
    values = _event_values(callback, envelope, EventStatus.PROCESSED, None)
    now = values["received_at"]
    statement = _one_statement(connection.dialect)
    row = statement.first(
        connection,
        {
            **values,
            "paid_reference": paid.reference,
            "paid_minor": paid.money.minor,
            "paid_currency": paid.money.currency,
            "new_bank_payment_id": paid.bank_payment_id,
            "new_paid_at": paid.paid_at,
            "now": now,
            "detail_before_id": detail[0],
            "detail_after_id": detail[1],
        },
    )
    if row is None:
        return EventStatus.DUPLICATE
    event_id: int = row[0]
    if row[1] is None:  # not moved: the general path, under the payment's lock
        status = _apply_payment(uow, paid, event_id)
        if status != EventStatus.PROCESSED:  # stored as processed, as the general path does
            _set_status(uow, event_id, status, None)
        return status
    # The moved payment as now stored, and what the move's after-change hooks would ask again
    # (as qr_payments.payment_by_reference keeps them), as the ORM would have loaded them.
    payment = prepared.loaded(uow, Payment, _PAYMENT_READ, row[_PAYMENT_AT])
    merchant = prepared.loaded(uow, Merchant, _MERCHANT_READ, row[_MERCHANT_AT])
    store = prepared.loaded(uow, Store, _STORE_READ, row[_STORE_AT])
    uow.keep(merchant, store)
    if not row[-1]:  # no active webhook endpoint
        outbox.note_none_active(uow, payment.merchant_id)
    lifecycle.after_written_move(uow, payment, PaymentStatus.PENDING, PaymentStatus.PAID)
    return EventStatus.PROCESSED


# The history row's detail names the raw event, whose id the statement only learns as it runs:
# the detail's JSON text is cut where that id goes and joined around it in SQL.
_ID_MARK = -7_319_000_001


def _history_detail(dialect: Dialect, paid: BankPayment) -> tuple[str, str] | None:
    """The JSON text of the history row's detail before and after the event's id, exactly as
    the general path's bound ``detail`` would be serialised; None if it cannot be cut."""
    taken = qr_payments.bank_payment_detail(
        _callback_detail(paid, _ID_MARK), paid.money, paid.bank_payment_id, paid.paid_at
    )
    detail = lifecycle.history_entry("", "paid", None, "", ACTOR, taken)["detail"]
    serialise = dialect._json_serializer or json.dumps  # type: ignore[attr-defined]
    text: str = serialise(detail)
    mark = f'"inbound_event_id": {_ID_MARK}'
    if text.count(mark) != 1 or detail.get("inbound_event_id") != _ID_MARK:
        return None
    before, _, after = text.partition(mark)
    return before + '"inbound_event_id": ', after


def _callback_detail(paid: BankPayment, event_id: int) -> dict[str, Any]:
    """What the payment's history says of the bank's payment (before
    :func:`qr_payments.bank_payment_detail` adds to it)."""
    return {
        "bank_payment_id": paid.bank_payment_id,
        "amount": paid.money.to_decimal_string(),
        "currency": paid.money.currency,
        "wallet": paid.wallet,
        "inbound_event_id": event_id,
    }


# The row of :func:`_insert_and_move` after the event's id: the moved payment's columns, then
# the merchant's and the store's that the move's hooks read, then whether an endpoint is active.
_PAYMENT_READ = tuple(column.key for column in Payment.__table__.c)
_MERCHANT_READ = ("id", "monitoring_thresholds")
_STORE_READ = ("id", "opening_hours", "timezone")
_PAYMENT_AT = slice(1, 1 + len(_PAYMENT_READ))
_MERCHANT_AT = slice(_PAYMENT_AT.stop, _PAYMENT_AT.stop + len(_MERCHANT_READ))
_STORE_AT = slice(_MERCHANT_AT.stop, _MERCHANT_AT.stop + len(_STORE_READ))


@lru_cache(maxsize=4)
def _one_statement(dialect: Dialect) -> prepared.PreparedStatement:
    """:func:`_insert_and_move` compiled once for the engine's dialect."""
    return prepared.PreparedStatement.compile(_insert_and_move(), dialect)


@lru_cache(maxsize=1)
def _insert_and_move() -> Any:
    """One statement (PostgreSQL; SQLite has no INSERT or UPDATE in a WITH)::

        WITH event AS (INSERT the raw event ON CONFLICT DO NOTHING RETURNING id),
        moved AS (UPDATE payments SET paid … WHERE reference AND status 'pending' AND the
                  amount and currency AND EXISTS (SELECT FROM event) RETURNING payments.*),
        history AS (INSERT INTO payment_events SELECT … FROM moved, event)
        SELECT event.id, moved.*, its merchant's thresholds, its store's opening hours,
               whether the merchant has an active webhook endpoint
        FROM event LEFT JOIN moved …

    No row: a duplicate (nothing moved). A row without a payment: the event is stored and
    nothing moved (another status or amount, or no such payment). Else the payment as now
    stored. A payment that another transaction changes meanwhile is waited for and its new
    row checked again (READ COMMITTED), as the general path's lock would wait; kept short
    (under psycopg's 4 KiB, so that its parsed form is cached)."""
    event = _insert_statement("postgresql").cte("event")
    payments = cast(Table, Payment.__table__)
    moved = (
        update(payments)
        .where(
            payments.c.reference == bindparam("paid_reference", type_=payments.c.reference.type),
            payments.c.status == literal_column(f"'{PaymentStatus.PENDING.value}'"),
            payments.c.amount_minor == bindparam("paid_minor", type_=payments.c.amount_minor.type),
            payments.c.currency == bindparam("paid_currency", type_=payments.c.currency.type),
            select(event.c.id).exists(),  # a duplicate (no event inserted) moves nothing
        )
        .values(
            status=literal_column(f"'{PaymentStatus.PAID.value}'"),
            bank_payment_id=bindparam("new_bank_payment_id", type_=payments.c.bank_payment_id.type),
            paid_at=bindparam("new_paid_at", type_=payments.c.paid_at.type),
            updated_at=bindparam("now", type_=payments.c.updated_at.type),
            version=payments.c.version + literal_column("1"),
        )
        .returning(*payments.c)
        .cte("moved")
    )
    history_table = cast(Table, PaymentEvent.__table__)
    detail = cast_(
        bindparam("detail_before_id", type_=Text)
        + cast_(event.c.id, Text)
        + bindparam("detail_after_id", type_=Text),
        JSON,
    )
    history = (
        insert(history_table)
        .from_select(
            list(lifecycle.HISTORY_COLUMNS),
            select(
                moved.c.id,
                literal_column("'paid'"),
                literal_column(f"'{PaymentStatus.PENDING.value}'"),
                literal_column(f"'{PaymentStatus.PAID.value}'"),
                literal_column(f"'{ACTOR}'"),
                detail,
                bindparam("now", type_=history_table.c.created_at.type),
            ).select_from(moved.join(event, true())),
        )
        .returning(history_table.c.id)
        .cte("history")
    )
    merchant = cast(Table, Merchant.__table__).alias()
    store = cast(Table, Store.__table__).alias()
    return (
        select(
            event.c.id,
            *moved.c,
            # What the move's after-change hooks read (its thresholds, its opening hours); a
            # column they did not load is read when asked for, as a deferred one.
            *(merchant.c[key] for key in _MERCHANT_READ),
            *(store.c[key] for key in _STORE_READ),
            outbox.any_active(moved.c.merchant_id),
        )
        .select_from(event)
        .outerjoin(moved, true())
        .outerjoin(merchant, merchant.c.id == moved.c.merchant_id)
        .outerjoin(store, store.c.id == moved.c.store_id)
        .add_cte(history)  # nobody reads it: named so that it is sent (PostgreSQL runs it)
    )


def _refund_result(succeeded: bool) -> Handler:
    def handle(uow: UnitOfWork, data: dict[str, Any], event_id: int) -> EventStatus:
        money = _amount(data)
        try:
            refunds.record_bank_result(
                uow,
                refund_id=_text(data, "refund_id"),
                succeeded=succeeded,
                bank_refund_id=_optional(data, "bank_refund_id"),
                amount_minor=money.minor,
                currency=money.currency,
                reason=None if succeeded else _optional(data, "reason"),
            )
        except NotFound:
            return EventStatus.UNMATCHED
        return EventStatus.PROCESSED

    return handle


def _settlement_created(uow: UnitOfWork, data: dict[str, Any], event_id: int) -> EventStatus:
    """Record (or update) the bank's settlement of one day, in minor units."""
    currency = _text(data, "currency")
    minor = {k: Money.parse(_text(data, k), currency).minor for k in _SETTLEMENT_AMOUNTS}
    if any(minor[k] < 0 for k in ("gross", "fees", "refunds")):
        raise InvalidInput("settlement.created: gross, fees and refunds are never negative")
    count = data.get("payment_count")
    if isinstance(count, bool) or not isinstance(count, int):
        raise InvalidInput("settlement.created: 'payment_count' must be a whole number")
    bank_merchant_id = _text(data, "merchant_id")
    settlement_id = _text(data, "settlement_id")
    merchant_id = merchant_for(uow, bank_merchant_id)
    row = uow.session.scalar(
        select(BankSettlement)
        .where(BankSettlement.settlement_id == settlement_id)
        .with_for_update()
    ) or BankSettlement(settlement_id=settlement_id)
    files = data.get("files")
    row.merchant_id = merchant_id
    row.bank_merchant_id = bank_merchant_id
    row.day = _text(data, "date")
    row.currency = Money(0, currency).currency
    row.gross_minor, row.fees_minor = minor["gross"], minor["fees"]
    row.refunds_minor, row.net_minor = minor["refunds"], minor["net"]
    row.payment_count = count
    row.files = files if isinstance(files, dict) else {}
    row.inbound_event_id = event_id
    uow.session.add(row)
    _fetch_statement(uow, row)
    return EventStatus.PROCESSED


def _fetch_statement(uow: UnitOfWork, settlement: BankSettlement) -> None:
    """Queue the download of the day's statement; the worker imports and reconciles it."""
    from gateway.services.settlement import reconciliation

    url = next(
        (
            settlement.files.get(k)
            for k in ("camt053", "camt054", "csv")
            if isinstance(settlement.files.get(k), str)
        ),
        None,
    )
    if url is None or settlement.merchant_id is None:
        return
    key = f"settlement-file:{settlement.settlement_id}"
    if uow.session.scalar(select(Job.id).where(Job.dedupe_key == key)) is None:
        jobs.enqueue(
            uow,
            reconciliation.FETCH_FILE_JOB,
            {
                "settlement_id": settlement.settlement_id,
                "url": url,
                "merchant_id": settlement.merchant_id,
                "day": settlement.day,
            },
            dedupe_key=key,
            max_attempts=20,
        )


_SETTLEMENT_AMOUNTS = ("gross", "fees", "refunds", "net")


def merchant_for(uow: UnitOfWork, bank_merchant_id: str) -> int | None:
    """The merchant whose QR account templates carry this bank merchant id as sub-ID 01."""
    for merchant in uow.session.scalars(select(Merchant).order_by(Merchant.id)):
        for account in merchant.qr_accounts:
            if (account.get("fields") or {}).get("01") == bank_merchant_id:
                return merchant.id
    return None


Handler = Callable[[UnitOfWork, dict[str, Any], int], EventStatus]
HANDLERS: dict[str, Handler] = {
    "payment.succeeded": _payment_succeeded,
    "refund.succeeded": _refund_result(succeeded=True),
    "refund.failed": _refund_result(succeeded=False),
    "settlement.created": _settlement_created,
}


def _amount(data: dict[str, Any]) -> Money:
    """The event's ``amount`` in its ``currency``: a payment or refund moves more than zero.

    An amount of zero or below, or a currency ISO 4217 does not know, breaks the contract: the
    event is stored as ``invalid`` and applied to nothing (a -12.00 is never a second payment).
    """
    money = Money.parse(_text(data, "amount"), _text(data, "currency"))
    if money.minor <= 0:
        raise InvalidInput(f"the event's amount must be more than zero, not {money}")
    return money


def _text(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"the event's data has no text field {field!r}")
    if "\x00" in value:
        raise InvalidInput(f"the event's {field!r} contains a NUL character")
    return value


def _optional(data: dict[str, Any], field: str) -> str | None:
    value = data.get(field)
    return value if isinstance(value, str) and value else None


def _instant(data: dict[str, Any], field: str) -> datetime:
    text = _text(data, field)
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise InvalidInput(f"{field} {text!r} is not an ISO 8601 timestamp") from None
    if value.tzinfo is None:
        raise InvalidInput(f"{field} {text!r} has no time zone")
    return value.astimezone(UTC)
