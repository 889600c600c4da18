"""CPU per bank callback in the web process: real signed callbacks through the real WSGI app.

``python -m bench.callbacks`` measures callbacks per second over HTTP on a saturated machine,
where the rate follows the CPU each callback costs. This measures that CPU alone, without an
HTTP server or clients: N fresh pending payments in a schema of their own on PostgreSQL, one
signed ``payment.succeeded`` per payment, each delivered as a WSGI call to the app
``bench/wsgi_bench.py`` builds (Kassa's logging included, its lines written to ``os.devnull``),
and the process's CPU time divided by N. Several runs in one process (after a warm-up), each
with its own payments, and their median.

Run from the repository root::

    .venv/bin/python -m bench.prof_callback [--count 2000] [--runs 3]
    .venv/bin/python -m bench.prof_callback --profile cumulative --top 90   # times ~4x real
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench import callbacks
from bench.http_api import BENCH_MFA_KEY, _database, _seed

WARM_UP = 200


def wsgi_environ(
    method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """A WSGI environ as the server hands one over: ``headers`` as ``HTTP_*`` keys (a
    ``Content-Type`` as ``CONTENT_TYPE``), the body's length when there is one."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
        "HTTP_HOST": "127.0.0.1:8000",
    }
    if body:
        environ["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        if name.lower() == "content-type":
            environ["CONTENT_TYPE"] = value
        else:
            environ["HTTP_" + name.upper().replace("-", "_")] = value
    return environ


def _deliveries(url: str, count: int, seed: int) -> list[dict[str, Any]]:
    batch = callbacks.create_payments(url, count)
    return [
        wsgi_environ("POST", "/bank/callbacks", body, headers)
        for _, body, headers in callbacks.signed_callbacks(batch, 0, seed)
    ]


def _deliver(app: Callable[..., Iterable[bytes]], environs: list[dict[str, Any]]) -> None:
    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        if not status.startswith(("200", "202")):
            raise AssertionError(f"a callback was answered {status}")

    for environ in environs:
        b"".join(app(environ, start_response))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="callbacks per run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", metavar="SORT", help="one run under cProfile, sorted so")
    parser.add_argument("--top", type=int, default=60, help="functions the profile lists")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = stack.enter_context(_database("postgresql", Path(tmp)))
        assert url is not None
        stack.enter_context(callbacks._bank_environment())
        _seed(url, Path(tmp))
        os.environ.update(
            {
                "KASSA_DATABASE_URL": url,
                "KASSA_WEB_SECRET_KEY": "bench",
                "KASSA_PATHS_VAR_DIR": f"{tmp}/var",
                "KASSA_SECURITY_MFA_KEY": BENCH_MFA_KEY,
            }
        )
        from bench.wsgi_bench import app
        from gateway.entrypoints.web_server import ready_to_serve

        ready_to_serve()  # as each web worker does once its app is loaded

        devnull = stack.enter_context(open(os.devnull, "w"))
        stack.enter_context(contextlib.redirect_stderr(devnull))  # Kassa's log lines
        _deliver(app, _deliveries(url, WARM_UP, 0))
        if args.profile:
            environs = _deliveries(url, args.count, 1)
            profile = cProfile.Profile(time.process_time)
            profile.runcall(_deliver, app, environs)
            stats = pstats.Stats(profile, stream=sys.stdout)
            stats.sort_stats(args.profile).print_stats(args.top)
            return
        per_callback = []
        for run in range(args.runs):
            environs = _deliveries(url, args.count, run + 1)
            started = time.process_time()
            _deliver(app, environs)
            per_callback.append((time.process_time() - started) * 1000 / args.count)
        runs = " ".join(f"{ms:.3f}" for ms in per_callback)
        print(f"CPU per callback: median {statistics.median(per_callback):.3f} ms (runs: {runs})")


if __name__ == "__main__":
    main()
