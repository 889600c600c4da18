"""E-receipts: a paid payment's receipt, opened by the customer through an unguessable link.

A link carries a random token (``secrets.token_urlsafe``, 192 bits); only its SHA-256 is
stored, so neither the database nor its backups open a receipt, and tokens cannot be
enumerated. Each link ends after ``[receipts] link_days``. The receipt itself is read from the
payment and its sale when it is opened, so a refund made since shows on it.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import Merchant, Payment, ReceiptLink, Refund, Store, utcnow
from gateway.adapters.promotion_models import Customer, Sale
from gateway.domain import receipt as rules
from gateway.domain.payment import PaymentStatus
from gateway.errors import Conflict, NotFound
from gateway.services.payments import payment_reads
from gateway.services.staff import audit
from gateway.services.staff.scope import Scope

TOKEN_BYTES = 24
# A receipt exists once the customer has paid (a card payment: once the terminal approved it).
RECEIPT_STATES = frozenset(
    {
        PaymentStatus.PAID,
        PaymentStatus.SETTLED,
        PaymentStatus.PARTIALLY_REFUNDED,
        PaymentStatus.REFUNDED,
        PaymentStatus.AUTHORISED,
    }
)


@dataclass(frozen=True, slots=True)
class IssuedLink:
    """A new link's token (shown once, never stored) and when the link ends."""

    token: str
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class ReceiptLine:
    name: str
    quantity: int
    amount_minor: int  # before discounts
    paid_minor: int  # after discounts


@dataclass(frozen=True, slots=True)
class ReceiptPromotion:
    kind: str  # the page names it for customers by its kind, never by its internal name
    discount_minor: int
    points: int
    gift: str | None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    payment_id: str | None
    bought_at: datetime
    store: str
    items: int
    total_minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Receipt:
    """Everything the receipt page shows; no full card number can be in it (the payment
    stores none, and the card and wallet are cut to their last four characters here)."""

    merchant: str
    store: str
    store_timezone: str
    till: str
    reference: str
    paid_at: datetime
    currency: str
    total_minor: int
    method: str
    card: str | None
    wallet: str | None
    lines: list[ReceiptLine] = field(default_factory=list)
    promotions: list[ReceiptPromotion] = field(default_factory=list)
    saved_minor: int = 0
    points_earned: int = 0
    draws: list[dict[str, str | None]] = field(default_factory=list)
    vat: list[rules.VatLine] = field(default_factory=list)
    refunded_minor: int = 0
    customer_id: int | None = None
    consent: bool | None = None


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue_link(
    uow: UnitOfWork, payment_id: str, scope: Scope | int, *, days: int, actor: str
) -> IssuedLink:
    """A new link to a paid payment's receipt (not committed). Each call makes another link;
    every link opens the same receipt until it ends."""
    payment = payment_reads.get_payment(uow, payment_id, scope)
    if payment.status not in RECEIPT_STATES:
        raise Conflict(f"payment {payment_id!r} is {payment.status}: only a paid one has a receipt")
    token = secrets.token_urlsafe(TOKEN_BYTES)
    now = utcnow()
    link = ReceiptLink(
        payment_id=payment.id,
        merchant_id=payment.merchant_id,
        token_hash=token_hash(token),
        expires_at=now + timedelta(days=days),
        created_by=actor[:64],
        created_at=now,
    )
    uow.session.add(link)
    uow.session.flush()
    return IssuedLink(token, link.expires_at)


def payment_for(uow: UnitOfWork, token: str, now: datetime | None = None) -> Payment:
    """The payment a link's token opens; an unknown or ended link is "not found" alike."""
    if not token or len(token) > 128:
        raise NotFound("no such receipt")
    link = uow.session.scalar(
        select(ReceiptLink).where(ReceiptLink.token_hash == token_hash(token))
    )
    if link is None or link.expires_at <= (now or utcnow()):
        raise NotFound("no such receipt")
    payment = uow.session.get_one(Payment, link.payment_id)
    if payment.status not in RECEIPT_STATES:  # a card payment reversed since: no sale
        raise NotFound("no such receipt")
    return payment


def receipt_of(uow: UnitOfWork, payment: Payment) -> Receipt:
    """The receipt of a paid payment, as it stands now."""
    merchant = uow.session.get_one(Merchant, payment.merchant_id)
    store = uow.session.get_one(Store, payment.store_id)
    sale = uow.session.get(Sale, payment.sale_id) if payment.sale_id else None
    refunded = sum(
        uow.session.scalars(
            select(Refund.amount_minor).where(
                Refund.payment_id == payment.id, Refund.status == "succeeded"
            )
        )
    )
    card = rules.masked_tail((payment.card or {}).get("masked_pan"))
    wallet = next(
        (
            rules.masked_tail(str(e.detail["wallet"]))
            for e in payment.events
            if e.detail.get("wallet")
        ),
        None,
    )
    out = Receipt(
        merchant=merchant.name,
        store=store.name,
        store_timezone=store.timezone or "UTC",
        till=payment.till.label,
        reference=rules.short_reference(payment.reference),
        paid_at=payment.paid_at or payment.updated_at,
        currency=payment.currency,
        total_minor=payment.amount_minor,
        method=payment.method,
        card=card,
        wallet=wallet,
        refunded_minor=int(refunded),
    )
    if sale is None:
        out.vat.extend(rules.vat_lines([("", payment.amount_minor)], store.vat_rates))
        return out
    out.lines.extend(
        ReceiptLine(
            ln["name"], int(ln["quantity"]), int(ln["original_minor"]), int(ln["final_minor"])
        )
        for ln in sale.lines
    )
    out.promotions.extend(
        ReceiptPromotion(
            a["kind"], int(a.get("discount_minor", 0)), int(a.get("points", 0)), a.get("gift")
        )
        for a in sale.applied
    )
    out.draws.extend(
        {"outcome": d.get("outcome"), "prize": d.get("prize")}
        for d in sale.request.get("draws", [])
    )
    out.vat.extend(
        rules.vat_lines(
            ((ln["category"], int(ln["final_minor"])) for ln in sale.lines), store.vat_rates
        )
    )
    customer = uow.session.get(Customer, sale.customer_id) if sale.customer_id else None
    return _with_sale(out, sale, customer)


def _with_sale(out: Receipt, sale: Sale, customer: Customer | None) -> Receipt:
    from dataclasses import replace

    return replace(
        out,
        saved_minor=sale.total_before_minor - sale.total_after_minor,
        points_earned=sale.points_earned,
        customer_id=customer.id if customer and customer.forgotten_at is None else None,
        consent=customer.marketing_consent if customer else None,
    )


def history(uow: UnitOfWork, customer_id: int, *, limit: int = 50) -> list[HistoryEntry]:
    """A customer's paid purchases, newest first: their consumption record."""
    rows = uow.session.execute(
        select(Sale, Store.name)
        .join(Store, Store.id == Sale.store_id)
        .where(Sale.customer_id == customer_id, Sale.status == "paid")
        .order_by(Sale.created_at.desc())
        .limit(limit)
    ).all()
    return [
        HistoryEntry(
            sale.payment_id,
            sale.created_at,
            store,
            sum(int(ln["quantity"]) for ln in sale.lines),
            sale.total_after_minor,
            sale.currency,
        )
        for sale, store in rows
    ]


def set_vat_rates(uow: UnitOfWork, store_id: int, rates: dict[str, int] | None) -> Store:
    """A store's VAT rates (basis points by category, "default" for the rest); None: none."""
    store = uow.session.get(Store, store_id)
    if store is None:
        raise NotFound(f"no store {store_id}")
    before = store.vat_rates
    store.vat_rates = rates or None
    audit.record(
        uow,
        "store.vat_rates",
        target=("store", store.id),
        before={"vat_rates": before},
        after={"vat_rates": store.vat_rates},
        merchant_id=store.merchant_id,
        store_id=store.id,
    )
    return store
