"""CPU per sale in the web process: POST /api/v1/payments + GET its qr.png, as WSGI calls.

``python -m bench.qr --http`` measures sales per second over HTTP on a saturated machine, where
the rate follows the CPU each sale costs. This measures that CPU alone, without an HTTP server
or clients: a fresh database (SQLite, or a schema of its own on PostgreSQL) seeded as the HTTP
benchmark seeds it (the demo, then festival stores of 10 tills each), and N sales, each a QR
payment created with a fresh ``Idempotency-Key`` at a till picked at random and the GET of its
PNG with the same key, as WSGI calls to the app ``bench/wsgi_bench.py`` builds (Kassa's logging
included, its lines written to ``os.devnull``). The process's CPU time divided by N; several
runs in one process (after a warm-up), and their median. The database server's CPU (PostgreSQL)
is not counted.

Run from the repository root::

    .venv/bin/python -m bench.prof_sale [--backend sqlite,postgresql] [--count 1000] [--runs 5]
    .venv/bin/python -m bench.prof_sale --backend postgresql --profile cumulative --top 90
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import json
import os
import pstats
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.http_api import BENCH_MFA_KEY, _database, _seed_tills
from bench.prof_callback import wsgi_environ

WARM_UP = 200
SALE_BODY = json.dumps({"amount": "12.34", "currency": "EUR", "method": "qr"}).encode()


def _environ(method: str, path: str, key: str, body: bytes = b"") -> dict[str, Any]:
    """A till's request as the server hands it over (a POST with a fresh Idempotency-Key)."""
    headers = {"Authorization": f"Bearer {key}"}
    if body:
        headers |= {"Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
    return wsgi_environ(method, path, body, headers)


def _sales(keys: list[str], count: int, seed: int) -> list[dict[str, Any]]:
    """``count`` POSTs, each at a till picked at random (their environs made before timing)."""
    pick = random.Random(seed)
    return [
        _environ("POST", "/api/v1/payments", pick.choice(keys), SALE_BODY) for _ in range(count)
    ]


def _sell(app: Callable[..., Iterable[bytes]], posts: list[dict[str, Any]]) -> None:
    """Each sale: its POST, then the GET of its PNG with the same till's key."""
    answered: list[str] = []

    def start_response(status: str, _headers: Any, _exc_info: Any = None) -> None:
        answered.append(status)

    for post in posts:
        created = b"".join(app(post, start_response))
        if not answered.pop().startswith("201"):
            raise AssertionError(f"POST /payments answered: {created[:300]!r}")
        key = post["HTTP_AUTHORIZATION"].removeprefix("Bearer ")
        url = json.loads(created)["qr_png_url"]
        png = b"".join(app(_environ("GET", url, key), start_response))
        if not answered.pop().startswith("200") or not png.startswith(b"\x89PNG"):
            raise AssertionError("GET qr.png was not answered with a PNG")


def measure(backend: str, args: argparse.Namespace) -> None:
    """Seed ``backend``, then print its CPU per sale (or its profile)."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        url = stack.enter_context(_database(backend, Path(tmp)))
        if url is None:
            return
        keys = _seed_tills(url, Path(tmp), args.stores, 10)
        os.environ.update(
            {
                "KASSA_DATABASE_URL": url,
                "KASSA_WEB_SECRET_KEY": "bench",
                "KASSA_PATHS_VAR_DIR": f"{tmp}/var",
                "KASSA_SECURITY_MFA_KEY": BENCH_MFA_KEY,
            }
        )
        from bench.wsgi_bench import app

        devnull = stack.enter_context(open(os.devnull, "w"))
        with contextlib.redirect_stderr(devnull):  # Kassa's log lines
            _sell(app, _sales(keys, WARM_UP, 0))
            if args.profile:
                posts = _sales(keys, args.count, 1)
                profile = cProfile.Profile(time.process_time)
                profile.runcall(_sell, app, posts)
            else:
                per_sale = []
                for run in range(args.runs):
                    posts = _sales(keys, args.count, run + 1)
                    started = time.process_time()
                    _sell(app, posts)
                    per_sale.append((time.process_time() - started) * 1000 / args.count)
        if args.profile:
            stats = pstats.Stats(profile, stream=sys.stdout)
            stats.sort_stats(args.profile).print_stats(args.top)
            if args.callees:
                stats.print_callees(args.callees)
            return
        runs = " ".join(f"{ms:.3f}" for ms in per_sale)
        print(
            f"{backend}: CPU per sale (POST /payments + GET qr.png): "
            f"median {statistics.median(per_sale):.3f} ms (runs: {runs})"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backend", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--count", type=int, default=1000, help="sales per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--stores", type=int, default=500, help="festival stores (10 tills each)")
    parser.add_argument("--profile", metavar="SORT", help="one run under cProfile, sorted so")
    parser.add_argument("--top", type=int, default=60, help="functions the profile lists")
    parser.add_argument("--callees", metavar="REGEX", help="with --profile: what these call")
    args = parser.parse_args()
    backends = args.backend.split(",")
    if len(backends) == 1:
        measure(backends[0], args)
        return
    # One process per backend: the app and its per-process caches are built once per process.
    for backend in backends:
        argv = [f"--backend={backend}", f"--count={args.count}", f"--runs={args.runs}"]
        argv += [f"--stores={args.stores}", f"--top={args.top}"]
        argv += [f"--profile={args.profile}"] if args.profile else []
        argv += [f"--callees={args.callees}"] if args.callees else []
        subprocess.run([sys.executable, "-m", "bench.prof_sale", *argv], check=True)


if __name__ == "__main__":
    main()
