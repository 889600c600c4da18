"""``tests/unit`` is pure: no database, no subprocess, no network. A test that needs one of
them belongs in ``tests/integration``; here it fails at once, saying so."""

from __future__ import annotations

import socket
import sqlite3
import subprocess
from typing import Any, NoReturn

import pytest


@pytest.fixture(autouse=True)
def _pure(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(what: str) -> Any:
        def refused(*args: object, **kwargs: object) -> NoReturn:
            raise AssertionError(
                f"tests/unit is pure, but this test {what}: move it to tests/integration"
            )

        return refused

    monkeypatch.setattr(subprocess.Popen, "_execute_child", refuse("starts a process"))
    monkeypatch.setattr(socket.socket, "connect", refuse("opens a network connection"))
    monkeypatch.setattr(sqlite3, "connect", refuse("opens a database"))
