"""Who is paying: a customer recognised by a wallet id, a member code, an NFC tag token or a
phone number, each kept only as a keyed hash, plus what promotions need to know of them.

An NFC tap identifies only through something stable the tag offers (the device host's
token: a loyalty application's member id, or a store card's fixed UID); a tap that offers
nothing stable (a phone's random UID) asks the cashier for the member code or wallet QR.

Identities are HMAC-SHA256 digests under the merchant's identity key (``[promotions]
identity_key``), so a stolen database names nobody. The first identity found wins, in the
order member code, wallet id, NFC tag, phone; identities given alongside it that are new are
linked to the same customer when the customer pays.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import CustomerTap, Merchant, utcnow
from gateway.adapters.promotion_models import Customer, CustomerIdentity, PointsLot, Sale
from gateway.domain import promotions as promo
from gateway.errors import InvalidInput

KINDS = ("member", "wallet", "nfc", "phone")  # the order in which identities are trusted
PHONE = re.compile(r"^\+?[0-9]{8,15}$")
REFERRAL_ALPHABET = "23456789ABCDEFGHJKMNPQRSTVWXYZ"


class EnrolRace(Exception):
    """Another till enrolled this new customer a moment ago: price the sale again."""


@dataclass(frozen=True, slots=True)
class IdentityInput:
    """What the till knows of the customer; every field is optional."""

    wallet_id: str | None = None
    member_code: str | None = None
    nfc_token: str | None = None
    phone: str | None = None
    # The customer's answer to marketing at the till (None: not asked this time).
    marketing_consent: bool | None = None

    @property
    def given(self) -> bool:
        return any((self.wallet_id, self.member_code, self.nfc_token, self.phone))


@dataclass(frozen=True, slots=True)
class Identified:
    """The customer found (or ``None`` for a first-time customer) and the digests presented."""

    customer: Customer | None
    digests: tuple[tuple[str, str], ...]

    @property
    def key(self) -> str:
        """A stable key for experiment assignment and the domain's ``Customer.id_token``:
        the token the customer has, or will be given when enrolled."""
        if self.customer is not None:
            return self.customer.token
        return token_for(self.digests[0][1])


def token_for(digest: str) -> str:
    """A customer's opaque token, fixed at enrolment from their first identity's digest, so
    a new customer is in the same experiment group before and after their first purchase."""
    return "cus_" + digest[:24]


def normalised(kind: str, value: str) -> str:
    value = value.strip()
    if kind == "phone":
        value = re.sub(r"[\s().-]", "", value)
        if value.startswith("00"):
            value = "+" + value[2:]
        if not PHONE.match(value):
            raise InvalidInput("customer.phone: expected a phone number of 8 to 15 digits")
    elif kind == "member":
        value = value.upper()
    if not value or len(value) > 128:
        raise InvalidInput(f"customer.{kind}: expected 1 to 128 characters")
    return value


def digests(key: bytes, merchant_id: int, given: IdentityInput) -> tuple[tuple[str, str], ...]:
    """(kind, digest) of each identity given, in trust order."""
    values = {
        "member": given.member_code,
        "wallet": given.wallet_id,
        "nfc": given.nfc_token,
        "phone": given.phone,
    }
    out = []
    for kind in KINDS:
        raw = values[kind]
        if raw:
            message = f"{merchant_id}\x1f{kind}\x1f{normalised(kind, raw)}".encode()
            out.append((kind, hmac.new(key, message, hashlib.sha256).hexdigest()))
    return tuple(out)


def last_tap_token(uow: UnitOfWork, till_id: int, *, within: timedelta) -> str:
    """The token of the newest tag tapped on this till's reader, if recent enough."""
    tap = uow.session.scalar(
        select(CustomerTap)
        .where(CustomerTap.till_id == till_id, CustomerTap.seen_at >= utcnow() - within)
        .order_by(CustomerTap.seen_at.desc(), CustomerTap.id.desc())
        .limit(1)
    )
    if tap is None:
        seconds = int(within.total_seconds())
        raise InvalidInput(f"no card or phone was tapped on this till's reader in {seconds} s")
    if not tap.token:  # a phone or bank card without our loyalty app: its UID is random
        raise InvalidInput(
            "the card or phone tapped does not say who the customer is (a phone shows a new "
            "number at every tap): ask for the member code or scan the wallet QR"
        )
    return tap.token


def identify(
    uow: UnitOfWork, merchant_id: int, found: tuple[tuple[str, str], ...], *, lock: bool = False
) -> Identified:
    """The customer the digests name (row-locked with ``lock``), or none yet."""
    if not found:
        return Identified(None, ())
    rows = uow.session.execute(
        select(CustomerIdentity.kind, CustomerIdentity.customer_id).where(
            CustomerIdentity.merchant_id == merchant_id,
            CustomerIdentity.digest.in_([d for _, d in found]),
        )
    ).all()
    by_kind = {kind: customer_id for kind, customer_id in rows}
    customer_id = next((by_kind[k] for k, _ in found if k in by_kind), None)
    if customer_id is None:
        return Identified(None, found)
    query = select(Customer).where(Customer.id == customer_id)
    if lock:
        query = query.with_for_update()
    return Identified(uow.session.scalar(query), found)


def enrol(uow: UnitOfWork, merchant: Merchant, who: Identified) -> Customer:
    """The customer, created if new, with every presented identity linked (not committed).

    Two tills enrolling the same new customer at once: the second one's insert meets the
    unique digest and rolls back to its savepoint; ``EnrolRace`` tells the caller to price
    again, now for the customer the first till enrolled (no first-use discount twice).
    """
    customer = who.customer
    if customer is None:
        try:
            with uow.session.begin_nested():
                customer = Customer(
                    merchant_id=merchant.id,
                    token=token_for(who.digests[0][1]),
                    referral_code=_referral_code(),
                    spend_currency=merchant.default_currency,
                )
                uow.session.add(customer)
                uow.session.flush()
                _link(uow, merchant.id, customer, who.digests)
        except IntegrityError:
            raise EnrolRace() from None
    else:
        _link(uow, merchant.id, customer, who.digests)
    return customer


def _link(
    uow: UnitOfWork, merchant_id: int, customer: Customer, found: tuple[tuple[str, str], ...]
) -> None:
    known = set(
        uow.session.scalars(
            select(CustomerIdentity.digest).where(
                CustomerIdentity.merchant_id == merchant_id,
                CustomerIdentity.digest.in_([d for _, d in found]),
            )
        )
    )
    for kind, digest in found:
        if digest not in known:
            uow.session.add(
                CustomerIdentity(
                    merchant_id=merchant_id, kind=kind, digest=digest, customer_id=customer.id
                )
            )
    uow.session.flush()


def _referral_code() -> str:
    return "".join(secrets.choice(REFERRAL_ALPHABET) for _ in range(8))


def by_referral_code(uow: UnitOfWork, merchant_id: int, code: str) -> Customer:
    customer = uow.session.scalar(
        select(Customer).where(
            Customer.merchant_id == merchant_id, Customer.referral_code == code.strip().upper()
        )
    )
    if customer is None:
        raise InvalidInput(f"referral code {code!r} is unknown")
    return customer


def points_balance(uow: UnitOfWork, customer_id: int, now: datetime) -> int:
    """Points the customer can spend now: unexpired points left in their lots."""
    total = uow.session.scalar(
        select(func.coalesce(func.sum(PointsLot.remaining), 0)).where(
            PointsLot.customer_id == customer_id,
            PointsLot.remaining > 0,
            (PointsLot.expires_at.is_(None)) | (PointsLot.expires_at > now),
        )
    )
    return int(total or 0)


def open_sales(uow: UnitOfWork, customer_id: int, *, excluding: str | None = None) -> int:
    """Sales of this customer reserved for payment right now (they count as purchases)."""
    query = select(func.count()).where(Sale.customer_id == customer_id, Sale.status == "reserved")
    if excluding is not None:
        query = query.where(Sale.id != excluding)
    return int(uow.session.scalar(query) or 0)


def segment(customer: Customer | None, now: datetime, lapsed_after: timedelta) -> str:
    if customer is None or customer.purchases == 0:
        return "new"
    last = customer.last_purchase_at
    if last is not None and now - last > lapsed_after:
        return "lapsed"
    return "returning"


def as_domain(
    uow: UnitOfWork,
    who: Identified,
    now: datetime,
    *,
    lapsed_after: timedelta,
    sale_id: str | None = None,
    consent_needed: bool = False,
    consent_given: bool | None = None,
) -> promo.Customer | None:
    """What the pricing engine knows of the customer; ``None`` if nobody was identified.

    With ``consent_needed``, profile promotions see the customer only if they agreed to
    marketing: at this till now (``consent_given``), else earlier."""
    if not who.digests:
        return None
    customer = who.customer
    stored = customer.marketing_consent if customer is not None else None
    answer = consent_given if consent_given is not None else stored
    consent = not consent_needed or answer is True
    if customer is None:
        return promo.Customer(id_token=who.key, segment="new", first_use=True, consent=consent)
    in_flight = open_sales(uow, customer.id, excluding=sale_id)
    purchases = customer.purchases + in_flight
    return promo.Customer(
        id_token=customer.token,
        segment=segment(customer, now, lapsed_after),
        purchases=purchases,
        spend_minor=customer.spend_minor,
        first_use=purchases == 0,
        points_balance=points_balance(uow, customer.id, now),
        consent=consent,
    )
