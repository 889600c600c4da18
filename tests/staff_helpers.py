"""Signing staff in the way a person does: password, then the second factor (TOTP).

The demo manager's and the second merchant's manager's TOTP secrets are fixed and known, so a
test computes the current code with pyotp, as the person's authenticator app would.
"""

from __future__ import annotations

import re
import time
from typing import Any

import pyotp

from gateway.services.demo import DEMO_TOTP_SECRET

OTHER_TOTP_SECRET = "OTHERSHOPMANAGERTOTPSECRET234567"
KNOWN_TOTP = {"manager": DEMO_TOTP_SECRET, "other-manager": OTHER_TOTP_SECRET}


def totp_code(secret: str, steps_ahead: int = 0) -> str:
    """The code an authenticator app shows now (or ``steps_ahead`` 30-second steps later)."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def csrf_token(client: Any, path: str) -> str:
    page = client.get(path).get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    return token.group(1)


def complete_second_factor(client: Any, username: str) -> Any:
    """Enter the current TOTP code at the prompt; a code already used in this 30-second step
    (an earlier sign-in of the same person) is refused, so the next step's is tried too (the
    server accepts one step of drift)."""
    secret = KNOWN_TOTP[username]
    token = csrf_token(client, "/portal/mfa")
    response = None
    for ahead in (0, 1):
        response = client.post(
            "/portal/mfa", data={"code": totp_code(secret, ahead), "csrf_token": token}
        )
        if response.status_code == 303:
            return response
    raise AssertionError(f"second factor refused: {response and response.get_data(as_text=True)}")


def second_factor_passed(client: Any) -> None:
    """Mark the session's second factor as passed, for tests about something else (who may
    do what); the second factor itself is tested through its pages with real TOTP codes."""
    from gateway.entrypoints.staff_session import MFA_KEY

    with client.session_transaction() as session:
        session[MFA_KEY] = time.time()
