"""A customer's wallet app: scan a dynamic QR code, check it as a wallet would, and pay.

The checks run in the order a wallet meets them: can the payload be read at all (CRC, format),
is it a dynamic code with an amount, does this bank acquire for the merchant, has it expired,
was it paid already, is the currency the merchant's, is there money in the wallet.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gateway.domain.emv_qr import PaymentRequest, Tree, decode, payment_fields
from gateway.domain.money import currency as lookup
from gateway.errors import InvalidQrPayload
from sandbox_bank import events, merchants
from sandbox_bank.errors import (
    AlreadyPaid,
    InsufficientFunds,
    InvalidQrCode,
    InvalidRequest,
    PaymentRejected,
)
from sandbox_bank.models import Merchant, Payment, Wallet, utcnow
from sandbox_bank.settings import SandboxSettings


def pay(
    session: Session,
    settings: SandboxSettings,
    payload: object,
    wallet_id: object,
    now: datetime | None = None,
) -> Payment:
    """Pay ``payload`` from ``wallet_id``, record the payment, queue ``payment.succeeded``."""
    now = now or utcnow()
    wallet_id = _wallet_id(wallet_id)
    tree, request = _read(payload, settings.expiry_gui)
    merchant = merchants.for_payload(session, tree)
    if merchant is None:
        raise PaymentRejected(
            "unknown merchant: no merchant account template (tags 26-51) names a merchant"
            " of this bank in its sub-ID 01"
        )
    minor = _check_payable(request, merchant, now)
    reference = str(request.reference_label)
    if session.scalar(select(Payment.id).where(Payment.reference == reference)) is not None:
        raise AlreadyPaid(f"the payment with reference {reference!r} has already been paid")
    wallet = _wallet(session, settings, wallet_id, merchant.currency)
    _debit(session, wallet, minor)
    payment = Payment(
        bank_payment_id=events.new_id("pay"),
        merchant_id=merchant.merchant_id,
        reference=reference,
        bill_number=request.bill_number,
        terminal_label=request.terminal_label,
        amount_minor=minor,
        currency=merchant.currency,
        wallet_id=wallet_id,
        paid_at=now,
        refunded_minor=0,
    )
    session.add(payment)
    events.queue_callback(
        session, merchant.merchant_id, "payment.succeeded", _succeeded(payment), now
    )
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise AlreadyPaid(
            f"the payment with reference {reference!r} has already been paid"
        ) from None
    return payment


def set_balance(session: Session, wallet_id: object, amount_minor: object, code: object) -> Wallet:
    """Create or top up a wallet with an exact balance (demos of insufficient funds)."""
    checked_id = _wallet_id(wallet_id)
    if isinstance(amount_minor, bool) or not isinstance(amount_minor, int) or amount_minor < 0:
        raise InvalidRequest("balance_minor must be a whole number of minor units ≥ 0")
    if not isinstance(code, str):
        raise InvalidRequest("currency must be an ISO 4217 code such as 'EUR'")
    wallet = session.get(Wallet, checked_id) or Wallet(wallet_id=checked_id)
    wallet.balance_minor = amount_minor
    wallet.currency = lookup(code).code
    session.add(wallet)
    session.commit()
    return wallet


def _succeeded(payment: Payment) -> dict[str, object]:
    return events.payment_succeeded_data(payment)


def _wallet_id(value: object) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 64 or not value.isprintable():
        raise InvalidRequest("wallet_id must be 1 to 64 printable characters")
    return value


def _read(payload: object, expiry_gui: str) -> tuple[Tree, PaymentRequest]:
    if not isinstance(payload, str):
        raise InvalidQrCode("payload must be the QR code's text")
    try:
        tree = decode(payload)
        return tree, payment_fields(tree, expiry_gui=expiry_gui)
    except InvalidQrPayload as exc:
        raise InvalidQrCode(f"the wallet cannot read this QR code: {exc}") from None


def _check_payable(request: PaymentRequest, merchant: Merchant, now: datetime) -> int:
    """The amount to pay in minor units, once the code is known to be payable now."""
    if request.point_of_initiation != "dynamic" or request.amount is None:
        raise PaymentRejected(
            "not a dynamic QR code with an amount (tag 01 must be '12' and tag 54 present);"
            " the sandbox wallet pays only codes that say how much"
        )
    if request.expires_at is not None and request.expires_at <= now:
        raise PaymentRejected(
            f"this QR code expired at {events.iso(request.expires_at)}; ask for a new one"
        )
    if not request.reference_label:
        raise PaymentRejected("the QR code has no reference label (tag 62-05)")
    if request.currency != merchant.currency:
        raise PaymentRejected(
            f"the QR code asks for {request.currency} but merchant {merchant.merchant_id}"
            f" is paid in {merchant.currency}"
        )
    return request.amount.minor


def _wallet(session: Session, settings: SandboxSettings, wallet_id: str, code: str) -> Wallet:
    wallet = session.get(Wallet, wallet_id)
    if wallet is None:
        wallet = Wallet(
            wallet_id=wallet_id, balance_minor=settings.wallet_balance_minor, currency=code
        )
        session.add(wallet)
        session.flush()
    if wallet.currency != code:
        raise PaymentRejected(
            f"wallet {wallet_id!r} holds {wallet.currency}; this payment is in {code}"
        )
    return wallet


def _debit(session: Session, wallet: Wallet, minor: int) -> None:
    # One conditional UPDATE: the balance never goes below zero, even with concurrent payments.
    debited = session.execute(
        update(Wallet)
        .where(Wallet.wallet_id == wallet.wallet_id, Wallet.balance_minor >= minor)
        .values(balance_minor=Wallet.balance_minor - minor)
        .execution_options(synchronize_session=False)
    )
    if debited.rowcount != 1:  # type: ignore[attr-defined]
        raise InsufficientFunds(
            f"wallet {events.masked_wallet(wallet.wallet_id)} has too little money for this payment"
        )
    session.expire(wallet)
