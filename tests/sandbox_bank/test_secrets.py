"""The secrets file: created once with fresh values, mode 0600, agreed on under a race."""

from __future__ import annotations

import base64
import stat
import threading
from pathlib import Path

import pytest

from sandbox_bank import secrets, settings
from sandbox_bank.errors import SandboxConfigurationError


def test_created_on_first_use_with_fresh_values_and_mode_0600(tmp_path: Path) -> None:
    path = tmp_path / "var" / "sandbox-bank.json"
    values = secrets.load_or_create(path)
    assert values["merchant_id"] == "KASSA-DEMO-0001"
    assert values["api_key"].startswith("sk_sandbox_") and len(values["api_key"]) > 30
    assert values["webhook_secret"].startswith("whsec_")
    assert len(base64.b64decode(values["webhook_secret"].removeprefix("whsec_"))) == 24
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert secrets.load_or_create(path) == values
    assert secrets.load_or_create(tmp_path / "other.json") != values


def test_processes_starting_together_agree(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-bank.json"
    start = threading.Barrier(8)
    seen: list[dict[str, str]] = []

    def worker() -> None:
        start.wait()
        seen.append(secrets.load_or_create(path))

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(seen) == 8 and all(values == seen[0] for values in seen)
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox-bank.json"]  # no leftovers


def test_a_broken_file_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-bank.json"
    path.write_text('{"merchant_id": "KASSA-DEMO-0001"}')
    with pytest.raises(SandboxConfigurationError, match="delete it"):
        secrets.load_or_create(path)


def test_settings_take_the_demo_merchants_secrets_from_the_file(tmp_path: Path) -> None:
    path = tmp_path / "sandbox-bank.json"
    merchant = {
        "merchant_id": "KASSA-DEMO-0001",
        "callback_url": "http://127.0.0.1:8000/bank/callbacks",
    }
    chosen = settings.from_config(
        {"sandbox_bank": {"secrets_file": str(path), "merchants": [merchant]}}
    )
    stored = secrets.load_or_create(path)
    assert chosen.merchants[0].api_key == stored["api_key"]
    assert chosen.merchants[0].webhook_secret == stored["webhook_secret"]


def test_the_shipped_configuration_is_complete() -> None:
    section = settings.read_config()["sandbox_bank"]
    assert section["port"] == 8100 and section["merchants"][0]["merchant_id"] == "KASSA-DEMO-0001"
    assert "api_key" not in section["merchants"][0]  # secrets never live in the repository
    with pytest.raises(SandboxConfigurationError, match="unknown keys"):
        settings.from_config({"sandbox_bank": {"prot": 1}})


def test_without_hard_links_the_file_is_still_created_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_links(source: object, target: object) -> None:
        raise PermissionError("hard links are not supported here")

    monkeypatch.setattr(secrets.os, "link", no_links)
    path = tmp_path / "sandbox-bank.json"
    values = secrets.load_or_create(path)
    assert secrets.load_or_create(path) == values
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["sandbox-bank.json"]
