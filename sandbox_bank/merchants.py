"""Merchants at the bank: loaded from configuration, found by API key or by QR payload."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.domain.emv_qr import Tree
from sandbox_bank.errors import Unauthorised
from sandbox_bank.faults import DEFAULTS
from sandbox_bank.models import Merchant
from sandbox_bank.settings import SandboxSettings


def api_key_hash(api_key: str) -> str:
    """SHA-256 of a key: the bank keeps no API key in clear (keys are long and random)."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()


def sync(session: Session, settings: SandboxSettings) -> None:
    """Make the merchants table match the configuration, keeping each merchant's faults."""
    for configured in settings.merchants:
        row = session.get(Merchant, configured.merchant_id)
        if row is None:
            row = Merchant(merchant_id=configured.merchant_id, faults=dict(DEFAULTS))
            session.add(row)
        row.name = configured.name
        row.currency = configured.currency
        row.callback_url = configured.callback_url
        row.api_key_hash = api_key_hash(configured.api_key)
        row.webhook_secret = configured.webhook_secret
        row.fee_percent_bp = configured.fee_percent_bp
        row.fee_fixed_minor = configured.fee_fixed_minor
        row.iban = configured.iban
    session.commit()


def authenticate(session: Session, authorization: str | None) -> Merchant:
    """The merchant whose key is in ``Authorization: Bearer <key>``; else :class:`Unauthorised`."""
    scheme, _, key = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorised("send the merchant's API key as 'Authorization: Bearer <key>'")
    presented = api_key_hash(key.strip())
    found = None
    for merchant in session.scalars(select(Merchant)):
        if hmac.compare_digest(merchant.api_key_hash, presented):
            found = merchant
    if found is None:
        raise Unauthorised("the API key is not valid for any merchant of this bank")
    return found


def for_payload(session: Session, tree: Tree) -> Merchant | None:
    """The merchant named by sub-ID 01 of any merchant account template (tags 26-51)."""
    for tag, value in tree.items():
        if 26 <= int(tag) <= 51 and isinstance(value, dict) and "01" in value:
            merchant = session.get(Merchant, value["01"])
            if merchant is not None:
                return merchant
    return None
