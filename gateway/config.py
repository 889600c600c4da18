"""Configuration: embedded defaults, then ``KASSA_CONFIG``'s TOML, then ``KASSA_*`` variables.

Everything Kassa writes by itself (the SQLite database, generated keys, the sandbox's secrets,
archived settlement files) lives in one data directory, ``[paths] var_dir`` (``var`` under the
project directory unless set, e.g. by ``KASSA_PATHS_VAR_DIR``). Relative file settings are
resolved against it. Reading the configuration creates nothing; whoever writes a file creates
its directory.
"""

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
from gateway.settings import Settings, settings_from

PROJECT_DIR = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = PROJECT_DIR / "config" / "default.toml"

# The merged TOML tables before they are checked: section → key → value.
Config = dict[str, dict[str, Any]]


def load_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Settings:
    """The effective configuration as typed settings, checked (see :mod:`gateway.settings`).

    Order, later wins: ``config/default.toml``; the file at ``path`` or ``$KASSA_CONFIG``;
    ``KASSA_<SECTION>_<KEY>`` environment variables; ``overrides`` (tests).
    """
    return settings_from(merged_config(path, env, overrides))


def merged_config(
    path: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Mapping[str, Any]] | None = None,
) -> Config:
    """The layers merged into plain tables, relative paths made absolute; not checked."""
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
    _resolve_paths(config)
    return config


def var_dir(config: Config | Settings) -> Path:
    """The data directory: ``[paths] var_dir``, relative to the project directory."""
    if isinstance(config, Settings):
        return PROJECT_DIR / config.paths.var_dir
    return PROJECT_DIR / str(config.get("paths", {}).get("var_dir") or "var")


def data_path(config: Config | Settings, value: str | os.PathLike[str]) -> Path:
    """A file setting as a path: absolute as given, else inside the data directory."""
    return var_dir(config) / value


def secret_key(settings: Settings) -> str:
    """The session signing key: configured, or generated once into ``var/secret_key``."""
    return _configured_or_generated(settings.web.secret_key, var_dir(settings) / "secret_key")


def tag_token_key(settings: Settings) -> bytes:
    """The key of NFC tag tokens: configured, or generated once into ``var/tag-token-key``."""
    return _configured_or_generated(
        settings.devices.tag_token_key, var_dir(settings) / "tag-token-key"
    ).encode()


def device_log_dir(settings: Settings) -> Path:
    """Where the device host keeps its support logs (``[devices] log_dir``, under the data
    directory unless absolute). Nothing is created here."""
    return Path(settings.devices.log_dir)


def identity_key(settings: Settings) -> bytes:
    """The key of customer identity hashes (wallet ids, member codes, phones): configured,
    or generated once into ``var/identity-key``. Losing it makes every customer new again."""
    return _configured_or_generated(
        settings.promotions.identity_key, var_dir(settings) / "identity-key"
    ).encode()


def mfa_key(settings: Settings) -> str:
    """The key that encrypts staff TOTP secrets: configured, or generated once into
    ``var/mfa-key``. Losing it means every manager enrols their authenticator again."""
    return _configured_or_generated(settings.security.mfa_key, var_dir(settings) / "mfa-key")


def _configured_or_generated(configured: object, path: Path) -> str:
    if configured:
        return str(configured)
    if not path.exists():
        # Written whole under another name, then linked into place: two processes starting
        # together agree on one key, and nobody ever reads a half-written file.
        path.parent.mkdir(parents=True, exist_ok=True)
        draft = path.with_name(f".{path.name}.{os.getpid()}")
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    elif path.stat().st_mode & 0o077:
        path.chmod(0o600)  # written by an older Kassa, or copied: the owner's only
    return path.read_text().strip()


@dataclass(frozen=True, slots=True)
class BankCredentials:
    merchant_id: str
    api_key: str
    webhook_secret: str


def bank_credentials(settings: Settings) -> BankCredentials:
    """This merchant's identity at the bank: configured values, else the sandbox's secrets file.

    The sandbox acquirer writes that file (mode 0600) on first use; until it exists the values
    are empty and bank calls fail with a message that says so.
    """
    bank = settings.bank
    values = {
        "merchant_id": bank.merchant_id,
        "api_key": bank.api_key,
        "webhook_secret": bank.webhook_secret,
    }
    if not all(values.values()):
        stored = _secrets_file(data_path(settings, bank.secrets_file))
        for key, value in values.items():
            values[key] = value or str(stored.get(key) or "")
    return BankCredentials(**values)


_secrets_cache: dict[Path, tuple[tuple[int, int], dict[str, Any]]] = {}


def _secrets_file(path: Path) -> dict[str, Any]:
    """The sandbox's secrets file, read again only when it changed (its size or modification
    time): every callback needs the webhook secret, and a rotated file is seen at once."""
    try:
        facts = path.stat()
    except FileNotFoundError:
        return {}
    signature = (facts.st_mtime_ns, facts.st_size)
    cached = _secrets_cache.get(path)
    if cached is not None and cached[0] == signature:
        return cached[1]
    try:
        stored = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    stored = stored if isinstance(stored, dict) else {}
    _secrets_cache[path] = (signature, stored)
    return stored


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


# File settings resolved against the data directory when relative: (section, key).
FILE_SETTINGS = (
    ("bank", "secrets_file"),
    ("demo", "credentials_file"),
    ("settlement", "archive_dir"),
    ("devices", "log_dir"),
    ("sandbox_bank", "secrets_file"),
)
SQLITE_SETTINGS = (("database", "url"), ("sandbox_bank", "database_url"))


def _resolve_paths(config: Config) -> None:
    """Make relative file settings absolute (pure: nothing is created here)."""
    for section, key in FILE_SETTINGS:
        values = config.get(section, {})
        if values.get(key):
            values[key] = str(data_path(config, str(values[key])))
    for section, key in SQLITE_SETTINGS:
        values = config.get(section, {})
        if values.get(key):
            values[key] = _absolute_sqlite(config, str(values[key]))


def _absolute_sqlite(config: Config, url: str) -> str:
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str(data_path(config, url[len(prefix) :]))
    return url
