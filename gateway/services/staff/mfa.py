"""The second factor: TOTP (RFC 6238, computed by pyotp) and one-time recovery codes.

Portal staff (managers, owners, auditors) enrol an authenticator app once: Kassa makes a random
secret, shows it as an ``otpauth://`` QR code, and keeps it only Fernet-encrypted (AES-128-CBC
with HMAC-SHA256) under the ``[security] mfa_key``. A code is accepted for its 30-second step
and one step either side (clock drift); a step once used is refused afterwards, as RFC 6238
§5.2 asks. Ten recovery codes are shown once at enrolment and kept as SHA-256 hashes (they are
random, 50 bits each, so a fast hash suffices); each works once.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime

import pyotp
from cryptography.fernet import Fernet, InvalidToken

from gateway.adapters.db import UnitOfWork
from gateway.adapters.models import StaffUser, utcnow
from gateway.errors import ConfigurationError, Conflict, InvalidInput
from gateway.services.staff import audit

ISSUER = "Kassa"
STEP_SECONDS = 30
DIGITS = 6
DRIFT_STEPS = 1
RECOVERY_CODES = 10
# Roles that sign into the portal, and so must have a second factor.
MFA_ROLES = frozenset({"manager", "owner", "auditor"})

_fernet: Fernet | None = None
_key: str | None = None


def configure(key: str) -> None:
    """Set the key that encrypts TOTP secrets (any text; stretched to a Fernet key)."""
    global _fernet, _key
    _key = key
    _fernet = derived_cipher("mfa")


def derived_cipher(purpose: str) -> Fernet:
    """A Fernet cipher of its own for ``purpose`` from the configured ``[security] mfa_key``
    (``mfa`` for TOTP secrets; ``webhooks`` for webhook signing secrets)."""
    if _key is None:
        raise ConfigurationError("the MFA key is not configured: call mfa.configure first")
    digest = hashlib.sha256(f"kassa-{purpose}:".encode() + _key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _cipher() -> Fernet:
    if _fernet is None:
        raise ConfigurationError("the MFA key is not configured: call mfa.configure first")
    return _fernet


def needs_second_factor(role: str) -> bool:
    return role in MFA_ROLES


def code_at(secret: str, moment: datetime | int | float, digits: int = DIGITS) -> str:
    """The TOTP code for ``moment`` (the code path every check in Kassa uses)."""
    return pyotp.TOTP(secret, digits=digits, interval=STEP_SECONDS).at(moment)


def matching_step(
    secret: str, code: str, now: datetime, *, after_step: int | None = None, digits: int = DIGITS
) -> int | None:
    """The time step whose code ``code`` is (now ± drift), if newer than ``after_step``."""
    code = "".join(code.split())
    if len(code) != digits or not code.isdigit():
        return None
    current = int(now.timestamp()) // STEP_SECONDS
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if after_step is not None and step <= after_step:
            continue
        if hmac.compare_digest(code_at(secret, step * STEP_SECONDS, digits), code):
            return step
    return None


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    return pyotp.TOTP(secret, interval=STEP_SECONDS).provisioning_uri(
        name=username, issuer_name=ISSUER
    )


def seal(secret: str) -> str:
    return _cipher().encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return _cipher().decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigurationError(
            "a TOTP secret cannot be decrypted: [security] mfa_key changed; "
            "reset this person's second factor with `kassa admin reset-mfa`"
        ) from None


def is_enrolled(user: StaffUser) -> bool:
    return user.totp_secret is not None and user.totp_enrolled_at is not None


def pending_secret(uow: UnitOfWork, user: StaffUser) -> str:
    """The secret being enrolled: kept (encrypted) until confirmed by a code."""
    if is_enrolled(user):
        raise Conflict("a second factor is already set up for this account")
    if user.totp_secret is None:
        user.totp_secret = seal(new_secret())
        uow.session.flush()
    return unseal(user.totp_secret)


@dataclass(frozen=True, slots=True)
class Enrolment:
    recovery_codes: list[str]


def confirm_enrolment(
    uow: UnitOfWork, user: StaffUser, code: str, now: datetime | None = None
) -> Enrolment:
    """Finish enrolment with a code from the app; returns the recovery codes (shown once)."""
    now = now or utcnow()
    secret = pending_secret(uow, user)
    step = matching_step(secret, code, now)
    if step is None:
        raise InvalidInput("that code is not the one your app shows: check the clock and retry")
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    user.recovery_codes = [_hash(c) for c in codes]
    user.totp_enrolled_at, user.totp_last_step = now, step
    audit.record(uow, "mfa.enrolled", target=("staff", user.id), merchant_id=user.merchant_id)
    return Enrolment(codes)


def enrol_with_secret(uow: UnitOfWork, user: StaffUser, secret: str) -> list[str]:
    """Enrol a known secret (the demo's, an import); returns fresh recovery codes."""
    codes = [_recovery_code() for _ in range(RECOVERY_CODES)]
    user.totp_secret = seal(secret)
    user.totp_enrolled_at, user.totp_last_step = utcnow(), None
    user.recovery_codes = [_hash(c) for c in codes]
    return codes


def reset(uow: UnitOfWork, user: StaffUser) -> None:
    """Forget the second factor: the person enrols again at their next sign-in."""
    user.totp_secret, user.totp_enrolled_at, user.totp_last_step = None, None, None
    user.recovery_codes = []


def verify_user(uow: UnitOfWork, user: StaffUser, code: str, now: datetime | None = None) -> bool:
    """Check a TOTP code or a recovery code; a used code or step never works again."""
    if not is_enrolled(user) or user.totp_secret is None:
        return False
    now = now or utcnow()
    step = matching_step(unseal(user.totp_secret), code, now, after_step=user.totp_last_step)
    if step is not None:
        user.totp_last_step = step
        return True
    return _use_recovery_code(user, code)


def code_is_current(uow: UnitOfWork, staff_id: int, code: str, now: datetime | None = None) -> bool:
    """For API calls: is ``code`` this person's authenticator code now (± drift)? The code is
    not used up, so one code serves the calls of its 30-second step; recovery codes never."""
    user = uow.session.get(StaffUser, staff_id)
    if user is None or not user.active or not is_enrolled(user) or user.totp_secret is None:
        return False
    return matching_step(unseal(user.totp_secret), code, now or utcnow()) is not None


def verify_second_factor(
    uow: UnitOfWork, staff_id: int, code: str, now: datetime | None = None
) -> bool:
    """For approvals at the till and step-up: is ``code`` this person's second factor now?

    Writes the used step (or recovery code) in ``uow``; the caller commits.
    """
    user = uow.session.get(StaffUser, staff_id)
    if user is None or not user.active:
        return False
    return verify_user(uow, user, code, now)


def _use_recovery_code(user: StaffUser, code: str) -> bool:
    cleaned = "".join(code.split()).replace("-", "").lower()
    if len(cleaned) != 10:
        return False
    wanted = _hash(cleaned)
    left = [h for h in user.recovery_codes if not hmac.compare_digest(h, wanted)]
    if len(left) == len(user.recovery_codes):
        return False
    user.recovery_codes = left
    return True


def _recovery_code() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode()[:10].lower()


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


def format_recovery_code(code: str) -> str:
    return f"{code[:5]}-{code[5:]}"
