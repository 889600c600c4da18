"""``kassa serve`` as an operator runs it: granian's master and workers, real processes and HTTP.

Its own lines in Kassa's format beside the request line, a worker that dies started again, and
no worker left serving once its master is killed outright. Nothing here waits on a clock: each
wait has a generous ceiling, and no assertion is about time.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from gateway.adapters.db import Database
from gateway.entrypoints import web_server
from tests.conftest import TEST_MFA_KEY

KASSA = [sys.executable, "-m", "gateway.entrypoints.cli"]
# The server's own behaviour: one database is enough (its log file is not a terminal, so its
# lines are JSON).
pytestmark = pytest.mark.parametrize("db", ["sqlite"], indirect=True)
CEILING = 180  # seconds a loaded machine may take to start or stop a process


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid:  # ppid
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


def _until(done: Callable[[], bool], what: str) -> None:
    ceiling = time.monotonic() + CEILING  # a ceiling, not a deadline
    while not done():
        if time.monotonic() > ceiling:
            pytest.fail(f"{what} not reached within {CEILING} s")
        time.sleep(0.1)


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


class Served:
    def __init__(self, proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
        self.proc, self.url, self.log = proc, url, log

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]


def _start(db: Database, tmp_path: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """``kassa serve`` with two workers on ``db``; (its process, base URL, log file)."""
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": db.url,
        "KASSA_WEB_SECRET_KEY": "web-server-test",
        "KASSA_SECURITY_MFA_KEY": TEST_MFA_KEY,
        "KASSA_PATHS_VAR_DIR": str(tmp_path / "var"),
    }
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*KASSA, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2",
             "--threads", "2"],
            env=env, stdout=out, stderr=out, start_new_session=True,
        )  # fmt: skip
    return proc, f"http://127.0.0.1:{port}", log


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=CEILING)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    with contextlib.suppress(ProcessLookupError):  # whatever of its group is left
        os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def served(db: Database, tmp_path: Path) -> Iterator[Served]:
    proc, url, log = _start(db, tmp_path)
    try:
        _until(lambda: _ready(url) or proc.poll() is not None, "readiness")
        assert proc.poll() is None, log.read_text()[-3000:]
        yield Served(proc, url, log)
    finally:
        _stop(proc)


def test_the_servers_lines_are_kassas_and_each_request_has_one_line(served: Served) -> None:
    answer = requests.get(f"{served.url}/healthz", headers={"X-Request-Id": "one-line"}, timeout=30)
    assert answer.status_code == 200
    _until(
        lambda: any(line.get("request_id") == "one-line" for line in served.lines()),
        "the request's line",
    )
    lines = served.lines()
    server = [line for line in lines if str(line["logger"]).startswith("_granian")]
    assert server, lines  # granian's own start lines, as JSON objects of Kassa's format
    assert all(line["role"] == "web" for line in lines)
    mine = [line for line in lines if line.get("request_id") == "one-line"]
    assert [line["message"] for line in mine if line["logger"] == "gateway.request"] == [
        mine[-1]["message"]
    ]
    assert str(mine[-1]["message"]).startswith("GET /healthz 200")
    assert not [line for line in lines if line["logger"] == "granian.access"]


def test_a_worker_that_dies_is_started_again(served: Served) -> None:
    workers = _children(served.proc.pid)
    assert len(workers) == 2
    os.kill(workers[0], signal.SIGKILL)
    _until(lambda: not _alive(workers[0]), "the killed worker's end")
    _until(
        lambda: len([w for w in _children(served.proc.pid) if _alive(w)]) == 2,
        "a new worker",
    )
    for _ in range(4):  # both workers answer (the new one imported the app itself)
        _until(lambda: _ready(served.url), "readiness again")


def test_no_worker_serves_on_once_its_master_is_killed(served: Served) -> None:
    workers = _children(served.proc.pid)
    assert len(workers) == 2
    served.proc.kill()  # SIGKILL: the master cannot stop them itself
    served.proc.wait()
    _until(lambda: not any(_alive(w) for w in workers), "the workers' end")
    assert not _ready(served.url)


def test_no_worker_is_left_when_its_master_is_killed_while_they_start(
    db: Database, tmp_path: Path
) -> None:
    """Killed before its workers have imported the app (or installed their signal handlers):
    each still notices its master is gone and ends."""
    proc, url, _log = _start(db, tmp_path)
    try:
        _until(lambda: len(_children(proc.pid)) == 2, "two workers")
        workers = _children(proc.pid)
        proc.kill()
        proc.wait()
        _until(lambda: not any(_alive(w) for w in workers), "the workers' end")
        assert not _ready(url)
    finally:
        _stop(proc)


@pytest.mark.usefixtures("db")  # the module's one database; the test needs none
def test_a_worker_keeps_what_it_loaded_out_of_the_collectors_passes() -> None:
    # load_in_worker as granian calls it in each worker: once the app's module is imported,
    # what is loaded is frozen (full collections no longer walk it), and garbage made after
    # that, reference cycles included, is still collected.
    script = (
        "import gc, json, os\n"
        "from gateway.entrypoints.web_server import load_in_worker\n"
        "assert gc.get_freeze_count() == 0\n"
        "app = load_in_worker('json:dumps')\n"
        "assert app.wrapped is json.dumps\n"
        "frozen = gc.get_freeze_count()\n"
        "cycle = []; cycle.append(cycle); del cycle\n"
        "print(frozen, gc.collect())\n"
    )
    env = {**os.environ, "KASSA_WEB_MASTER_PID": str(os.getpid())}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=CEILING
    )
    assert done.returncode == 0, done.stderr
    frozen, collected = (int(n) for n in done.stdout.split())
    assert frozen > 1000  # the interpreter's and Kassa's modules, not a handful
    assert collected >= 1


@pytest.mark.usefixtures("db")  # the module's one database; the test needs none
def test_a_requests_environ_carries_no_process_environment_variable() -> None:
    # Granian builds each environ from a copy of os.environ: the worker's app sees only the
    # request's own keys, a header named like a variable (HTTP_PROXY) kept when the request
    # sent it, and the server's CGI and wsgi.* keys.
    process = {"KASSA_BANK_WEBHOOK_SECRET": "whsec_x", "HTTP_PROXY": "http://proxy:3128"}
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ)
        start_response("200 OK", [])
        return [b""]

    serve = web_server.without_process_environment(app, process)
    request = {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "wsgi.input_terminated": True}
    serve({**process, **request}, lambda *_: None)
    serve({**process, **request, "HTTP_PROXY": "sent-by-the-client"}, lambda *_: None)
    assert seen[0] == request
    assert seen[1] == {**request, "HTTP_PROXY": "sent-by-the-client"}
