"""The ``[sandbox_bank]`` configuration section, read into typed settings.

The sandbox reads Kassa's own files (``config/default.toml``, then ``$KASSA_CONFIG``, then
``KASSA_SANDBOX_BANK_<KEY>`` variables for single values) but keeps its own small reader, so it
depends on nothing inside the gateway but shared domain code.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateway.domain.money import currency
from gateway.errors import InvalidMoney
from sandbox_bank import secrets
from sandbox_bank.errors import SandboxConfigurationError

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_DIR / "config" / "default.toml"
SECTION = "sandbox_bank"
DEFAULT_IBAN = "DE89370400440532013000"  # the textbook example IBAN (valid check digits)


@dataclass(frozen=True)
class MerchantSettings:
    """One merchant the bank acquires for, as configured."""

    merchant_id: str
    name: str
    currency: str
    callback_url: str
    fee_percent_bp: int
    fee_fixed_minor: int
    iban: str
    api_key: str
    webhook_secret: str


@dataclass(frozen=True)
class SandboxSettings:
    url: str = "http://127.0.0.1:8100"
    host: str = "127.0.0.1"
    port: int = 8100
    database_url: str = "sqlite:///sandbox-bank.db"
    secrets_file: str = "sandbox-bank.json"
    deliver_in_background: bool = False
    poll_interval_ms: int = 500
    delivery_timeout_s: int = 5
    retry_base_ms: int = 1000
    retry_max_s: int = 300
    refund_delay_ms: int = 1000
    wallet_balance_minor: int = 10_000_000
    expiry_gui: str = "IO.KASSA"
    merchants: tuple[MerchantSettings, ...] = field(default_factory=tuple)

    def merchant(self, merchant_id: str) -> MerchantSettings | None:
        return next((m for m in self.merchants if m.merchant_id == merchant_id), None)


def read_config(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Kassa's configuration as the sandbox sees it: defaults, ``$KASSA_CONFIG``, variables."""
    config = _toml(DEFAULT_CONFIG)
    chosen = path or os.environ.get("KASSA_CONFIG")
    if chosen:
        for section, values in _toml(Path(chosen)).items():
            config.setdefault(section, {}).update(values)
    if "KASSA_PATHS_VAR_DIR" in os.environ:
        config.setdefault("paths", {})["var_dir"] = os.environ["KASSA_PATHS_VAR_DIR"]
    section = config.setdefault(SECTION, {})
    for key, default in list(section.items()):
        name = f"KASSA_{SECTION}_{key}".upper()
        if name in os.environ and isinstance(default, str | int):
            section[key] = _coerce(os.environ[name], default, name)
    return config


def from_config(config: Mapping[str, Any]) -> SandboxSettings:
    """Build settings from a whole Kassa configuration (``[sandbox_bank]``, and ``[paths]``
    for the data directory that relative files are resolved against)."""
    raw = dict(config.get(SECTION) or {})
    known = {f for f in SandboxSettings.__dataclass_fields__ if f != "merchants"}
    unknown = set(raw) - known - {"merchants"}
    if unknown:
        raise SandboxConfigurationError(
            f"[{SECTION}] has unknown keys: {', '.join(sorted(unknown))}"
        )
    values = {k: v for k, v in raw.items() if k in known}
    var_dir = PROJECT_DIR / str(config.get("paths", {}).get("var_dir") or "var")
    database_url = str(values.get("database_url", _default("db")))
    values["database_url"] = _absolute_sqlite(database_url, var_dir)
    values["secrets_file"] = str(var_dir / str(values.get("secrets_file", _default("secrets"))))
    merchants = tuple(_merchant(m, values["secrets_file"]) for m in raw.get("merchants", []))
    ids = [m.merchant_id for m in merchants]
    if len(set(ids)) != len(ids):
        raise SandboxConfigurationError(f"[{SECTION}] merchants repeat an id: {', '.join(ids)}")
    return SandboxSettings(**values, merchants=merchants)


def _default(what: str) -> str:
    fields = SandboxSettings.__dataclass_fields__
    return str(fields["database_url" if what == "db" else "secrets_file"].default)


def _merchant(raw: Mapping[str, Any], secrets_file: str) -> MerchantSettings:
    try:
        merchant_id = str(raw["merchant_id"])
        code = currency(str(raw.get("currency", "EUR"))).code
        api_key, webhook_secret = raw.get("api_key"), raw.get("webhook_secret")
        if not (api_key and webhook_secret):
            stored = secrets.load_or_create(secrets_file, merchant_id)
            if stored["merchant_id"] != merchant_id:
                raise SandboxConfigurationError(
                    f"merchant {merchant_id} has no api_key/webhook_secret configured and"
                    f" {secrets_file} belongs to {stored['merchant_id']}; set them in the config"
                )
            api_key, webhook_secret = stored["api_key"], stored["webhook_secret"]
        return MerchantSettings(
            merchant_id=merchant_id,
            name=str(raw.get("name", merchant_id)),
            currency=code,
            callback_url=str(raw["callback_url"]),
            fee_percent_bp=_whole(raw.get("fee_percent_bp", 0), "fee_percent_bp"),
            fee_fixed_minor=_whole(raw.get("fee_fixed_minor", 0), "fee_fixed_minor"),
            iban=str(raw.get("iban", DEFAULT_IBAN)),
            api_key=str(api_key),
            webhook_secret=str(webhook_secret),
        )
    except KeyError as exc:
        raise SandboxConfigurationError(
            f"[[{SECTION}.merchants]] entry lacks {exc.args[0]}"
        ) from None
    except InvalidMoney as exc:
        raise SandboxConfigurationError(f"[[{SECTION}.merchants]]: {exc}") from None


def _whole(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SandboxConfigurationError(f"{name} must be a whole number ≥ 0, not {value!r}")
    return value


def _absolute_sqlite(url: str, var_dir: Path) -> str:
    """A relative SQLite path inside the data directory (created when the database is opened)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(var_dir / url[len(prefix) :])
    return url


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise SandboxConfigurationError(f"configuration file {path} does not exist") from None
    except tomllib.TOMLDecodeError as exc:
        raise SandboxConfigurationError(f"{path} is not valid TOML: {exc}") from None


def _coerce(raw: str, default: str | int, name: str) -> str | int | bool:
    if isinstance(default, bool):
        if raw.lower() in {"1", "true", "yes", "on"}:
            return True
        if raw.lower() in {"0", "false", "no", "off"}:
            return False
        raise SandboxConfigurationError(f"{name} must be true or false, not {raw!r}")
    if isinstance(default, int):
        try:
            return int(raw)
        except ValueError:
            raise SandboxConfigurationError(f"{name} must be a whole number, not {raw!r}") from None
    return raw
