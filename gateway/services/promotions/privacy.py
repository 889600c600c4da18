"""A customer's privacy: marketing consent, export of everything held about them, forgetting
them, and anonymising customers who stopped buying.

Forgetting keeps the money: payments, refunds, sales with their lines and totals, promotion
budgets and the audit trail stay as the law requires (books are kept for years). What goes is
who the customer was: their identity digests, the link from their sales to them, the
identities kept in those sales, their points, their unused personal coupons, and their consent.
The customer's row stays as a tombstone with a new random token, so rows that must keep a
customer (a referral, an experiment's exposure) point at nobody.
"""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, cast

from sqlalchemy import Table, delete, select, update

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import utcnow
from gateway.adapters.promotion_models import (
    CouponCode,
    Customer,
    CustomerIdentity,
    DrawEntry,
    PointsLot,
    PointsMovement,
    ReferralRow,
    Sale,
    SalePromotion,
)
from gateway.errors import InvalidInput, NotFound
from gateway.services import jobs
from gateway.services.promotions import customers
from gateway.services.staff import audit

CONSENT_SOURCES = ("till", "receipt", "portal")
RETENTION_JOB = "privacy.anonymise_inactive"
PERSONAL_REQUEST_KEYS = ("digests", "referral_code")  # what a sale's request says of who paid


def find(uow: UnitOfWork, key: bytes, merchant_id: int, given: customers.IdentityInput) -> Customer:
    """The customer a wallet id or member code names (looked up by its keyed hash)."""
    if not given.given:
        raise InvalidInput("name the customer: a wallet id or a member code")
    found = customers.identify(uow, merchant_id, customers.digests(key, merchant_id, given))
    if found.customer is None or found.customer.forgotten_at is not None:
        raise NotFound("no customer with that wallet id or member code")
    return found.customer


def record_consent(
    uow: UnitOfWork, customer: Customer, consent: bool, *, source: str, actor: str
) -> None:
    """The customer's answer to marketing, when and where it was given (audited)."""
    if source not in CONSENT_SOURCES:
        raise InvalidInput(f"consent source: expected one of {', '.join(CONSENT_SOURCES)}")
    if customer.marketing_consent is consent:
        return
    before = customer.marketing_consent
    customer.marketing_consent = consent
    customer.consent_at = utcnow()
    customer.consent_source = source
    audit.record(
        uow,
        "customer.consent",
        target=("customer", customer.id),
        before={"marketing_consent": before},
        after={"marketing_consent": consent, "source": source},
        actor=actor,
        merchant_id=customer.merchant_id,
    )


def export(uow: UnitOfWork, customer: Customer, *, actor: str) -> dict[str, Any]:
    """Everything held about the customer, as JSON-ready values (audited: who looked)."""
    cid = customer.id
    sales = list(
        uow.session.scalars(select(Sale).where(Sale.customer_id == cid).order_by(Sale.created_at))
    )
    out = {
        "customer": {
            "token": customer.token,
            "referral_code": customer.referral_code,
            "purchases": customer.purchases,
            "spend_minor": customer.spend_minor,
            "spend_currency": customer.spend_currency,
            "first_purchase_at": _iso(customer.first_purchase_at),
            "last_purchase_at": _iso(customer.last_purchase_at),
            "created_at": _iso(customer.created_at),
            "marketing_consent": customer.marketing_consent,
            "consent_at": _iso(customer.consent_at),
            "consent_source": customer.consent_source,
        },
        # Kassa never keeps a wallet id, member code or phone number in clear: these are the
        # keyed hashes it recognises the customer by.
        "identities": [
            {"kind": i.kind, "digest": i.digest, "created_at": _iso(i.created_at)}
            for i in uow.session.scalars(
                select(CustomerIdentity).where(CustomerIdentity.customer_id == cid)
            )
        ],
        "sales": [
            {
                "id": s.id,
                "payment_id": s.payment_id,
                "status": s.status,
                "created_at": _iso(s.created_at),
                "currency": s.currency,
                "lines": s.lines,
                "total_before_minor": s.total_before_minor,
                "total_after_minor": s.total_after_minor,
                "refunded_minor": s.refunded_minor,
                "points_earned": s.points_earned,
                "points_redeemed": s.points_redeemed,
                "promotions": [
                    {"kind": a["kind"], "discount_minor": a["discount_minor"]} for a in s.applied
                ],
                "gifts": s.gifts,
            }
            for s in sales
        ],
        "points_lots": [
            {
                "points": p.points,
                "remaining": p.remaining,
                "source": p.source,
                "earned_at": _iso(p.earned_at),
                "expires_at": _iso(p.expires_at),
            }
            for p in uow.session.scalars(select(PointsLot).where(PointsLot.customer_id == cid))
        ],
        "coupons": [
            {"code": c.code, "status": c.status, "expires_at": _iso(c.expires_at)}
            for c in uow.session.scalars(select(CouponCode).where(CouponCode.customer_id == cid))
        ],
        "draws": [
            {"sale_id": d.sale_id, "outcome": d.outcome, "prize": d.prize_name}
            for d in uow.session.scalars(select(DrawEntry).where(DrawEntry.customer_id == cid))
        ],
        "referrals": [
            {
                "as": "referrer" if r.referrer_id == cid else "referee",
                "state": r.state,
                "created_at": _iso(r.created_at),
            }
            for r in uow.session.scalars(
                select(ReferralRow).where(
                    (ReferralRow.referrer_id == cid) | (ReferralRow.referee_id == cid)
                )
            )
        ],
    }
    audit.record(
        uow,
        "customer.export",
        target=("customer", customer.id),
        actor=actor,
        merchant_id=customer.merchant_id,
    )
    return out


def forget(uow: UnitOfWork, customer: Customer, *, actor: str, reason: str) -> dict[str, int]:
    """Anonymise the customer (not committed; audited). Returns what was removed or cut."""
    cid = customer.id
    counts = _anonymise(uow, customer)
    audit.record(
        uow,
        "customer.forget",
        target=("customer", cid),
        after={"reason": reason[:200], **counts},
        actor=actor,
        merchant_id=customer.merchant_id,
    )
    return counts


def anonymise_inactive(uow: UnitOfWork, *, inactive_since: datetime) -> int:
    """Anonymise every customer whose last purchase (or, never buying, their enrolment) was
    before ``inactive_since``; the worker runs this daily. Returns how many."""
    last_seen = Customer.last_purchase_at
    stale = list(
        uow.session.scalars(
            select(Customer).where(
                Customer.forgotten_at.is_(None),
                ((last_seen.is_not(None)) & (last_seen < inactive_since))
                | ((last_seen.is_(None)) & (Customer.created_at < inactive_since)),
            )
        )
    )
    for customer in stale:
        counts = _anonymise(uow, customer)
        audit.record(
            uow,
            "customer.anonymise_inactive",
            target=("customer", customer.id),
            after=counts,
            actor="system:retention",
            merchant_id=customer.merchant_id,
        )
    return len(stale)


def schedule_retention(uow: UnitOfWork, day: date) -> None:
    """Queue the inactive customers' anonymisation for 03:30 UTC after ``day``, once (the
    worker calls this at start, and each run queues the next)."""
    at = datetime.combine(day + timedelta(days=1), time(3, 30), tzinfo=UTC)
    key = f"{RETENTION_JOB}:{day.isoformat()}"
    jobs.enqueue_once(uow, RETENTION_JOB, {"day": day.isoformat()}, run_at=at, dedupe_key=key)


def _anonymise(uow: UnitOfWork, customer: Customer) -> dict[str, int]:
    cid = customer.id
    s = uow.session
    identities = s.execute(delete(CustomerIdentity).where(CustomerIdentity.customer_id == cid))
    sales = list(s.scalars(select(Sale).where(Sale.customer_id == cid)))
    for sale in sales:  # the money stays; who bought it and the digests in its request go
        sale.customer_id = None
        sale.request = {
            k: v for k, v in sale.request.items() if k not in ("digests", "referral_code")
        }
    s.execute(
        update(SalePromotion).where(SalePromotion.customer_id == cid).values(customer_id=None)
    )
    s.execute(update(DrawEntry).where(DrawEntry.customer_id == cid).values(customer_id=None))
    coupons = cast(Table, CouponCode.__table__)
    unused = s.execute(
        delete(coupons).where(coupons.c.customer_id == cid, coupons.c.status == "available")
    )
    s.execute(update(coupons).where(coupons.c.customer_id == cid).values(customer_id=None))
    s.execute(delete(PointsMovement).where(PointsMovement.customer_id == cid))
    points = s.execute(delete(PointsLot).where(PointsLot.customer_id == cid))
    # Referrals and experiment exposures keep their customer: the tombstone, named by nobody.
    customer.token = "gone_" + secrets.token_hex(12)
    customer.referral_code = "X" + secrets.token_hex(7).upper()
    customer.purchases = 0
    customer.spend_minor = 0
    customer.first_purchase_at = None
    customer.last_purchase_at = None
    customer.marketing_consent = None
    customer.consent_at = None
    customer.consent_source = None
    customer.forgotten_at = utcnow()
    s.flush()
    return {
        "identities": int(identities.rowcount or 0),  # type: ignore[attr-defined]
        "sales": len(sales),
        "points_lots": int(points.rowcount or 0),  # type: ignore[attr-defined]
        "unused_coupons": int(unused.rowcount or 0),  # type: ignore[attr-defined]
    }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None
