"""Managers' use cases for promotions: create, schedule, pause, resume and end them, run them
as A/B tests, and issue batch coupon codes. What they have used is read in ``promotion_reads``.

A promotion's ``state`` is what a manager decided (``draft → active ⇄ paused → ended``; ended
is final); its *status* is what a customer sees now: ``draft``, ``scheduled`` (active, starts
later), ``live``, ``paused`` or ``finished`` (ended, or past its end). Every change is audited
in ``promotion_changes``. Nothing here commits: the entry point does, once.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import utcnow
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    Experiment,
    PromotionChange,
    PromotionRow,
)
from gateway.domain.promotions import experiments as domain_experiments
from gateway.domain.promotions.spec import promotion_from_spec, spec_of
from gateway.errors import Conflict, InvalidInput, NotFound
from gateway.services.staff import audit

KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
STATUSES = ("draft", "scheduled", "live", "paused", "finished")
# Crockford's base32 without I, L, O and U: nothing a cashier can misread or mistype.
CODE_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
CODE_LENGTH = 10
MAX_COUPONS = 10_000


def _key(value: str, what: str = "key") -> str:
    value = (value or "").strip()
    if not KEY.fullmatch(value):
        raise InvalidInput(
            f"{what}: 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return value


def _name(value: str) -> str:
    value = (value or "").strip()
    if not value or len(value) > 120:
        raise InvalidInput("name: expected a text of 1 to 120 characters")
    return value


def _audit(
    uow: UnitOfWork, row: PromotionRow, action: str, actor: str, **detail: Any
) -> PromotionChange:
    change = PromotionChange(
        promotion_id=row.id, action=action, actor=actor, detail=detail, created_at=utcnow()
    )
    uow.session.add(change)
    audit.record(
        uow,
        f"promotion.{action}",
        actor=actor,
        merchant_id=row.merchant_id,
        target=("promotion", row.key),
        after=detail,
    )
    return change


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def _check_dates(starts_at: datetime | None, ends_at: datetime | None) -> None:
    for label, moment in (("starts_at", starts_at), ("ends_at", ends_at)):
        if moment is not None and moment.tzinfo is None:
            raise InvalidInput(f"{label}: a time with its time zone is expected")
    if starts_at is not None and ends_at is not None and ends_at <= starts_at:
        raise InvalidInput("ends_at: the end must be after the start")


def _flush(uow: UnitOfWork, conflict: str) -> None:
    """Flush; a unique key taken meanwhile by a concurrent request is a ``Conflict``."""
    try:
        uow.session.flush()
    except IntegrityError:
        raise Conflict(conflict) from None


def get_experiment(uow: UnitOfWork, merchant_id: int, key: str) -> Experiment:
    row = uow.session.scalar(
        select(Experiment).where(Experiment.merchant_id == merchant_id, Experiment.key == key)
    )
    if row is None:
        raise NotFound(f"no experiment {key!r} for this merchant")
    return row


def get_promotion(uow: UnitOfWork, merchant_id: int, key: str) -> PromotionRow:
    row = uow.session.scalar(
        select(PromotionRow).where(PromotionRow.merchant_id == merchant_id, PromotionRow.key == key)
    )
    if row is None:
        raise NotFound(f"no promotion {key!r} for this merchant")
    return row


def create_promotion(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    key: str,
    name: str,
    kind: str,
    spec: Mapping[str, Any],
    starts_at: datetime | None,
    ends_at: datetime | None,
    actor: str,
    experiment_key: str | None = None,
    variant: str | None = None,
) -> PromotionRow:
    """A draft promotion from its JSON spec; every wrong field is named in ``InvalidInput``."""
    key, name = _key(key), _name(name)
    if not isinstance(spec, Mapping):
        raise InvalidInput("a promotion's spec is a JSON object")
    _check_dates(starts_at, ends_at)
    experiment = None
    if experiment_key:
        try:
            experiment = get_experiment(uow, merchant_id, experiment_key)
        except NotFound:
            raise InvalidInput(f"experiment: no experiment {experiment_key!r}") from None
        names = [v["name"] for v in experiment.variants]
        if variant not in names:
            raise InvalidInput(f"variant: expected one of {', '.join(names)}, got {variant!r}")
    elif variant:
        raise InvalidInput("variant: choose the experiment it belongs to as well")
    promotion = promotion_from_spec(
        key,
        kind,
        {**spec, "name": name},
        experiment=experiment.key if experiment else None,
        variant=variant if experiment else None,
    )
    if uow.session.scalar(
        select(PromotionRow.id).where(
            PromotionRow.merchant_id == merchant_id, PromotionRow.key == key
        )
    ):
        raise Conflict(f"key: this merchant already has a promotion {key!r}; choose another key")
    limits, targeting = promotion.limits, promotion.targeting
    row = PromotionRow(
        merchant_id=merchant_id,
        key=key,
        name=name,
        kind=kind,
        spec=spec_of(promotion),
        state="draft",
        starts_at=starts_at,
        ends_at=ends_at,
        currency=targeting.currency,
        budget_minor=limits.budget_minor,
        count_limit=limits.global_count,
        used_count=0,
        used_money_minor=0,
        experiment_id=experiment.id if experiment else None,
        variant=variant if experiment else None,
        created_by=actor,
    )
    uow.session.add(row)
    _flush(uow, f"key: this merchant already has a promotion {key!r}; choose another key")
    _audit(uow, row, "created", actor, kind=kind, starts_at=_iso(starts_at), ends_at=_iso(ends_at))
    uow.session.flush()
    return row


def status_of(row: PromotionRow, now: datetime) -> str:
    """What the promotion is now: draft, scheduled, live, paused or finished."""
    if row.state == "draft":
        return "draft"
    if row.state == "ended" or (row.ends_at is not None and row.ends_at <= now):
        return "finished"
    if row.state == "paused":
        return "paused"
    if row.starts_at is not None and row.starts_at > now:
        return "scheduled"
    return "live"


def _refuse(row: PromotionRow, verb: str, allowed: str) -> Conflict:
    if row.state == "ended":
        return Conflict(
            f"promotion {row.key!r} has ended, and ending is final: create a new promotion "
            "to run it again"
        )
    return Conflict(
        f"promotion {row.key!r} is {row.state}; only {allowed} promotion can be {verb}",
        current_state=row.state,
    )


def activate(
    uow: UnitOfWork,
    merchant_id: int,
    key: str,
    *,
    actor: str,
    starts_at: datetime | None = None,
    ends_at: datetime | None = None,
    now: datetime | None = None,
) -> PromotionRow:
    """Make a draft active: live at once, or scheduled when it starts later."""
    row = get_promotion(uow, merchant_id, key)
    if row.state != "draft":
        raise _refuse(row, "activated or scheduled", "a draft")
    starts_at = starts_at if starts_at is not None else row.starts_at
    ends_at = ends_at if ends_at is not None else row.ends_at
    _check_dates(starts_at, ends_at)
    if ends_at is not None and ends_at <= (now or utcnow()):
        raise InvalidInput("ends_at: the end is already past; choose a later end")
    row.starts_at, row.ends_at, row.state = starts_at, ends_at, "active"
    action = "scheduled" if starts_at and starts_at > (now or utcnow()) else "activated"
    _audit(uow, row, action, actor, starts_at=_iso(starts_at), ends_at=_iso(ends_at))
    uow.session.flush()
    return row


def pause(uow: UnitOfWork, merchant_id: int, key: str, *, actor: str) -> PromotionRow:
    """Stop an active promotion for now; its uses and budget are kept."""
    row = get_promotion(uow, merchant_id, key)
    if row.state != "active":
        raise _refuse(row, "paused", "an active")
    row.state = "paused"
    _audit(uow, row, "paused", actor)
    uow.session.flush()
    return row


def resume(uow: UnitOfWork, merchant_id: int, key: str, *, actor: str) -> PromotionRow:
    row = get_promotion(uow, merchant_id, key)
    if row.state != "paused":
        raise _refuse(row, "resumed", "a paused")
    row.state = "active"
    _audit(uow, row, "resumed", actor)
    uow.session.flush()
    return row


def end(
    uow: UnitOfWork, merchant_id: int, key: str, *, actor: str, now: datetime | None = None
) -> PromotionRow:
    """End a promotion for good; its history (sales, uses, coupons) stays."""
    row = get_promotion(uow, merchant_id, key)
    if row.state == "ended":
        raise _refuse(row, "ended", "")
    previous, row.state = row.state, "ended"
    moment = now or utcnow()
    if row.ends_at is None or row.ends_at > moment:
        row.ends_at = moment
    _audit(uow, row, "ended", actor, previous_state=previous)
    uow.session.flush()
    return row


def create_experiment(
    uow: UnitOfWork,
    merchant_id: int,
    *,
    key: str,
    name: str,
    variants: Sequence[tuple[str, int]],
    holdout_bp: int,
    control: str,
) -> Experiment:
    """An A/B test's variants (in bucket order), holdout share and control variant."""
    key, name = _key(key), _name(name)
    try:
        domain = domain_experiments.Experiment(
            key,
            tuple(domain_experiments.Variant(str(n).strip(), w) for n, w in variants),
            holdout_bp,
        )
    except InvalidInput as exc:
        raise InvalidInput(f"variants: {exc.message}") from None
    names = [v.name for v in domain.variants]
    if any(not n or len(n) > 32 for n in names):
        raise InvalidInput("variants: a variant's name is 1 to 32 characters")
    if control not in names:
        raise InvalidInput(f"control: expected one of {', '.join(names)}, got {control!r}")
    if uow.session.scalar(
        select(Experiment.id).where(Experiment.merchant_id == merchant_id, Experiment.key == key)
    ):
        raise Conflict(f"key: this merchant already has an experiment {key!r}")
    row = Experiment(
        merchant_id=merchant_id,
        key=key,
        name=name,
        variants=[{"name": v.name, "weight": v.weight} for v in domain.variants],
        holdout_bp=holdout_bp,
        control=control,
        created_at=utcnow(),
    )
    uow.session.add(row)
    _flush(uow, f"key: this merchant already has an experiment {key!r}")
    audit.record(
        uow,
        "experiment.created",
        merchant_id=merchant_id,
        target=("experiment", key),
        after={"variants": row.variants, "holdout_bp": holdout_bp, "control": control},
    )
    return row


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


def issue_coupons(
    uow: UnitOfWork,
    promotion: PromotionRow,
    *,
    count: int,
    expires_at: datetime | None = None,
    customer_ids: Sequence[int] | None = None,
    actor: str = "system",
) -> list[str]:
    """Unique single-use codes of a batch coupon (one per customer when ``customer_ids``)."""
    if promotion.kind != "coupon" or not promotion.spec.get("batch"):
        raise InvalidInput(f"promotion {promotion.key!r} is not a batch coupon: it has no codes")
    if promotion.state == "ended":
        raise Conflict(f"promotion {promotion.key!r} has ended; it takes no new codes")
    if customer_ids is not None:
        count = len(customer_ids)
        _check_customers(uow, promotion.merchant_id, customer_ids)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUPONS:
        raise InvalidInput(f"count: expected 1 to {MAX_COUPONS} codes at a time, got {count!r}")
    if expires_at is not None and expires_at.tzinfo is None:
        raise InvalidInput("expires_at: a time with its time zone is expected")
    codes = _fresh_codes(uow, promotion.merchant_id, count)
    now = utcnow()
    owners: Iterable[int | None] = customer_ids if customer_ids is not None else [None] * count
    rows = [
        {
            "merchant_id": promotion.merchant_id,
            "promotion_id": promotion.id,
            "code": code,
            "customer_id": owner,
            "expires_at": expires_at,
            "status": "available",
            "created_at": now,
        }
        for code, owner in zip(codes, owners, strict=True)
    ]
    try:
        uow.session.execute(insert(CouponCode), rows)
    except IntegrityError:
        raise Conflict("codes were issued at the same moment by someone else; try again") from None
    _audit(uow, promotion, "coupons_issued", actor, count=count, expires_at=_iso(expires_at))
    uow.session.flush()
    return codes


def _check_customers(uow: UnitOfWork, merchant_id: int, customer_ids: Sequence[int]) -> None:
    wanted = set(customer_ids)
    found = set(
        uow.session.scalars(
            select(Customer.id).where(Customer.merchant_id == merchant_id, Customer.id.in_(wanted))
        )
    )
    if missing := wanted - found:
        raise InvalidInput(f"customer_ids: no customer {min(missing)} of this merchant")


def _fresh_codes(uow: UnitOfWork, merchant_id: int, count: int) -> list[str]:
    """``count`` codes unused by this merchant; a collision (about 1 in 10^15) draws again."""
    codes: set[str] = set()
    while len(codes) < count:
        batch = {new_code() for _ in range(count - len(codes))} - codes
        taken: set[str] = set()
        chunk = sorted(batch)
        for i in range(0, len(chunk), 500):
            taken.update(
                uow.session.scalars(
                    select(CouponCode.code).where(
                        CouponCode.merchant_id == merchant_id,
                        CouponCode.code.in_(chunk[i : i + 500]),
                    )
                )
            )
        codes |= batch - taken
    return sorted(codes)
