"""Bank callbacks per second: ``POST /bank/callbacks`` as ``kassa serve`` serves it (granian),
PostgreSQL and SQLite.

Each run creates N fresh pending payments, signs one ``payment.succeeded`` callback per payment
plus some re-deliveries of the same event ids (duplicates), and sends them all from concurrent
clients over real HTTP, as fast as answers come. Every callback does the real work: verify the
signature, store the raw event, lock the payment, mark it paid. Afterwards the database is
counted: every event stored exactly once, every payment paid exactly once, nothing lost or
doubled (the run fails otherwise).

The ceiling, measured in the same run on the same database, alternating with Kassa's runs: the
same writes as bare SQL (:func:`bare_sql`: insert the raw event under its unique id, mark the
payment paid, insert its history row; one transaction per callback) on as many connections as
there are clients, counted afterwards exactly like Kassa's. Issue 19 asks Kassa for at least
half of it on PostgreSQL. Each is measured with 1, 2 and 4 web processes
(``--web-processes``). For scale, ``standardwebhooks``' ``Webhook.verify`` per second alone.
Figures are medians over 3 runs.

Healing (first): with 30 % of the callbacks lost at the sandbox bank, the worker's polls must
get every payment paid; the median time from the wallet's payment to Kassa's paid state is
printed beside the poll interval (a lost one should be healed within one interval).

Run from the repository root: ``.venv/bin/python -m bench.callbacks`` (``--quick`` for a smoke
run, ``--heal-only`` / ``--rate-only`` for one half).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import random
import socket
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from bench.http_api import SERVER_SCRIPT, _database, _server
from gateway.adapters.db import Database
from gateway.adapters.models import InboundEvent, Job, Payment, PaymentEvent, Till
from gateway.domain.money import Money
from gateway.services.payments import qr_payments
from gateway.services.staff.auth import TillContext

TARGET_SHARE = 0.5  # issue 19: Kassa at least half the bare-SQL ceiling on PostgreSQL
SECRET = "whsec_" + base64.b64encode(b"kassa-bench-webhook-secret-32byt").decode()
BANK_MERCHANT = "KASSA-DEMO-0001"

Delivery = tuple[str, bytes, dict[str, str]]  # (event id, body, headers)
T = TypeVar("T")


@dataclass(frozen=True)
class RunFigure:
    per_second: float
    distinct: int
    duplicates: int
    cpu_ms: float | None  # CPU milliseconds per delivery of Kassa's web processes (None: unknown)
    client_cpu_ms: float = 0.0  # CPU milliseconds per delivery of the load generator (Kassa's)


def server_cpu_seconds(base: str) -> float | None:
    """CPU seconds used so far by the server's processes serving ``base`` (its master and
    workers, found by their command line in /proc: the workers are forks of the master);
    None where there is no /proc."""
    ours = [b"-c", SERVER_SCRIPT.encode(), str(urlsplit(base).port).encode()]
    proc = Path("/proc")
    if not proc.is_dir():
        return None
    total = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if (entry / "cmdline").read_bytes().split(b"\0")[1:4] != ours:
                continue
            fields = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:  # ended meanwhile
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime
    return total


@contextmanager
def _bank_environment() -> Iterator[None]:
    """The server reads its bank secrets from KASSA_BANK_* (it inherits os.environ)."""
    values = {
        "KASSA_BANK_WEBHOOK_SECRET": SECRET,
        "KASSA_BANK_MERCHANT_ID": BANK_MERCHANT,
        "KASSA_BANK_API_KEY": "sk_bench",
    }
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def create_payments(
    url: str, count: int, settings: qr_payments.PaymentSettings | None = None
) -> list[Payment]:
    """``count`` fresh pending QR payments (one transaction), as the tills would create them."""
    db = Database(url)
    try:
        with db.unit_of_work() as uow:
            till = uow.session.scalars(select(Till).order_by(Till.id)).first()
            assert till is not None
            context = TillContext(till.id, till.store_id, till.store.merchant_id, till.label)
            settings = settings or qr_payments.PaymentSettings()
            created = [
                qr_payments.create_qr_payment(
                    uow, context, money=Money.parse("12.34", "EUR"), settings=settings
                )
                for _ in range(count)
            ]
            uow.commit()
            uow.session.expunge_all()
            return created
    finally:
        db.dispose()


def signed_callbacks(batch: list[Payment], duplicates: int, seed: int) -> list[Delivery]:
    """One signed ``payment.succeeded`` per payment, plus re-deliveries, shuffled."""
    signer = Webhook(SECRET)
    now = datetime.now(UTC)
    originals: list[Delivery] = []
    for payment in batch:
        event_id = f"msg_{uuid.uuid4().hex}"
        body = json.dumps(
            {
                "type": "payment.succeeded",
                "timestamp": now.isoformat(),
                "data": {
                    "bank_payment_id": f"bp_{payment.reference}",
                    "merchant_id": BANK_MERCHANT,
                    "reference": payment.reference,
                    "bill_number": None,
                    "terminal_label": "T01",
                    "amount": Money(payment.amount_minor, payment.currency).to_decimal_string(),
                    "currency": payment.currency,
                    "wallet": "••••1234",
                    "paid_at": now.isoformat(),
                },
            },
            separators=(",", ":"),
        )
        headers = {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": signer.sign(event_id, now, body),
            "Content-Type": "application/json",
        }
        originals.append((event_id, body.encode(), headers))
    rng = random.Random(seed)
    deliveries = originals + [rng.choice(originals) for _ in range(duplicates)]
    rng.shuffle(deliveries)
    return deliveries


def send_all(base: str, deliveries: list[Delivery], clients: int) -> tuple[float, Counter[str]]:
    """Send every delivery from ``clients`` concurrent clients; (seconds taken, answers).

    Each client keeps one HTTP/1.1 connection and writes each request as bytes encoded before
    the clock starts (:class:`RawClient`): the load generator shares the machine's cores with
    the server, so it must cost as little as possible (``http.client`` parses each answer's
    headers with the email package: several times this client's CPU per callback).
    """
    answers: Counter[str] = Counter()
    lock = threading.Lock()
    host, port = urlsplit(base).hostname or "127.0.0.1", urlsplit(base).port or 80
    requests = iter([_encoded(host, port, body, headers) for _, body, headers in deliveries])

    def client(_: int) -> None:
        connection = RawClient(host, port)
        try:
            for request in _take(requests, lock):
                status, text = connection.exchange(request)
                if status not in (200, 202):
                    raise RuntimeError(f"callback answered {status}: {text!r}")
                with lock:
                    answers[json.loads(text)["status"]] += 1
        finally:
            connection.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    return time.perf_counter() - began, answers


def _encoded(host: str, port: int, body: bytes, headers: dict[str, str]) -> bytes:
    lines = ["POST /bank/callbacks HTTP/1.1", f"Host: {host}:{port}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class RawClient:
    """One keep-alive HTTP/1.1 connection on a bare socket: writes a request's bytes, reads the
    status line, the headers up to their blank line and a ``Content-Length`` body (what the
    server sends here: no chunked answers)."""

    def __init__(self, host: str, port: int) -> None:
        self.sock = socket.create_connection((host, port), timeout=60)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""

    def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.sock.sendall(request)
        while (end := self.buffer.find(b"\r\n\r\n")) < 0:
            self._fill()
        head, self.buffer = self.buffer[:end], self.buffer[end + 4 :]
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        while len(self.buffer) < length:
            self._fill()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return status, body

    def _fill(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def _take(queue: Iterator[T], lock: threading.Lock) -> Iterator[T]:
    while True:
        with lock:
            item = next(queue, None)
        if item is None:
            return
        yield item


def check_database(url: str, batch: list[Payment], deliveries: list[Delivery]) -> None:
    """Every distinct event stored once, every payment paid once: else raise."""
    ids = {event_id for event_id, _, _ in deliveries}
    payment_ids = [p.id for p in batch]
    db = Database(url)
    try:
        with db.unit_of_work(readonly=True) as uow:
            stored = uow.session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.external_id.in_(ids))
            )
            processed = uow.session.scalar(
                select(func.count())
                .select_from(InboundEvent)
                .where(InboundEvent.external_id.in_(ids), InboundEvent.status == "processed")
            )
            paid_events = uow.session.scalar(
                select(func.count())
                .select_from(PaymentEvent)
                .where(PaymentEvent.payment_id.in_(payment_ids), PaymentEvent.kind == "paid")
            )
            paid = uow.session.scalar(
                select(func.count())
                .select_from(Payment)
                .where(Payment.id.in_(payment_ids), Payment.status == "paid")
            )
    finally:
        db.dispose()
    expected = len(ids)
    found = {"stored": stored, "processed": processed, "paid events": paid_events, "paid": paid}
    if any(value != expected for value in found.values()):
        raise AssertionError(f"expected {expected} of each, found {found}")


def one_run(base: str, url: str, count: int, duplicates: int, clients: int, seed: int) -> RunFigure:
    batch = create_payments(url, count)
    deliveries = signed_callbacks(batch, duplicates, seed)
    cpu_before = server_cpu_seconds(base)
    client_before = time.process_time()  # this process: the load generator's threads alone
    seconds, answers = send_all(base, deliveries, clients)
    client_ms = (time.process_time() - client_before) * 1000 / len(deliveries)
    cpu_after = server_cpu_seconds(base)
    expected = Counter({"processed": count, "duplicate": duplicates})
    if answers != expected:
        raise AssertionError(f"answers {dict(answers)}, expected {dict(expected)}")
    check_database(url, batch, deliveries)
    cpu_ms = None
    if cpu_before is not None and cpu_after is not None:
        cpu_ms = (cpu_after - cpu_before) * 1000 / len(deliveries)
    return RunFigure(len(deliveries) / seconds, count, duplicates, cpu_ms, client_ms)


# -- the ceiling: the same work as bare SQL ---------------------------------------------------


def bare_sql(url: str, deliveries: list[Delivery], clients: int) -> float:
    """Deliveries per second done as bare SQL on ``clients`` connections, one transaction each:
    insert the raw event under its unique id (a duplicate inserts nothing and stops there),
    mark the payment found by its reference paid, insert its history row. No HTTP, no
    signature, no ORM: the database's ceiling for a callback's writes, for Kassa's figure to be
    held against."""
    engine = Database(url).engine
    postgres = engine.dialect.name == "postgresql"
    mark = "%s" if postgres else "?"
    insert_event = (
        "INSERT INTO inbound_events (source, external_id, kind, headers, body, content_hash, "
        f"status, received_at, processed_at) VALUES ({', '.join([mark] * 9)}) "
        "ON CONFLICT (source, external_id) DO NOTHING RETURNING id"
    )
    mark_paid = (
        f"UPDATE payments SET status = 'paid', bank_payment_id = {mark}, paid_at = {mark}, "
        f"updated_at = {mark}, version = version + 1 WHERE reference = {mark} "
        "AND status = 'pending' RETURNING id"
    )
    history = (
        "INSERT INTO payment_events (payment_id, kind, from_status, to_status, actor, detail, "
        f"created_at) VALUES ({mark}, 'paid', 'pending', 'paid', 'bank', {mark}, {mark})"
    )
    queue = iter(deliveries)
    lock = threading.Lock()

    def stamp() -> object:
        now = datetime.now(UTC)
        return now if postgres else now.replace(tzinfo=None).isoformat(sep=" ")

    def client(_: int) -> None:
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            for event_id, body, headers in _take(queue, lock):
                data = json.loads(body)["data"]
                now = stamp()
                if not postgres:
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(
                    insert_event,
                    ("bank", event_id, "payment.succeeded", json.dumps(headers), body,
                     hashlib.sha256(body).hexdigest(), "processed", now, now),
                )  # fmt: skip
                if cursor.fetchone() is not None:
                    # Found by its reference, as Kassa must: the bank knows no other name.
                    reference = data["reference"]
                    cursor.execute(mark_paid, (data["bank_payment_id"], now, now, reference))
                    (payment_id,) = cursor.fetchone()
                    cursor.execute(history, (payment_id, json.dumps(data), now))
                connection.commit() if postgres else cursor.execute("COMMIT")
        finally:
            connection.close()

    began = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(client, range(clients)))
    took = time.perf_counter() - began
    engine.dispose()
    return len(deliveries) / took


def bare_run(url: str, count: int, duplicates: int, clients: int, seed: int) -> RunFigure:
    """The ceiling's run; its CPU is this process's while the bare loop runs (nothing else
    in it works meanwhile), per delivery."""
    batch = create_payments(url, count)
    deliveries = signed_callbacks(batch, duplicates, seed)
    cpu_before = time.process_time()
    per_second = bare_sql(url, deliveries, clients)
    cpu_ms = (time.process_time() - cpu_before) * 1000 / len(deliveries)
    check_database(url, batch, deliveries)  # the ceiling does the same work, counted alike
    return RunFigure(per_second, count, duplicates, cpu_ms)


def verify_baseline(count: int) -> float:
    """``standardwebhooks`` ``Webhook.verify`` per second on signed callback bodies, in-process."""
    now = datetime.now(UTC)
    webhook = Webhook(SECRET)
    body = json.dumps({"type": "payment.succeeded", "data": {"reference": "K" * 13}})
    samples = []
    for i in range(count):
        event_id = f"msg_{i}"
        headers = {
            "webhook-id": event_id,
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(event_id, now, body),
        }
        samples.append(headers)
    began = time.perf_counter()
    for headers in samples:
        webhook.verify(body, headers, json_parse=False)
    return count / (time.perf_counter() - began)


# -- healing: callbacks lost at the bank, payments found by asking it -------------------------


@dataclass(frozen=True)
class HealFigure:
    drop_percent: int
    payments: int
    lost: int  # callbacks the sandbox never delivered during the run
    median_all: float  # seconds from the wallet's payment to Kassa's paid state
    median_lost: float | None  # the same, for the payments whose callback was lost


@contextmanager
def _sandbox_bank(workdir: Path, callback_url: str) -> Iterator[str]:
    """The sandbox acquirer on a free port, in this process, delivering in the background."""
    import logging

    from werkzeug.serving import make_server

    from sandbox_bank import state

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    from sandbox_bank.app import create_app as create_sandbox

    server = make_server("127.0.0.1", 0, lambda e, r: app(e, r), threaded=True)
    url = f"http://127.0.0.1:{server.server_port}"
    app = create_sandbox(
        {
            "sandbox_bank": {
                "url": url,
                "database_url": f"sqlite:///{workdir / 'sandbox-bank.db'}",
                "secrets_file": str(workdir / "sandbox-bank.json"),
                "deliver_in_background": True,
                "poll_interval_ms": 20,
                "retry_base_ms": 1000,
                "retry_max_s": 300,
                "merchants": [
                    {
                        "merchant_id": BANK_MERCHANT,
                        "name": "Kassa Bench",
                        "currency": "EUR",
                        "callback_url": callback_url,
                        "api_key": "sk_bench",
                        "webhook_secret": SECRET,
                    }
                ],
            }
        }
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield url
    finally:
        server.shutdown()
        thread.join(10)
        state.of(app).close()


@contextmanager
def _worker(url: str, bank_url: str, interval: float) -> Iterator[None]:
    """``kassa worker`` against the bank, asking it every ``interval`` seconds."""
    import subprocess
    import sys

    env = {
        **os.environ,
        "KASSA_DATABASE_URL": url,
        "KASSA_BANK_URL": bank_url,
        "KASSA_WORKER_POLL_INTERVAL_MS": "20",
        "KASSA_PAYMENTS_BANK_POLL_AFTER_SECONDS": str(interval),
        "KASSA_PAYMENTS_BANK_POLL_BACKOFF": "1",
        "KASSA_PAYMENTS_BANK_POLL_MAX_INTERVAL_SECONDS": str(interval),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gateway.entrypoints.cli", "worker"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        # Its first line says it runs jobs: a loaded machine takes many seconds to get there,
        # and a heal timed before it would measure the worker's start, not the polls.
        assert proc.stdout is not None
        first = proc.stdout.readline()
        if "running jobs" not in first:
            proc.wait(timeout=30)
            raise RuntimeError(f"kassa worker stopped at start (exit code {proc.returncode})")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def heal_run(
    url: str,
    bank_url: str,
    workdir: Path,
    count: int,
    drop_percent: int,
    interval: float,
    clients: int,
) -> HealFigure:
    """Pay ``count`` fresh QR payments at the sandbox wallet with ``drop_percent`` of their
    callbacks lost; wait until Kassa has every one paid (else fail); time each."""
    import requests

    from gateway.settings import PaymentSettings

    faults = f"{bank_url}/sandbox/merchants/{BANK_MERCHANT}/faults"
    requests.put(faults, json={"drop_percent": drop_percent}, timeout=10).raise_for_status()
    settings = PaymentSettings(
        bank_poll_after_seconds=interval,
        bank_poll_backoff=1,
        bank_poll_max_interval_seconds=interval,
    )
    batch = create_payments(url, count, settings)
    paid_at: dict[str, float] = {}
    lock = threading.Lock()

    def pay(payment: Payment) -> None:
        began = time.time()
        answer = requests.post(
            f"{bank_url}/sandbox/wallet/pay",
            json={"payload": payment.qr_payload, "wallet_id": f"bench-{payment.id[:8]}"},
            timeout=30,
        )
        answer.raise_for_status()
        with lock:
            paid_at[payment.id] = began

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(pay, batch))
    kassa_paid = _wait_all_paid(url, [p.id for p in batch], timeout=max(120.0, 20 * interval))
    lost = _lost_references(f"sqlite:///{workdir / 'sandbox-bank.db'}")
    requests.delete(faults, timeout=10).raise_for_status()
    delays = {pid: kassa_paid[pid] - paid_at[pid] for pid in paid_at}
    healed = [delays[p.id] for p in batch if p.reference in lost]
    return HealFigure(
        drop_percent,
        count,
        len(healed),
        statistics.median(delays.values()),
        statistics.median(healed) if healed else None,
    )


def _wait_all_paid(url: str, payment_ids: list[str], timeout: float) -> dict[str, float]:
    """When each payment became paid (its history's ``paid`` entry), once all are."""
    db = Database(url)
    deadline = time.monotonic() + timeout
    try:
        while True:
            with db.unit_of_work(readonly=True) as uow:
                rows = uow.session.execute(
                    select(PaymentEvent.payment_id, PaymentEvent.created_at).where(
                        PaymentEvent.payment_id.in_(payment_ids), PaymentEvent.kind == "paid"
                    )
                ).all()
            if len(rows) == len(payment_ids):
                return {pid: _epoch(at) for pid, at in rows}
            if time.monotonic() > deadline:
                with db.unit_of_work(readonly=True) as uow:
                    errors = Counter(uow.session.scalars(select(Job.last_error)))
                raise AssertionError(
                    f"only {len(rows)} of {len(payment_ids)} payments paid after {timeout:.0f} s;"
                    f" job errors: {dict(errors.most_common(3))}"
                )
            time.sleep(0.2)
    finally:
        db.dispose()


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _lost_references(sandbox_db: str) -> set[str]:
    """The references whose payment.succeeded the sandbox has not delivered (lost)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(sandbox_db)
    try:
        with engine.connect() as conn:
            bodies = conn.execute(
                text(
                    "SELECT body FROM deliveries WHERE status = 'pending' "
                    "AND type = 'payment.succeeded'"
                )
            ).scalars()
            return {json.loads(body)["data"]["reference"] for body in bodies}
    finally:
        engine.dispose()


def heal(args: argparse.Namespace) -> list[tuple[str, list[HealFigure]]]:
    results = []
    for backend in args.backends:
        with (
            tempfile.TemporaryDirectory() as tmp,
            _database(backend, Path(tmp)) as url,
            _bank_environment(),
        ):
            if url is None:
                continue
            with (
                _server(url, Path(tmp)) as (base, _key),
                _sandbox_bank(Path(tmp), f"{base}/bank/callbacks") as bank_url,
                _worker(url, bank_url, args.poll_interval),
            ):
                work = Path(tmp)
                heal_run(url, bank_url, work, 20, 0, args.poll_interval, 4)  # warm-up
                figures = [
                    heal_run(url, bank_url, work, args.heal_payments, drop, args.poll_interval, 4)
                    for drop in (0, 30)
                ]
            results.append((backend, figures))
    return results


@dataclass(frozen=True)
class RateFigure:
    backend: str
    web_processes: int
    kassa: list[RunFigure]  # callbacks per second (and CPU per callback), each run
    bare: list[RunFigure]  # the same work as bare SQL, each run


def run(args: argparse.Namespace) -> Iterator[RateFigure]:
    """Kassa's callbacks per second beside the bare-SQL ceiling, alternating run by run on the
    same database, for each number of web processes (each figure as soon as it is in)."""
    for backend in args.backends:
        for processes in args.web_processes:
            with (
                tempfile.TemporaryDirectory() as tmp,
                _database(backend, Path(tmp)) as url,
                _bank_environment(),
            ):
                if url is None:
                    continue
                with _server(url, Path(tmp), processes, args.threads) as (base, _key):
                    one_run(base, url, 50, 10, args.clients, seed=0)  # warm-up: imports, pools
                    bare_run(url, 50, 10, args.clients, seed=0)
                    kassa, bare = [], []
                    for n in range(args.runs):
                        kassa.append(
                            one_run(base, url, args.events, args.duplicates, args.clients, n)
                        )
                        bare.append(
                            bare_run(url, args.events, args.duplicates, args.clients, seed=n)
                        )
                yield RateFigure(backend, processes, kassa, bare)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run: few events")
    parser.add_argument("--events", type=int, default=3000, help="distinct events per run")
    parser.add_argument("--duplicates", type=int, default=300, help="re-deliveries per run")
    parser.add_argument("--clients", type=int, default=16, help="concurrent HTTP clients")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--web-processes", type=int, nargs="+", default=[1, 2, 4], help="granian workers"
    )
    parser.add_argument(
        "--threads", type=int, default=16, help="WSGI threads per worker (kassa serve's)"
    )
    parser.add_argument("--backends", nargs="+", default=["postgresql", "sqlite"])
    parser.add_argument(
        "--poll-interval", type=float, default=2.0, help="seconds between asking the bank"
    )
    parser.add_argument("--heal-payments", type=int, default=200, help="payments per heal run")
    parser.add_argument(
        "--heal-only", action="store_true", help="only the lost-callbacks runs, not the rate"
    )
    parser.add_argument(
        "--rate-only", action="store_true", help="only the callbacks per second, not healing"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.events, args.duplicates, args.runs, args.heal_payments = 300, 30, 3, 60
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    print(
        f"{args.events} distinct payment.succeeded callbacks + {args.duplicates} duplicates per "
        f"run, {args.clients} clients, --threads {args.threads}, {os.cpu_count()} "
        f"cores; median of {args.runs} runs"
    )
    if not args.rate_only:
        print_healing(args)
    if args.heal_only:
        return
    verify = statistics.median(verify_baseline(20_000) for _ in range(3))
    print(
        f"callbacks/s: Kassa (POST /bank/callbacks as kassa serve serves it) beside the ceiling "
        f"(the same writes as bare SQL, one transaction per callback on {args.clients} connections)"
    )
    for figure in run(args):  # printed as each comes in: the whole takes many minutes
        kassa = statistics.median(f.per_second for f in figure.kassa)
        bare = statistics.median(f.per_second for f in figure.bare)
        pairs = [
            (k.per_second, b.per_second) for k, b in zip(figure.kassa, figure.bare, strict=True)
        ]
        verdict = ""
        if figure.backend == "postgresql":
            verdict = "meets" if kassa >= TARGET_SHARE * bare else "MISSES"
            verdict = f"  ({verdict} the {TARGET_SHARE:.0%} target)"
        print(
            f"{figure.backend:>10}, {figure.web_processes} web process"
            f"{'es' if figure.web_processes > 1 else ''}: Kassa {kassa:6.0f}/s, bare SQL "
            f"{bare:6.0f}/s, {kassa / bare:4.0%} (runs: "
            f"{', '.join(f'{k:.0f}/{b:.0f}' for k, b in pairs)}"
            f"); none lost or doubled{verdict}",
            flush=True,
        )
        print_cpu(figure)
    print(f"{'verify':>10}: {verify:7.0f} Webhook.verify/s in-process (the HMAC check alone)")


def print_cpu(figure: RateFigure) -> None:
    """CPU per callback beside the ceiling's: on a shared machine the rates swing with what
    else runs, the CPU each side spends per callback much less. Kassa's is its web processes'
    (granian, Flask, the callback's work), the ceiling's the bare loop's process; neither
    counts the database server's, nor Kassa's the load generator's."""
    kassa = [f.cpu_ms for f in figure.kassa]
    bare = [f.cpu_ms for f in figure.bare]
    if None in kassa or None in bare:
        return
    kassa_ms = statistics.median(k for k in kassa if k is not None)
    bare_ms = statistics.median(b for b in bare if b is not None)
    print(
        f"{'':>10}  CPU per callback: Kassa's web processes {kassa_ms:.2f} ms, bare SQL's "
        f"loop {bare_ms:.2f} ms, {bare_ms / kassa_ms:4.0%} (runs: "
        f"{', '.join(f'{k:.2f}/{b:.2f}' for k, b in zip(kassa, bare, strict=True))})",
        flush=True,
    )
    client_ms = statistics.median(f.client_cpu_ms for f in figure.kassa)
    print(f"{'':>10}  and the load generator's (HTTP clients) {client_ms:.2f} ms", flush=True)


def print_healing(args: argparse.Namespace) -> None:
    print(
        f"healing: {args.heal_payments} QR payments paid at the sandbox wallet per run, the "
        f"worker asks the bank every {args.poll_interval:g} s; time from the wallet's payment "
        "to Kassa's paid state"
    )
    for backend, (baseline, dropped) in heal(args):
        healed = dropped.median_lost or 0
        verdict = "within" if healed <= args.poll_interval else "LATER than"
        print(
            f"{backend:>10}: no callback lost (baseline): median {baseline.median_all:.2f} s; "
            f"{dropped.drop_percent} % lost ({dropped.lost} callbacks): median "
            f"{dropped.median_all:.2f} s, {dropped.median_lost or 0:.2f} s for the lost ones "
            f"({verdict} one poll interval of {args.poll_interval:g} s); all "
            f"{dropped.payments} paid"
        )


if __name__ == "__main__":
    main()
