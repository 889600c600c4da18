"""Files Kassa creates that hold data or secrets are its owner's only (mode 0600)."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from gateway.adapters.db import Database
from gateway.config import identity_key, load_config, secret_key, tag_token_key
from gateway.services.demo import seed_demo


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def open_umask() -> object:
    """The umask of a careless deployment, so only Kassa's own modes protect the files."""
    previous = os.umask(0o022)
    yield None
    os.umask(previous)


def test_a_new_sqlite_database_and_its_wal_are_private(tmp_path: Path, open_umask: object) -> None:
    path = tmp_path / "var" / "kassa.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    with database.unit_of_work() as uow:
        seed_demo(uow, tmp_path / "var" / "demo-credentials.json", promotions=False)
        made = [p for p in path.parent.iterdir() if p.name.startswith("kassa.db")]
        assert {p.name for p in made} >= {"kassa.db", "kassa.db-wal", "kassa.db-shm"}
        assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
    database.dispose()
    assert mode(path) == 0o600
    assert mode(tmp_path / "var" / "demo-credentials.json") == 0o600


def test_generated_keys_are_private(tmp_path: Path, open_umask: object) -> None:
    settings = load_config(env={"KASSA_PATHS_VAR_DIR": str(tmp_path / "var")})
    secret_key(settings), tag_token_key(settings), identity_key(settings)
    for name in ("secret_key", "tag-token-key", "identity-key"):
        assert mode(tmp_path / "var" / name) == 0o600, name


def test_a_key_file_left_readable_is_made_private(tmp_path: Path) -> None:
    settings = load_config(env={"KASSA_PATHS_VAR_DIR": str(tmp_path / "var")})
    key = secret_key(settings)
    (tmp_path / "var" / "secret_key").chmod(0o644)
    assert secret_key(settings) == key
    assert mode(tmp_path / "var" / "secret_key") == 0o600


def test_device_logs_are_private_after_rotation_too(tmp_path: Path, open_umask: object) -> None:
    from drivers.device_log import DeviceLog

    path = tmp_path / "devices" / "card_terminal.log"
    log = DeviceLog(path, "zvt-tcp", max_bytes=200, backups=2)
    for _ in range(6):  # enough lines to rotate twice
        log("out", bytes.fromhex("80 00 00"))
    log.flush()
    made = sorted(path.parent.iterdir())
    assert len(made) == 3, made
    assert {p.name: mode(p) for p in made} == {p.name: 0o600 for p in made}
