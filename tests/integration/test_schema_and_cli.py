"""Migrations match the models on both databases; `kassa db upgrade` and `kassa demo-data` work."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gateway.adapters.db import Database
from gateway.adapters.models import Base


def test_migrations_produce_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def _kassa(*args: str, tmp_path: Path, url: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": url,
        "KASSA_SECURITY_ARGON2_TIME_COST": "1",
        "KASSA_SECURITY_ARGON2_MEMORY_KIB": "256",
        "KASSA_DEMO_CREDENTIALS_FILE": str(tmp_path / "creds.json"),
    }
    return subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )


def test_db_upgrade_and_demo_data_from_the_command_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgraded = _kassa("db", "upgrade", tmp_path=tmp_path, url=url)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "is at revision head" in upgraded.stdout
    seeded = _kassa("demo-data", "--json", tmp_path=tmp_path, url=url)
    assert seeded.returncode == 0, seeded.stderr
    creds: dict[str, Any] = json.loads(seeded.stdout)
    assert [s["role"] for s in creds["staff"]] == ["cashier", "manager", "supervisor"]
    assert [(t["store"], t["till"]) for t in creds["tills"]] == [
        ("Berlin Mitte", "T01"),
        ("Berlin Mitte", "T02"),
        ("Berlin Kreuzberg", "T01"),
    ]
    text = _kassa("demo-data", tmp_path=tmp_path, url=url)
    cashier = creds["staff"][0]["password"]
    assert f"login: cashier / {cashier}" in text.stdout  # the same credentials on a rerun
    assert all(till["api_key"] in text.stdout for till in creds["tills"])
    assert len(creds["coupon_codes"]) == 3
    assert f"coupon codes (10 % off, single use): {', '.join(creds['coupon_codes'])}" in text.stdout


def test_configuration_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    env = {**os.environ, "KASSA_CONFIG": str(tmp_path / "nope.toml")}
    result = subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "db", "upgrade"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"kassa: configuration file {tmp_path / 'nope.toml'} does not exist"
    ]
