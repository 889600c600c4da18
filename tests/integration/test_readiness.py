"""Readiness apart from liveness: `/readyz` says whether the web tier can serve (database
reachable, schema at head), and `kassa run` waits for it without a deadline."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest

from gateway.adapters.db import Database
from gateway.entrypoints.app import create_app
from gateway.entrypoints.cli import stop_children, wait_ready
from tests.conftest import LiveServer, app_config


def test_ready_when_the_database_answers_at_the_current_schema(db: Database) -> None:
    client = create_app(app_config(db), db=db).test_client()
    assert client.get("/healthz").status_code == 200
    ready = client.get("/readyz")
    assert (ready.status_code, ready.json) == (200, {"status": "ready"})


def test_not_ready_on_an_unmigrated_or_unreachable_database(tmp_path: Path) -> None:
    empty = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    client = create_app(app_config(empty), db=empty).test_client()
    answer = client.get("/readyz")
    assert answer.status_code == 503 and "kassa db upgrade" in answer.json["reason"]
    assert client.get("/healthz").status_code == 200  # alive all the same

    gone = Database("postgresql://postgres@127.0.0.1:1/nothing?connect_timeout=2")
    answer = create_app(app_config(gone), db=gone).test_client().get("/readyz")
    assert answer.status_code == 503 and "does not answer" in answer.json["reason"]


class SlowStart:
    """A web tier that answers 503 a few times before it is ready."""

    def __init__(self, not_ready: int) -> None:
        self.left = not_ready

    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if self.left > 0:
            self.left -= 1
            start_response("503 Service Unavailable", [("Content-Type", "text/plain")])
            return [b"starting"]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])


def test_run_waits_for_readiness_with_a_progress_line(capsys: pytest.CaptureFixture[str]) -> None:
    child = _sleeper()
    try:
        with LiveServer(SlowStart(not_ready=8)) as server:
            waited = wait_ready("the web tier", server.url + "/readyz", [child])
    finally:
        stop_children([child])
    assert waited > 0 and child.returncode is not None
    err = capsys.readouterr().err
    assert "waiting for the web tier" in err and "answers 503" in err
    assert "the web tier is ready" in err


def test_run_stops_waiting_when_a_process_stops() -> None:
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    with pytest.raises(click.ClickException, match="stopped during start-up"):
        wait_ready("the web tier", "http://127.0.0.1:1/readyz", [dead])
