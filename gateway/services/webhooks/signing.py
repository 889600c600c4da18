"""Endpoint signing secrets: made by Kassa (Standard Webhooks ``whsec_`` + base64 of 32 random
bytes), shown once, and kept Fernet-encrypted under a key derived from ``[security] mfa_key``
(as TOTP secrets are, with a key of its own), because every attempt must sign with it."""

from __future__ import annotations

import base64
import secrets

from cryptography.fernet import InvalidToken

from gateway.errors import ConfigurationError
from gateway.services.staff import mfa

PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def seal(secret: str) -> str:
    return mfa.derived_cipher("webhooks").encrypt(secret.encode()).decode()


def unseal(sealed: str) -> str:
    try:
        return mfa.derived_cipher("webhooks").decrypt(sealed.encode()).decode()
    except InvalidToken:
        raise ConfigurationError(
            "a webhook endpoint's secret cannot be decrypted: [security] mfa_key changed; "
            "delete the endpoint and add it again to get a new secret"
        ) from None
