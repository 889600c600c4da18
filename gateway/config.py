"""Configuration: embedded defaults, then ``KASSA_CONFIG``'s TOML, then ``KASSA_*`` variables."""

from __future__ import annotations

import json
import os
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gateway.errors import ConfigurationError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_DIR / "config" / "default.toml"

Config = dict[str, dict[str, Any]]


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """Build the effective configuration.

    Order, later wins: ``config/default.toml``; the file at ``path`` or ``$KASSA_CONFIG``;
    ``KASSA_<SECTION>_<KEY>`` environment variables; ``overrides`` (tests).
    """
    env = os.environ if env is None else env
    config = _read(DEFAULT_CONFIG)
    chosen = path or env.get("KASSA_CONFIG")
    if chosen:
        _merge(config, _read(Path(chosen)), source=str(chosen))
    for section, values in config.items():
        for key, default in list(values.items()):
            name = f"KASSA_{section}_{key}".upper()
            if name in env:
                values[key] = _coerce(env[name], default, name)
    if overrides:
        _merge(config, {k: dict(v) for k, v in overrides.items()}, source="overrides")
    _resolve_database_url(config)
    return config


def secret_key(config: Config) -> str:
    """The session signing key: configured, or generated once into ``var/secret_key``."""
    return _configured_or_generated(config["web"].get("secret_key"), "secret_key")


def tag_token_key(config: Config) -> bytes:
    """The key of NFC tag tokens: configured, or generated once into ``var/tag-token-key``."""
    return _configured_or_generated(
        config["devices"].get("tag_token_key"), "tag-token-key"
    ).encode()


def device_log_dir(config: Config) -> Path:
    """Where the device host keeps its support logs (``[devices] log_dir``, relative paths
    under the project). Nothing is created here."""
    return PROJECT_DIR / str(config["devices"].get("log_dir") or "var/device-logs")


def identity_key(config: Config) -> bytes:
    """The key of customer identity hashes (wallet ids, member codes, phones): configured,
    or generated once into ``var/identity-key``. Losing it makes every customer new again."""
    return _configured_or_generated(
        config.get("promotions", {}).get("identity_key"), "identity-key"
    ).encode()


def _configured_or_generated(configured: object, name: str) -> str:
    if configured:
        return str(configured)
    path = PROJECT_DIR / "var" / name
    if not path.exists():
        # Written whole under another name, then linked into place: two processes starting
        # together agree on one key, and nobody ever reads a half-written file.
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class BankCredentials:
    merchant_id: str
    api_key: str
    webhook_secret: str


def bank_credentials(config: Config) -> BankCredentials:
    """This merchant's identity at the bank: configured values, else the sandbox's secrets file.

    The sandbox acquirer writes that file (mode 0600) on first use; until it exists the values
    are empty and bank calls fail with a message that says so.
    """
    bank = config["bank"]
    values = {k: str(bank.get(k) or "") for k in ("merchant_id", "api_key", "webhook_secret")}
    if not all(values.values()):
        path = PROJECT_DIR / str(bank["secrets_file"])
        try:
            stored = json.loads(path.read_text())
        except (FileNotFoundError, ValueError):
            stored = {}
        for key, value in values.items():
            values[key] = value or str(stored.get(key) or "")
    return BankCredentials(**values)


def _read(path: Path) -> Config:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigurationError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"configuration file {path} is not valid TOML: {exc}") from None


def _merge(base: Config, extra: Mapping[str, Any], source: str) -> None:
    for section, values in extra.items():
        if not isinstance(values, Mapping):
            raise ConfigurationError(f"{source}: [{section}] must be a table")
        base.setdefault(section, {}).update(values)


def _coerce(raw: str, default: Any, name: str) -> Any:
    if isinstance(default, bool):
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise ConfigurationError(f"{name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise ConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    return raw


def _resolve_database_url(config: Config) -> None:
    """A relative SQLite path is under the project. Its directory is made when the database is
    opened (``gateway.adapters.db``), not here: reading the configuration writes nothing."""
    url = str(config["database"]["url"])
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        config["database"]["url"] = prefix + str(PROJECT_DIR / url[len(prefix) :])
