"""HTTP figures: ``POST /api/v1/payments`` + ``GET qr.png`` as ``kassa serve`` serves them
(granian), SQLite and PostgreSQL.

Each backend gets a fresh database and a server serving the gateway with a bare Flask JSON
endpoint mounted beside it at ``/bare``: the baseline, measured on the same server in the same
run. For 1, 2 and 4 web processes (granian workers, 4 WSGI threads each):

1. **maximum sustainable rate** first: a closed loop of ``clients`` keep-alive connections
   sending as fast as answers come, for Kassa and for the bare endpoint in turn, ``repeats``
   times each, the median of each in HTTP requests/s. The
   clients run in two processes of their own (``http.client``, no GIL shared with each other's
   bookkeeping), so the load generator is not the ceiling of the bare endpoint;
2. **latency at half of Kassa's own maximum** (at the default 2 processes): an open loop
   offering ``max / 2`` HTTP requests/s, each request timed from its scheduled start (a stalled
   server cannot hide its queue: no coordinated omission), p50 and p99; the bare endpoint at the
   same offered rate beside it.

A sale is two HTTP requests (the POST and the GET of its PNG); both count in requests/s.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import multiprocessing
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import text

from gateway.adapters.db import Database

PG_URL = os.environ.get(
    "KASSA_BENCH_DATABASE_URL",
    os.environ.get("KASSA_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"),
)
KASSA = "POST /payments + GET qr.png"
BARE = "bare Flask JSON endpoint"
BENCH_MFA_KEY = "bench"
RATIO_TARGET = 0.5  # the issue's target: Kassa's max req/s >= 50 % of the bare endpoint's
P99_TARGET_NS = 50_000_000  # and p99 <= 50 ms at half of Kassa's own max


@dataclass
class Throughput:
    """Closed-loop HTTP requests/s of Kassa and of the bare endpoint at one process count."""

    processes: int
    kassa_rps: float
    bare_rps: float

    @property
    def ratio(self) -> float:
        return self.kassa_rps / self.bare_rps if self.bare_rps else 0.0


@dataclass
class Latency:
    name: str
    rate: float
    p50_ns: int
    p99_ns: int


@dataclass
class BackendResult:
    backend: str
    tills: int = 1  # the load spread over this many tills …
    stores: int = 1  # … of this many stores
    throughput: list[Throughput] = field(default_factory=list)
    latency: list[Latency] = field(default_factory=list)  # [Kassa, bare]


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


# A chain's festival day: every store's tills sell at once, each till a customer every few
# seconds, not one till far past its velocity threshold. ``stores`` 0: the demo's first till.
FESTIVAL_STORES = 5_000
FESTIVAL_TILLS_PER_STORE = 10


def _seed(url: str, workdir: Path) -> str:
    """Migrate and seed ``url``; the first till's API key."""
    return _seed_tills(url, workdir, 0, 0)[0]


def _seed_tills(url: str, workdir: Path, stores: int, tills_per_store: int) -> list[str]:
    """Migrate and seed ``url`` with the demo and ``stores`` more stores of ``tills_per_store``
    tills each (bulk inserts); the API keys the load spreads over (the demo's first till's
    alone when ``stores`` is 0)."""
    from sqlalchemy import func, insert, select

    from gateway.adapters.models import Merchant, Store, Till
    from gateway.services.demo import seed_demo
    from gateway.services.staff import mfa
    from gateway.services.staff.auth import issue_till_key

    mfa.configure(BENCH_MFA_KEY)  # the demo's manager enrols a second factor
    db = Database(url)
    db.upgrade()
    with db.unit_of_work() as uow:
        creds = seed_demo(uow, workdir / "creds.json")
    keys: list[str] = []
    if stores > 0 and tills_per_store > 0:
        with db.unit_of_work() as uow:
            merchant_id = uow.session.scalar(select(Merchant.id).order_by(Merchant.id))
            first = uow.session.scalar(select(func.max(Store.id))) or 0
            uow.session.execute(
                insert(Store),
                [
                    {
                        "id": first + n + 1,
                        "merchant_id": merchant_id,
                        "name": f"Festival store {n + 1}",
                        "city": "Bench",
                        "timezone": "UTC",
                    }
                    for n in range(stores)
                ],
            )
            rows = []
            for n in range(stores):
                for t in range(tills_per_store):
                    key = issue_till_key()
                    keys.append(key.key)
                    rows.append(
                        {
                            "store_id": first + n + 1,
                            "label": f"T{t + 1:02d}",
                            "name": f"Till {t + 1}",
                            "active": True,
                            "api_key_id": key.key_id,
                            "api_key_hash": key.key_hash,
                        }
                    )
            uow.session.execute(insert(Till), rows)
            if db.dialect == "postgresql":  # ids given above: the sequence moves past them
                uow.session.execute(
                    text("SELECT setval(pg_get_serial_sequence('stores', 'id'), :n)"),
                    {"n": first + stores},
                )
            uow.commit()
    db.dispose()
    return keys or [creds["tills"][0]["api_key"]]


@contextmanager
def _server(
    url: str, workdir: Path, workers: int | None = None, threads: int | None = None
) -> Iterator[tuple[str, str]]:
    """Migrate and seed ``url``, start the server (``workers`` processes of ``threads`` threads,
    default ``BENCH_WORKERS`` / ``BENCH_THREADS``, else 2 and 4); yield (base URL, till API
    key). Other benchmarks (bench.callbacks) use this."""
    key = _seed(url, workdir)
    workers = workers or int(os.environ.get("BENCH_WORKERS", "2"))
    threads = threads or int(os.environ.get("BENCH_THREADS", "4"))
    with _serving(url, workers, threads, workdir) as port:
        yield f"http://127.0.0.1:{port}", key


SERVER_SCRIPT = (
    "import sys; from gateway.entrypoints.web_server import serve_wsgi; "
    "serve_wsgi('bench.wsgi_bench:app', host='127.0.0.1', port=int(sys.argv[1]), "
    "workers=int(sys.argv[2]), threads=int(sys.argv[3]), role='web')"
)


@contextmanager
def _serving(url: str, workers: int, threads: int, workdir: Path) -> Iterator[int]:
    """The gateway and /bare served as ``kassa serve`` serves the gateway (granian, its
    ``workers`` processes of ``threads`` WSGI threads each); yields its port."""
    port = _free_port()
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": url,
        "KASSA_WEB_SECRET_KEY": "bench",
        "KASSA_SECURITY_MFA_KEY": BENCH_MFA_KEY,
        "KASSA_PATHS_VAR_DIR": str(workdir / "var"),
        "KASSA_DATABASE_POOL_SIZE": str(max(threads, 16)),  # as `kassa serve` sets it
    }
    # As `kassa serve` runs it: Kassa's request log line costs every request (Kassa's and the
    # bare endpoint's) what it costs deployed. It goes to a file: a pipe nobody reads would
    # stall the server once its buffer is full.
    log_path = workdir / f"server-{port}.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER_SCRIPT, str(port), str(workers), str(threads)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group: workers left behind can be ended too
    )
    log.close()  # the server holds its own copy
    try:
        # A ceiling, not a deadline: four workers' imports take long on a loaded machine.
        deadline = time.monotonic() + 180
        while True:
            try:
                if Client(port).get("/bare/")[0] == 200:
                    break
            except OSError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                proc.wait(timeout=30)
                err = log_path.read_bytes()[-2000:].decode(errors="replace")
                raise RuntimeError(f"the server did not start: {err}")
            time.sleep(0.1)
        yield port
    finally:
        proc.send_signal(signal.SIGINT)  # idle keep-alive clients need no grace
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        # A master killed before its workers left them running (seen on a loaded machine):
        # end whatever of its group is still there.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)


class Client:
    """One keep-alive HTTP/1.1 connection (``http.client``: lighter than requests, so the
    load generator costs the shared CPU less); reconnects once if the server closed it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, bytes]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                response = self.conn.getresponse()
                return response.status, response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.conn.close()  # the server ended the keep-alive: the next try reconnects
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        return self.request("GET", path, headers=headers)


# A call makes one sale's HTTP requests on a client; it returns each request's end time
# (perf_counter_ns).
Call = Callable[[Client], list[int]]


def kassa_sale(keys: str | list[str]) -> Call:
    """POST a QR payment (with a fresh Idempotency-Key, so retrying it is safe), GET its PNG;
    each sale at one of ``keys``' tills picked at random."""
    pool = [keys] if isinstance(keys, str) else keys
    body = json.dumps({"amount": "12.34", "currency": "EUR", "method": "qr"}).encode()

    def call(client: Client) -> list[int]:
        auth = {"Authorization": f"Bearer {random.choice(pool)}"}
        headers = {**auth, "Content-Type": "application/json", "Idempotency-Key": uuid.uuid4().hex}
        status, created = client.request("POST", "/api/v1/payments", body, headers)
        posted = time.perf_counter_ns()
        if status != 201:
            raise RuntimeError(f"POST /payments answered {status}: {created[:300]!r}")
        status, png = client.get(json.loads(created)["qr_png_url"], auth)
        if status != 200 or not png.startswith(b"\x89PNG"):
            raise RuntimeError(f"GET qr.png answered {status}")
        return [posted, time.perf_counter_ns()]

    return call


def bare_call(client: Client) -> list[int]:
    status, _ = client.get("/bare/")
    if status != 200:
        raise RuntimeError(f"bare endpoint answered {status}")
    return [time.perf_counter_ns()]


def _calls(keys: list[str]) -> dict[str, Call]:
    return {KASSA: kassa_sale(keys), BARE: bare_call}


def _client_process(
    port: int, keys: list[str], name: str, threads: int, start: float, stop: float
) -> int:
    """One load process: ``threads`` closed-loop clients between ``start`` and ``stop`` (wall
    clock, shared by every process); HTTP requests answered inside the window."""
    call = _calls(keys)[name]
    counts = [0] * threads

    def client(n: int) -> None:
        c = Client(port)
        while time.time() < start:
            time.sleep(0.001)
        while time.time() < stop:
            counts[n] += len(call(c))

    with ThreadPoolExecutor(max_workers=threads) as pool:
        list(pool.map(client, range(threads)))
    return sum(counts)


def closed_loop(port: int, keys: list[str], name: str, clients: int, seconds: float) -> float:
    """HTTP requests/s of ``clients`` connections sending as fast as answers come, split over
    two load processes (the last sale in flight at the end counts: a fraction of a second)."""
    procs = 2 if clients > 1 else 1
    start = time.time() + 0.5
    stop = start + seconds
    ctx = multiprocessing.get_context("fork")
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    with ctx.Pool(procs) as pool:
        done = pool.starmap(
            _client_process, [(port, keys, name, share, start, stop) for share in shares]
        )
    return sum(done) / seconds


def open_loop(port: int, call: Call, requests_per_second: float, seconds: float) -> list[int]:
    """Start a sale every 1/rate s; each request's latency (ns) from the sale's scheduled start.

    The second request of a sale is measured from the first one's end, so both count alike.
    """
    per_sale = len(call(Client(port)))
    sales_per_second = requests_per_second / per_sale
    count = max(1, int(sales_per_second * seconds))
    latencies: list[int] = []
    local = threading.local()
    start = time.perf_counter_ns() + 50_000_000

    def one(i: int) -> None:
        scheduled = start + int(i * 1e9 / sales_per_second)
        delay = (scheduled - time.perf_counter_ns()) / 1e9
        if delay > 0:
            time.sleep(delay)
        client = getattr(local, "client", None) or Client(port)
        local.client = client
        previous = scheduled
        for end in call(client):
            latencies.append(end - previous)
            previous = end

    with ThreadPoolExecutor(max_workers=64) as pool:
        list(pool.map(one, range(count)))
    return latencies


def _percentile(samples: list[int], fraction: float) -> int:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def run(
    backends: tuple[str, ...],
    *,
    processes: tuple[int, ...] = (1, 2, 4),
    threads: int = 4,
    clients: int = 8,
    seconds: float = 5.0,
    latency_processes: int = 2,
    latency_seconds: float = 10.0,
    repeats: int = 3,
    stores: int = FESTIVAL_STORES,
    tills_per_store: int = FESTIVAL_TILLS_PER_STORE,
) -> list[BackendResult]:
    out: list[BackendResult] = []
    for backend in backends:
        with tempfile.TemporaryDirectory() as tmp, _database(backend, Path(tmp)) as url:
            if url is None:
                continue
            keys = _seed_tills(url, Path(tmp), stores, tills_per_store)
            result = BackendResult(backend, tills=len(keys), stores=stores if stores else 1)
            for count in processes:
                with _serving(url, count, threads, Path(tmp)) as port:
                    calls = _calls(keys)
                    for call in calls.values():  # warm-up: connections, imports, caches
                        client = Client(port)
                        for _ in range(10 * count):
                            call(client)
                    # Kassa and the bare endpoint in turn, ``repeats`` times, and each one's
                    # median: a burst of load from the machine's other tenants then lands on
                    # one run of one of them, not on the ratio.
                    runs: dict[str, list[float]] = {KASSA: [], BARE: []}
                    for _ in range(repeats):
                        for name in runs:
                            runs[name].append(closed_loop(port, keys, name, clients, seconds))
                    kassa, bare = statistics.median(runs[KASSA]), statistics.median(runs[BARE])
                    result.throughput.append(Throughput(count, kassa, bare))
                    if count == latency_processes:
                        rate = kassa / 2
                        for name, call in calls.items():
                            lat = open_loop(port, call, rate, latency_seconds)
                            result.latency.append(
                                Latency(name, rate, _percentile(lat, 0.5), _percentile(lat, 0.99))
                            )
            out.append(result)
    return out


def throughput_table(results: list[BackendResult], clients: int) -> str:
    lines = [
        f"Maximum sustainable rate (closed loop, {clients} keep-alive clients, HTTP requests/s):",
        f"{'backend':<11} {'processes':>9} {'Kassa':>8} {'bare':>8} {'Kassa/bare':>10}",
    ]
    for result in results:
        lines.append(
            f"  {result.backend}: each sale at one of {result.tills:,} tills ({result.stores:,} "
            "stores) picked at random"
        )
        for t in result.throughput:
            lines.append(
                f"{result.backend:<11} {t.processes:>9} {t.kassa_rps:>8.0f} {t.bare_rps:>8.0f} "
                f"{t.ratio:>9.0%}"
            )
    return "\n".join(lines)


def targets(results: list[BackendResult]) -> list[str]:
    """One line per target and backend: met or MISSED."""
    lines = []
    for result in results:
        judged = [t for t in result.throughput if t.processes == 2] or result.throughput
        best = judged[-1]
        ok = best.ratio >= RATIO_TARGET
        lines.append(
            f"Target {result.backend}: Kassa >= {RATIO_TARGET:.0%} of bare req/s at "
            f"{best.processes} processes: {best.ratio:.0%} {'met' if ok else 'MISSED'}"
        )
        for lat in result.latency:
            if lat.name == KASSA:
                ok = lat.p99_ns <= P99_TARGET_NS
                lines.append(
                    f"Target {result.backend}: p99 <= {P99_TARGET_NS / 1e6:g} ms at half of "
                    f"Kassa's max ({lat.rate:.0f} req/s): {lat.p99_ns / 1e6:.1f} ms "
                    f"{'met' if ok else 'MISSED'}"
                )
    return lines


def describe(results: list[BackendResult]) -> list[Any]:
    """Latency rows for bench.qr's table (imported lazily there to keep one table format)."""
    from bench.qr import Row

    rows = []
    for result in results:
        by_name = {lat.name: lat for lat in result.latency}
        ours, bare = by_name.get(KASSA), by_name.get(BARE)
        if ours is None or bare is None:
            continue
        rows.append(
            Row(
                f"HTTP {result.backend}: {ours.name} @ {ours.rate:.0f} req/s (half max)",
                ours.p50_ns,
                ours.p99_ns,
                bare.p50_ns,
                note=f"bare p99 {bare.p99_ns / 1e6:.1f} ms at the same rate",
            )
        )
    return rows
