"""TOTP as Kassa computes and checks it (gateway.services.staff.mfa, on pyotp).

Vectors: RFC 6238, Appendix B ("Test Vectors"), the SHA-1 rows: the seed is the ASCII string
"12345678901234567890", T0 = 0, X = 30 seconds, 8 digits.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from gateway.services.staff import mfa
from tests.conftest import TEST_MFA_KEY

RFC6238_SHA1_SECRET = base64.b32encode(b"12345678901234567890").decode()
RFC6238_SHA1 = [
    (59, "94287082"),
    (1111111109, "07081804"),
    (1111111111, "14050471"),
    (1234567890, "89005924"),
    (2000000000, "69279037"),
    (20000000000, "65353130"),
]


@pytest.mark.parametrize(("unix_time", "code"), RFC6238_SHA1)
def test_rfc6238_appendix_b_sha1_vectors(unix_time: int, code: str) -> None:
    moment = datetime.fromtimestamp(unix_time, UTC)
    assert mfa.code_at(RFC6238_SHA1_SECRET, moment, digits=8) == code
    assert mfa.matching_step(RFC6238_SHA1_SECRET, code, moment, digits=8) == unix_time // 30


def test_a_code_works_one_step_either_side_and_never_twice() -> None:
    secret = mfa.new_secret()
    now = datetime.fromtimestamp(1_700_000_000, UTC)
    step = 1_700_000_000 // 30
    for drift in (-1, 0, 1):
        code = mfa.code_at(secret, (step + drift) * 30)
        assert mfa.matching_step(secret, code, now) == step + drift
        assert mfa.matching_step(secret, code, now, after_step=step + drift) is None
    assert mfa.matching_step(secret, mfa.code_at(secret, (step + 2) * 30), now) is None
    assert mfa.matching_step(secret, "12345", now) is None
    assert mfa.matching_step(secret, "abcdef", now) is None


def test_secrets_are_stored_encrypted() -> None:
    mfa.configure("unit-test-key")
    secret = mfa.new_secret()
    sealed = mfa.seal(secret)
    assert secret not in sealed and mfa.unseal(sealed) == secret
    mfa.configure("another-key")
    with pytest.raises(Exception, match="mfa_key changed"):
        mfa.unseal(sealed)
    mfa.configure(TEST_MFA_KEY)  # the test session's key again
