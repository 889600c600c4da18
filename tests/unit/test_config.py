"""Configuration layering: defaults, then KASSA_CONFIG's file, then KASSA_* variables."""

from pathlib import Path

import pytest

from gateway.config import PROJECT_DIR, load_config
from gateway.errors import ConfigurationError


def test_defaults_are_embedded_sqlite_under_var() -> None:
    config = load_config(env={})
    assert config["database"]["url"] == f"sqlite:///{PROJECT_DIR / 'var' / 'kassa.db'}"
    assert config["payments"]["default_expiry_seconds"] == 300


def test_file_then_environment_override(tmp_path: Path) -> None:
    file = tmp_path / "store.toml"
    file.write_text("[web]\nport = 9000\n[payments]\ndefault_expiry_seconds = 120\n")
    env = {"KASSA_CONFIG": str(file), "KASSA_WEB_PORT": "9100", "KASSA_DATABASE_ECHO": "true"}
    config = load_config(env=env)
    assert config["web"]["port"] == 9100
    assert config["payments"]["default_expiry_seconds"] == 120
    assert config["database"]["echo"] is True


def test_bad_values_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="KASSA_WEB_PORT must be a whole number"):
        load_config(env={"KASSA_WEB_PORT": "eighty"})
    with pytest.raises(ConfigurationError, match="does not exist"):
        load_config(env={"KASSA_CONFIG": str(tmp_path / "missing.toml")})
    bad = tmp_path / "bad.toml"
    bad.write_text("[web\n")
    with pytest.raises(ConfigurationError, match="not valid TOML"):
        load_config(env={"KASSA_CONFIG": str(bad)})
