"""The stored inbound events (bank callbacks, the bank's answers to polls, settlement files):
read them, and replay one, for a person explaining or repairing a result.

Every raw event is stored before it is processed (docs/architecture.md), so any result can be
explained from its body and headers and applied again. A replay is idempotent: a bank event
goes through its handler again (each handler changes nothing twice), a settlement file through
the import again (a file already imported is reported as a duplicate). So a replay of a
processed event changes nothing, and one that failed is retried.

Who may see what: the CLI (an operator with the database) sees every event; a manager in the
portal sees the events that concern their merchant (:func:`event_merchant`), found among the
newest :data:`SCAN` events that match the filters.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from gateway.adapters.db import Database, UnitOfWork
from gateway.adapters.models import (
    InboundEvent,
    Merchant,
    Payment,
    Refund,
    SettlementFile,
    SettlementStatement,
)
from gateway.adapters.settlement_files import InvalidSettlementFile
from gateway.errors import InvalidInput, NotFound
from gateway.services.bank import callbacks
from gateway.services.settlement import file_import, raw_files
from gateway.services.staff import audit
from gateway.settings import SettlementSettings

SOURCES = (callbacks.SOURCE, raw_files.SOURCE)
SCAN = 500


@dataclass(frozen=True, slots=True)
class EventFilter:
    source: str | None = None
    kind: str | None = None
    status: str | None = None
    limit: int = 50
    offset: int = 0

    def __post_init__(self) -> None:
        if self.source and self.source not in SOURCES:
            raise InvalidInput(f"source is one of {', '.join(SOURCES)}, not {self.source!r}")
        if not 1 <= self.limit <= 1000 or self.offset < 0:
            raise InvalidInput("limit is 1 to 1000 and offset 0 or more")


@dataclass(frozen=True, slots=True)
class Replayed:
    event_id: int
    source: str
    before: str
    after: str
    note: str


def list_events(uow: UnitOfWork, wanted: EventFilter) -> tuple[list[InboundEvent], int]:
    """Events matching ``wanted``, newest first, and how many match in all."""
    query = _filtered(wanted)
    total = uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0
    rows = uow.session.scalars(
        query.order_by(InboundEvent.id.desc()).limit(wanted.limit).offset(wanted.offset)
    )
    return list(rows), int(total)


def list_merchant_events(
    uow: UnitOfWork, merchant_id: int, wanted: EventFilter
) -> tuple[list[InboundEvent], int]:
    """Like :func:`list_events`, narrowed to the events that concern ``merchant_id``."""
    scanned = uow.session.scalars(_filtered(wanted).order_by(InboundEvent.id.desc()).limit(SCAN))
    mine = [e for e in scanned if event_merchant(uow, e) == merchant_id]
    return mine[wanted.offset : wanted.offset + wanted.limit], len(mine)


def get_event(uow: UnitOfWork, event_id: int, merchant_id: int | None = None) -> InboundEvent:
    """One event; with ``merchant_id``, only if it concerns that merchant."""
    event = uow.session.get(InboundEvent, event_id)
    if event is None or (merchant_id is not None and event_merchant(uow, event) != merchant_id):
        raise NotFound(f"no inbound event {event_id}")
    return event


def event_merchant(uow: UnitOfWork, event: InboundEvent) -> int | None:
    """The merchant an event concerns, as far as its contents say (None: nobody's known)."""
    if event.source == raw_files.SOURCE:
        return _file_merchant(uow, event)
    data = _data(event.body)
    if event.kind == "payment.succeeded" and isinstance(data.get("reference"), str):
        return uow.session.scalar(
            select(Payment.merchant_id).where(Payment.reference == data["reference"])
        )
    if (event.kind or "").startswith("refund.") and isinstance(data.get("refund_id"), str):
        return uow.session.scalar(
            select(Payment.merchant_id)
            .join(Refund, Refund.payment_id == Payment.id)
            .where(Refund.id == data["refund_id"])
        )
    if event.kind == "settlement.created" and isinstance(data.get("merchant_id"), str):
        return callbacks.merchant_for(uow, data["merchant_id"])
    return None


def body_text(event: InboundEvent) -> str:
    """The raw body as text (a byte that is not UTF-8 shows as U+FFFD)."""
    if not event.body and (event.headers or {}).get("archived_as"):
        return f"(stored apart: {event.headers['archived_as']})"
    return bytes(event.body).decode("utf-8", errors="replace")


def replay(
    db: Database, event_id: int, settings: SettlementSettings, merchant_id: int | None = None
) -> Replayed:
    """Process a stored event again (idempotently; see the module) and say what became of it;
    the replay is audited (it can move a payment or import a file)."""
    done = _replay(db, event_id, settings, merchant_id)
    with db.unit_of_work() as uow:
        event = get_event(uow, event_id)
        audit.record(
            uow,
            "event.replayed",
            merchant_id=merchant_id if merchant_id is not None else event_merchant(uow, event),
            target=("inbound_event", event_id),
            before={"status": done.before},
            after={"status": done.after, "source": done.source, "note": done.note},
        )
        uow.commit()
    return done


def _replay(
    db: Database, event_id: int, settings: SettlementSettings, merchant_id: int | None
) -> Replayed:
    with db.unit_of_work() as uow:
        event = get_event(uow, event_id, merchant_id)
        source, before = event.source, event.status
        if source == callbacks.SOURCE:
            after = callbacks.replay_event(uow, event_id).value
            uow.commit()
            note = "applied again by its handler; a processed event changes nothing"
            return Replayed(event_id, source, before, after, note)
        if source != raw_files.SOURCE:
            raise InvalidInput(f"events from {source!r} cannot be replayed here")
        return _replay_file(uow, event, settings, before)


def _replay_file(
    uow: UnitOfWork, event: InboundEvent, settings: SettlementSettings, before: str
) -> Replayed:
    known = uow.session.scalar(
        select(SettlementFile.id).where(SettlementFile.content_hash == event.content_hash)
    )
    if known is not None:
        note = f"already imported as settlement file {known}: nothing changed"
        return Replayed(event.id, event.source, before, event.status, note)
    name = Path(str((event.headers or {}).get("filename") or "settlement.dat")).name
    archived = (event.headers or {}).get("archived_as")
    with tempfile.TemporaryDirectory() as folder:
        path = Path(str(archived)) if archived else Path(folder) / name
        if not archived:
            path.write_bytes(event.body)
        try:
            summary = file_import.import_settlement_file(uow, path, settings)
        except InvalidSettlementFile as exc:
            return Replayed(event.id, event.source, before, "rejected", str(exc))
    note = f"imported: {summary.entries} entries"
    return Replayed(event.id, event.source, before, "processed", note)


def _filtered(wanted: EventFilter) -> Any:
    query = select(InboundEvent).where(InboundEvent.source.in_(SOURCES))
    if wanted.source:
        query = query.where(InboundEvent.source == wanted.source)
    if wanted.kind:
        query = query.where(InboundEvent.kind == wanted.kind)
    if wanted.status:
        query = query.where(InboundEvent.status == wanted.status)
    return query


def _data(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    data = document.get("data") if isinstance(document, dict) else None
    return data if isinstance(data, dict) else {}


def _file_merchant(uow: UnitOfWork, event: InboundEvent) -> int | None:
    file_id = uow.session.scalar(
        select(SettlementFile.id).where(SettlementFile.inbound_event_id == event.id)
    )
    if file_id is None:
        return None
    accounts = set(
        uow.session.scalars(
            select(SettlementStatement.account).where(SettlementStatement.file_id == file_id)
        )
    )
    for merchant in uow.session.scalars(select(Merchant).order_by(Merchant.id)):
        if accounts & {str(a) for a in (merchant.settlement_accounts or [])}:
            return merchant.id
    return None
