"""HTTP figures: ``POST /api/v1/payments`` + ``GET qr.png`` under gunicorn, SQLite and PostgreSQL.

Each backend gets a fresh database and a gunicorn server (2 workers, one per core) serving the
gateway with a bare Flask JSON endpoint mounted beside it at ``/bare``: the baseline, measured on
the same server in the same run. Two loads per endpoint:

* open loop at a fixed offered load (default 100 HTTP requests/s, i.e. 50 sales/s each making
  a POST and a GET): latency p50/p99 of every request, measured from the sale's scheduled start
  so a stalled server cannot hide its queueing (no coordinated omission);
* closed loop with 8 clients as fast as they go: HTTP requests/s.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests
from sqlalchemy import text

from gateway.adapters.db import Database

PG_URL = os.environ.get(
    "KASSA_BENCH_DATABASE_URL",
    os.environ.get("KASSA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)


@dataclass(frozen=True)
class HttpFigure:
    name: str
    p50_ns: int
    p99_ns: int
    rps: float


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _database(backend: str, workdir: Path) -> Iterator[str | None]:
    if backend == "sqlite":
        yield f"sqlite:///{workdir / 'bench.db'}"
        return
    schema = f"kassa_bench_{os.getpid()}"
    admin = Database(PG_URL)
    try:
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
            conn.execute(text(f"CREATE SCHEMA {schema}"))
    except Exception as exc:  # no PostgreSQL here: say so, do not fail the other figures
        print(f"PostgreSQL at {PG_URL} unavailable ({type(exc).__name__}); skipped")
        yield None
        return
    sep = "&" if "?" in PG_URL else "?"
    try:
        yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    finally:
        with admin.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()


@contextmanager
def _server(url: str, workdir: Path, gunicorn: str | None = None) -> Iterator[tuple[str, str]]:
    """Migrate and seed ``url``, start gunicorn (``gunicorn``: its options, else
    ``BENCH_GUNICORN``); yield (base URL, till API key)."""
    from gateway.services.demo import seed_demo
    from gateway.services.staff import mfa

    mfa.configure("bench")  # the demo enrols its manager's second factor
    db = Database(url)
    db.upgrade()
    with db.unit_of_work() as uow:
        creds = seed_demo(uow, workdir / "creds.json")
    db.dispose()
    port = _free_port()
    env = {**os.environ, "KASSA_DATABASE_URL": url, "KASSA_WEB_SECRET_KEY": "bench"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            *(gunicorn or os.environ.get("BENCH_GUNICORN", "--workers 2 --threads 4")).split(),
            "bench.wsgi_bench:app",
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        # A ceiling, not a deadline: four workers' imports take long on a loaded machine.
        deadline = time.monotonic() + 180
        while True:
            try:
                if requests.get(base + "/bare/", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()  # else reading its stderr waits for a master still running
                _, err = proc.communicate(timeout=30)
                raise RuntimeError(f"gunicorn did not start: {err.decode()[-2000:]}")
            time.sleep(0.1)
        yield base, creds["tills"][0]["api_key"]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _percentile(samples: list[int], fraction: float) -> int:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


# A call makes one sale's HTTP requests; it returns each request's end time (perf_counter_ns).
Call = Callable[[requests.Session], list[int]]


def _open_loop(call: Call, sales_per_second: float, seconds: float) -> list[int]:
    """Start a sale every 1/rate s; each request's latency (ns) from the sale's scheduled start.

    The second request of a sale is measured from the first one's end, so both count alike.
    """
    count = int(sales_per_second * seconds)
    latencies: list[int] = []
    local = threading.local()
    start = time.perf_counter_ns() + 50_000_000

    def one(i: int) -> None:
        scheduled = start + int(i * 1e9 / sales_per_second)
        delay = (scheduled - time.perf_counter_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        session = getattr(local, "session", None) or requests.Session()
        local.session = session
        previous = scheduled
        for end in call(session):
            latencies.append(end - previous)
            previous = end

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(count)))
    return latencies


def _closed_loop(call: Call, clients: int, total_sales: int) -> float:
    """HTTP requests/s with ``clients`` clients sending as fast as answers come."""
    per_client = total_sales // clients
    done = [0] * clients

    def client(n: int) -> None:
        with requests.Session() as session:
            for _ in range(per_client):
                done[n] += len(call(session))

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return sum(done) / (time.perf_counter() - began)


def _calls(base: str, key: str) -> dict[str, Call]:
    auth = {"Authorization": f"Bearer {key}"}

    def create_and_qr(session: requests.Session) -> list[int]:
        created = session.post(
            base + "/api/v1/payments",
            json={"amount": "12.34", "currency": "EUR", "method": "qr"},
            headers={**auth, "Idempotency-Key": uuid.uuid4().hex},
            timeout=10,
        )
        posted = time.perf_counter_ns()
        if created.status_code != 201:
            raise RuntimeError(f"POST /payments answered {created.status_code}: {created.text}")
        png = session.get(base + created.json()["qr_png_url"], headers=auth, timeout=10)
        if png.status_code != 200 or not png.content.startswith(b"\x89PNG"):
            raise RuntimeError(f"GET qr.png answered {png.status_code}")
        return [posted, time.perf_counter_ns()]

    def bare(session: requests.Session) -> list[int]:
        if session.get(base + "/bare/", timeout=10).status_code != 200:
            raise RuntimeError("bare endpoint failed")
        return [time.perf_counter_ns()]

    return {"POST /payments + GET qr.png": create_and_qr, "bare Flask JSON endpoint": bare}


def run(
    backends: tuple[str, ...], rate: float, seconds: float, burst: int
) -> list[tuple[str, HttpFigure, HttpFigure]]:
    """For each backend: (backend, our figure, baseline figure)."""
    out: list[tuple[str, HttpFigure, HttpFigure]] = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp, _database(backend, Path(tmp)) as url:
            if url is None:
                continue
            with _server(url, Path(tmp)) as (base, key):
                figures: dict[str, HttpFigure] = {}
                for name, call in _calls(base, key).items():
                    for _ in range(20):
                        call(requests.Session())  # warm-up: connections, imports, caches
                    per_sale = len(call(requests.Session()))
                    lat = _open_loop(call, rate / per_sale, seconds)
                    rps = _closed_loop(call, 8, burst // per_sale)
                    figures[name] = HttpFigure(
                        name, _percentile(lat, 0.5), _percentile(lat, 0.99), rps
                    )
                ours, baseline = figures.values()
                out.append((backend, ours, baseline))
    return out


def describe(results: list[tuple[str, HttpFigure, HttpFigure]], rate: float) -> list[Any]:
    """Rows for bench.qr's table (imported lazily there to keep one table format)."""
    from bench.qr import Row

    rows = []
    for backend, ours, baseline in results:
        rows.append(
            Row(
                f"HTTP {backend}: {ours.name} @ {rate:g} req/s",
                ours.p50_ns,
                ours.p99_ns,
                baseline.p50_ns,
                note=f"{ours.rps:.0f} req/s (bare: {baseline.rps:.0f} req/s); "
                f"bare p99 {baseline.p99_ns / 1e6:.1f} ms",
            )
        )
    return rows
