"""The demo merchant's API key and webhook secret, kept outside the repository.

Both the sandbox bank and the gateway read ``var/sandbox-bank.json`` (mode 0600). The first
process to need it creates it with fresh random values; two processes starting together agree
because the file appears atomically (written aside, then hard-linked into place, which fails if
another process won the race; the loser reads the winner's file).
"""

from __future__ import annotations

import base64
import json
import os
import secrets
from pathlib import Path
from typing import Any

from sandbox_bank.errors import SandboxConfigurationError

DEMO_MERCHANT_ID = "KASSA-DEMO-0001"
_KEYS = ("merchant_id", "api_key", "webhook_secret")


def new_api_key() -> str:
    return "sk_sandbox_" + secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 24 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode("ascii")


def load_or_create(
    path: str | os.PathLike[str], merchant_id: str = DEMO_MERCHANT_ID
) -> dict[str, str]:
    """Read the secrets file, creating it first (mode 0600) if it does not exist yet."""
    file = Path(path)
    if not file.exists():
        _create(file, merchant_id)
    return _read(file)


def _create(file: Path, merchant_id: str) -> None:
    file.parent.mkdir(parents=True, exist_ok=True)
    values = {
        "merchant_id": merchant_id,
        "api_key": new_api_key(),
        "webhook_secret": new_webhook_secret(),
    }
    aside = file.with_name(f".{file.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(values, out, indent=2)
            out.write("\n")
            out.flush()
            os.fsync(out.fileno())
        os.link(aside, file)  # atomic, and like O_EXCL it fails if the file exists
    except FileExistsError:
        pass  # another process created it first: its values win
    except OSError:  # a file system without hard links: plain O_EXCL, not atomic for readers
        _write_exclusive(file, values)
    finally:
        aside.unlink(missing_ok=True)


def _write_exclusive(file: Path, values: dict[str, str]) -> None:
    try:
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(values, out, indent=2)
        out.write("\n")


def _read(file: Path) -> dict[str, str]:
    try:
        data: Any = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise SandboxConfigurationError(
            f"cannot read the sandbox bank secrets file {file}: {exc}; delete it to start afresh"
        ) from None
    if not isinstance(data, dict) or any(not isinstance(data.get(k), str) for k in _KEYS):
        raise SandboxConfigurationError(
            f"{file} must hold merchant_id, api_key and webhook_secret as strings;"
            " delete it to have fresh values generated"
        )
    return {k: data[k] for k in _KEYS}
