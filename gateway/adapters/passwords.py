"""Staff password hashing with Argon2id (argon2-cffi, OWASP's first choice).

The cost is set from configuration (``[security]``) so an operator can tune it to the hardware;
a hash records its own parameters, so changing the cost never locks anyone out.
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_hasher = PasswordHasher()
_dummy_hash: str | None = None


def configure(time_cost: int, memory_cost_kib: int) -> None:
    global _hasher, _dummy_hash
    _hasher = PasswordHasher(time_cost=time_cost, memory_cost=memory_cost_kib)
    _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """Check a password; an unknown user (``None``) costs as much time as a known one."""
    global _dummy_hash
    if password_hash is None:
        _dummy_hash = _dummy_hash or _hasher.hash("kassa-timing-equaliser")
    try:
        ok = _hasher.verify(password_hash or _dummy_hash or "", password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False
    return ok and password_hash is not None
