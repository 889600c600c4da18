"""Configuration layering: defaults, then KASSA_CONFIG's file, then KASSA_* variables."""

from pathlib import Path

import pytest

from gateway.config import (
    PROJECT_DIR,
    identity_key,
    load_config,
    secret_key,
    tag_token_key,
    var_dir,
)
from gateway.errors import ConfigurationError
from sandbox_bank import settings as sandbox_settings


def test_defaults_are_embedded_sqlite_under_var() -> None:
    config = load_config(env={})
    assert config.database.url == f"sqlite:///{PROJECT_DIR / 'var' / 'kassa.db'}"
    assert config.payments.default_expiry_seconds == 300


def test_file_then_environment_override(tmp_path: Path) -> None:
    file = tmp_path / "store.toml"
    file.write_text("[web]\nport = 9000\n[payments]\ndefault_expiry_seconds = 120\n")
    env = {"KASSA_CONFIG": str(file), "KASSA_WEB_PORT": "9100", "KASSA_DATABASE_ECHO": "true"}
    config = load_config(env=env)
    assert config.web.port == 9100
    assert config.payments.default_expiry_seconds == 120
    assert config.database.echo is True


def test_bad_values_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KASSA_WEB_PORT must be a whole number"):
        load_config(env={"KASSA_WEB_PORT": "eighty"})
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(env={"KASSA_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[web\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(env={"KASSA_CONFIG": str(bad)})


def test_settings_are_checked_at_load_and_name_the_key() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_config(env={"KASSA_WEB_PORT": "0", "KASSA_PAYMENTS_MIN_EXPIRY_SECONDS": "9999"})
    message = str(caught.value)
    assert "[web] port: Input should be greater than or equal to 1" in message
    assert "default_expiry_seconds must lie between min_expiry_seconds" in message
    with pytest.raises(ConfigurationError, match=r"\[payments\] expiry_secnods: Extra inputs"):
        load_config(env={}, overrides={"payments": {"expiry_secnods": 60}})


def test_settings_are_frozen() -> None:
    from pydantic import ValidationError

    settings = load_config(env={})
    with pytest.raises(ValidationError, match="frozen"):
        settings.web.port = 1  # type: ignore[misc]


def test_one_data_directory_holds_every_relative_file(tmp_path: Path) -> None:
    var = tmp_path / "data"
    config = load_config(env={"KASSA_PATHS_VAR_DIR": str(var)})
    assert var_dir(config) == var
    assert config.database.url == f"sqlite:///{var / 'kassa.db'}"
    assert config.sandbox_bank["database_url"] == f"sqlite:///{var / 'sandbox-bank.db'}"
    assert config.bank.secrets_file == str(var / "sandbox-bank.json")
    assert config.sandbox_bank["secrets_file"] == str(var / "sandbox-bank.json")
    assert config.demo.credentials_file == str(var / "demo-credentials.json")
    assert config.settlement.archive_dir == str(var / "settlement-files")
    elsewhere = load_config(
        env={"KASSA_PATHS_VAR_DIR": str(var), "KASSA_BANK_SECRETS_FILE": "/x.j"}
    )
    assert elsewhere.bank.secrets_file == "/x.j"  # absolute paths stay as they are


def test_reading_the_configuration_creates_nothing(tmp_path: Path) -> None:
    var = tmp_path / "data"
    load_config(env={"KASSA_PATHS_VAR_DIR": str(var)})
    sandbox_settings.from_config(
        {"paths": {"var_dir": str(var)}, "sandbox_bank": {"merchants": []}}
    )
    assert not var.exists()


def test_generated_keys_are_written_into_the_data_directory(tmp_path: Path) -> None:
    var = tmp_path / "data"
    config = load_config(env={"KASSA_PATHS_VAR_DIR": str(var)})
    key = identity_key(config)
    assert (var / "identity-key").read_text().strip().encode() == key
    assert identity_key(config) == key  # generated once
    assert secret_key(config) == (var / "secret_key").read_text().strip()
    assert tag_token_key(config) == (var / "tag-token-key").read_text().strip().encode()


def test_a_postgresql_pool_keeps_as_many_connections_as_configured() -> None:
    """`kassa serve --threads 24` exports KASSA_DATABASE_POOL_SIZE=24: every thread of a web
    worker may hold a connection, and a smaller pool opened and closed one every few dozen
    requests under load."""
    from gateway.adapters.db import Database

    assert load_config(env={}).database.pool_size == 16
    config = load_config(env={"KASSA_DATABASE_POOL_SIZE": "24"})
    database = Database("postgresql://kassa@127.0.0.1:1/none", pool_size=config.database.pool_size)
    try:
        assert database.engine.pool.size() == 24  # type: ignore[attr-defined]
    finally:
        database.engine.dispose()
    with pytest.raises(ConfigurationError, match=r"\[database\] pool_size"):
        load_config(env={"KASSA_DATABASE_POOL_SIZE": "0"})
