"""Alerts: raised by the rules (one open alert per rule, subject and window), read in the
portal within the reader's scope, and acknowledged by a person with a note (audited).

An alert is raised in the unit of work of the event that caused it. A later event of the same
rule, subject and window updates the open alert (its numbers, its count of occurrences, the
worse severity) instead of raising another; once acknowledged, the next event raises a new one.
Only a new alert is announced to the merchant's systems (:func:`_notify`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select, update
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Alert, Store, Till, utcnow
from gateway.domain.card_data import scrub_card_numbers, scrub_json
from gateway.domain.monitoring import Rule, Severity, Verdict, window_key
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope, narrow
from gateway.services.webhooks import outbox

OPEN = "open"
ACKNOWLEDGED = "acknowledged"
STATUSES = (OPEN, ACKNOWLEDGED)
NOTE_MAX = 1000


@dataclass(frozen=True, slots=True)
class Where:
    """Where an anomaly happened: the merchant, and the store and till when there is one."""

    merchant_id: int
    store_id: int | None = None
    till_id: int | None = None


def raise_alert(uow: UnitOfWork, verdict: Verdict, where: Where, at: datetime) -> Alert:
    """The open alert for this verdict's rule, subject and window: raised now, or updated with
    the newer numbers if one is open already (not committed)."""
    window = window_key(at, verdict.window_minutes)
    key = f"{verdict.rule}|{where.merchant_id}|{verdict.subject}|{window}"[:200]
    facts = scrub_json(verdict.facts)
    existing = _bump(uow, key, verdict, facts, at)
    if existing is not None:
        return existing
    alert = Alert(
        merchant_id=where.merchant_id,
        store_id=where.store_id,
        till_id=where.till_id,
        rule=verdict.rule.value,
        severity=verdict.severity.value,
        subject_kind=verdict.subject.kind[:16],
        subject_key=verdict.subject.key[:100],
        window_key=window,
        window_minutes=verdict.window_minutes,
        facts=facts,
        occurrences=1,
        raised_at=at,
        last_seen_at=at,
        status=OPEN,
        open_key=key,
    )
    try:
        with uow.session.begin_nested():
            uow.session.add(alert)
    except IntegrityError:  # a concurrent event raised it first: update theirs
        existing = _bump(uow, key, verdict, facts, at)
        if existing is None:
            raise
        return existing
    _notify(uow, alert)
    return alert


def _bump(
    uow: UnitOfWork, key: str, verdict: Verdict, facts: dict[str, Any], at: datetime
) -> Alert | None:
    """The open alert under ``key`` updated with a later event's numbers, in one statement
    (UPDATE … RETURNING), or None when none is open. No locked read first: a busy till's
    every payment would otherwise read and lock the row, then write it at the next flush; the
    UPDATE takes the same row lock once, and ``occurrences + 1`` and the later ``last_seen_at``
    are computed by the database, so concurrent events still all count."""
    values: dict[str, Any] = {
        "facts": facts,
        "occurrences": Alert.occurrences + 1,
        "last_seen_at": case((Alert.last_seen_at < at, at), else_=Alert.last_seen_at),
    }
    if verdict.severity == Severity.CRITICAL:
        values["severity"] = Severity.CRITICAL.value
    return uow.session.scalars(
        update(Alert)
        .where(Alert.open_key == key)
        .values(**values)
        .returning(Alert)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).first()


def notification(alert: Alert) -> dict[str, Any]:
    """What the merchant's systems are told about a new alert (``alert.raised``)."""
    return {
        "id": alert.id,
        "rule": alert.rule,
        "severity": alert.severity,
        "store_id": alert.store_id,
        "till_id": alert.till_id,
        "subject": {"kind": alert.subject_kind, "key": alert.subject_key},
        "window": {"start": alert.window_key, "minutes": alert.window_minutes},
        "facts": alert.facts,
        "raised_at": alert.raised_at.isoformat(),
    }


def _notify(uow: UnitOfWork, alert: Alert) -> dict[str, Any]:
    """Announce a new alert to the merchant's webhook endpoints, in the same transaction;
    returns what is announced."""
    uow.session.flush()  # the alert's id
    data = notification(alert)
    merchant_id = str(alert.merchant_id)
    outbox.publish(uow, merchant_id=merchant_id, event_type="alert.raised", data=data)
    return {"merchant_id": merchant_id, "event_type": "alert.raised", "data": data}


# -- reading ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AlertRow:
    alert: Alert
    store_name: str | None
    till_label: str | None


def list_alerts(
    uow: UnitOfWork,
    scope: Scope,
    *,
    status: str | None = None,
    rule: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> tuple[list[AlertRow], int]:
    """The alerts inside ``scope``, newest first, and how many there are in all.

    Staff bound to one store see that store's alerts only; alerts about no store (a card used
    in several stores, a person without a store) are for those who see every store.
    """
    if status is not None and status not in STATUSES:
        raise InvalidInput(f"an alert's status is one of {', '.join(STATUSES)}, not {status!r}")
    if rule is not None and rule not in {r.value for r in Rule}:
        raise InvalidInput(f"no rule {rule!r}")
    where = narrow(scope, Alert.merchant_id, Alert.store_id)
    if status:
        where = where & (Alert.status == status)
    if rule:
        where = where & (Alert.rule == rule)
    total = uow.session.scalar(select(func.count()).select_from(Alert).where(where)) or 0
    rows = uow.session.execute(
        select(Alert, Store.name, Till.label)
        .outerjoin(Store, Store.id == Alert.store_id)
        .outerjoin(Till, Till.id == Alert.till_id)
        .where(where)
        .order_by(Alert.raised_at.desc(), Alert.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return [AlertRow(a, s, t) for a, s, t in rows], total


def get_alert(uow: UnitOfWork, alert_id: int, scope: Scope) -> AlertRow:
    row = uow.session.execute(
        select(Alert, Store.name, Till.label)
        .outerjoin(Store, Store.id == Alert.store_id)
        .outerjoin(Till, Till.id == Alert.till_id)
        .where(Alert.id == alert_id, narrow(scope, Alert.merchant_id, Alert.store_id))
    ).first()
    if row is None:
        raise NotFound(f"no alert {alert_id} for this merchant")
    return AlertRow(*row)


def count_open(uow: UnitOfWork, scope: Scope) -> int:
    """How many alerts inside ``scope`` wait for a person (the portal bar's number)."""
    where = narrow(scope, Alert.merchant_id, Alert.store_id) & (Alert.status == OPEN)
    return uow.session.scalar(select(func.count()).select_from(Alert).where(where)) or 0


def acknowledge(
    uow: UnitOfWork,
    alert_id: int,
    scope: Scope,
    *,
    note: str,
    actor: str,
    now: datetime | None = None,
) -> Alert:
    """A person has looked at the alert: it is closed with their note (required), audited;
    not committed. The next event of its rule and subject raises a new one."""
    alert = uow.session.scalars(
        select(Alert)
        .where(Alert.id == alert_id, narrow(scope, Alert.merchant_id, Alert.store_id))
        .with_for_update()
    ).first()
    if alert is None:
        raise NotFound(f"no alert {alert_id} for this merchant")
    if alert.status != OPEN:
        raise Conflict(f"this alert was already acknowledged by {alert.acknowledged_by}")
    note = note.strip()
    if not note:
        raise InvalidInput("say what you found or did: a note is required to acknowledge")
    if len(note) > NOTE_MAX:
        raise InvalidInput(f"the note is longer than {NOTE_MAX} characters")
    alert.status = ACKNOWLEDGED
    alert.open_key = None
    alert.acknowledged_by = actor[:100]
    alert.acknowledged_at = now or utcnow()
    alert.note = scrub_card_numbers(note)  # "the customer showed card 4111…" is masked
    audit.record(
        uow,
        "alert.acknowledged",
        actor=actor,
        merchant_id=alert.merchant_id,
        store_id=alert.store_id,
        target=("alert", alert.id),
        before={"status": OPEN},
        after={"status": ACKNOWLEDGED, "rule": alert.rule, "note": note},
    )
    return alert
