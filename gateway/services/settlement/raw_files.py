"""A settlement file kept as it came, minus its card numbers: an inbound event stored (and
committed) before the file is parsed, with the file's bytes as its body, or for a file over
``[settlement] store_max_bytes`` a copy under ``archive_dir`` named by its SHA-256.

Either way every card number is masked first (:mod:`gateway.domain.card_data`); the event's
hash is the original file's, so the same file is recognised when it comes again.
"""

from __future__ import annotations

import io
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import InboundEvent
from gateway.adapters.settlement_files import scrub_copy
from gateway.domain.card_data import scrub_card_numbers
from gateway.settings import SettlementSettings

SOURCE = "settlement_file"


def store_raw(
    uow: UnitOfWork,
    path: Path,
    content_hash: str,
    size: int,
    kind: str,
    settings: SettlementSettings,
) -> InboundEvent:
    """The raw file (card numbers masked) as an inbound event, committed. The masked body or
    copy is made before the transaction begins, so nothing is held while it is written."""
    headers: dict[str, Any] = {"filename": scrub_card_numbers(path.name), "size": size}
    body = b""
    if size <= settings.store_max_bytes:
        with path.open("rb") as source, io.BytesIO() as copy:
            scrub_copy(source, copy)
            body = copy.getvalue()
    else:
        headers["archived_as"] = str(archive(path, content_hash, settings))
    session = uow.session
    event = session.scalar(
        select(InboundEvent).where(
            InboundEvent.source == SOURCE, InboundEvent.external_id == content_hash
        )
    )
    if event is None:
        event = InboundEvent(
            source=SOURCE,
            external_id=content_hash,
            kind=kind,
            headers=headers,
            body=body,
            content_hash=content_hash,
        )
        session.add(event)
    event.status, event.error = "received", None
    uow.commit()
    return event


def archive(path: Path, content_hash: str, settings: SettlementSettings) -> Path:
    """A copy of the file, card numbers masked, readable by its owner only."""
    directory = Path(settings.archive_dir)  # absolute: load_config resolves it
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / content_hash
    if not target.exists():
        draft = target.with_suffix(".part")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with path.open("rb") as source, os.fdopen(fd, "wb") as copy:
            scrub_copy(source, copy)
        draft.replace(target)
    return target


def mark(uow: UnitOfWork, event: InboundEvent, status: str, error: str | None) -> None:
    """The event's outcome (``processed``, or ``rejected`` with the reason, masked)."""
    event.status = status
    event.error = None if error is None else scrub_card_numbers(error)
    event.processed_at = datetime.now(UTC)
    uow.commit()
