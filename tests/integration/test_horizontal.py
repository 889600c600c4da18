"""Two web instances and two workers on one PostgreSQL, as on two hosts: every exactly-once
guarantee holds across them.

Real processes: two ``kassa serve`` (granian) and two ``kassa worker``, sharing nothing but the
database. Each instance gets the same request or the same signed callback at the same moment
(a barrier releases the senders together); the database must show one payment per
Idempotency-Key, one stored event and one state change per callback, and each job claimed and
run once. Nothing here waits on a clock: the processes are awaited with generous ceilings, and
no assertion is about time. Skipped without PostgreSQL (SQLite is one host's database).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select, update

from gateway.adapters.db import Database
from gateway.adapters.models import (
    AuditEntry,
    IdempotencyRecord,
    InboundEvent,
    Job,
    Payment,
    PaymentEvent,
    utcnow,
)
from gateway.services.payments.qr_payments import POLL_JOB
from gateway.services.staff import audit
from tests.conftest import TEST_MFA_KEY
from tests.integration.test_bank_callbacks import BANK_MERCHANT, SECRET, paid_event, signed

pytestmark = pytest.mark.parametrize("db", ["postgresql"], indirect=True)

KASSA = [sys.executable, "-m", "gateway.entrypoints.cli"]
CEILING = 180  # seconds a loaded machine may take to start a process or finish the jobs
SENDS_PER_INSTANCE = 3


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _env(db: Database, logs: Path) -> dict[str, str]:
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("KASSA_BANK_")},
        "KASSA_DATABASE_URL": db.url,
        "KASSA_WEB_SECRET_KEY": "horizontal-test",  # the same on every host
        "KASSA_SECURITY_MFA_KEY": TEST_MFA_KEY,
        "KASSA_SECURITY_ARGON2_TIME_COST": "1",
        "KASSA_SECURITY_ARGON2_MEMORY_KIB": "256",
        # No bank to ask: an expired payment's watch job expires it without asking.
        "KASSA_BANK_SECRETS_FILE": str(logs / "no-bank.json"),
        "KASSA_PAYMENTS_BANK_POLL_AFTER_SECONDS": "0",  # a payment's watch job runs at expiry
        "KASSA_WORKER_POLL_INTERVAL_MS": "100",
    }


# The web tier checks the bank's signatures on its callbacks.
WEB_ENV = {"KASSA_BANK_WEBHOOK_SECRET": SECRET, "KASSA_BANK_MERCHANT_ID": BANK_MERCHANT}


class Fleet:
    """Two web instances and two workers, each a process of its own."""

    def __init__(self, db: Database, logs: Path) -> None:
        self.env = _env(db, logs)
        self.logs = logs
        self.processes: list[tuple[str, subprocess.Popen[bytes]]] = []
        self.urls: list[str] = []

    def start(self, name: str, *args: str, env: dict[str, str] | None = None) -> None:
        log = (self.logs / f"{name}.log").open("wb")
        environment = {**self.env, **(env or {})}
        proc = subprocess.Popen([*KASSA, *args], env=environment, stdout=log, stderr=log)
        self.processes.append((name, proc))

    def serve(self, name: str) -> None:
        port = _free_port()
        self.start(name, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
                   "--threads", "8", env=WEB_ENV)  # fmt: skip
        self.urls.append(f"http://127.0.0.1:{port}")

    def wait_ready(self) -> None:
        for url in self.urls:
            self.wait_until(lambda url=url: _ready(url), f"{url}/readyz")

    def wait_until(self, done: Callable[[], bool], what: str) -> None:
        ceiling = time.monotonic() + CEILING  # a ceiling, not a deadline
        while not done():
            for name, proc in self.processes:
                if proc.poll() is not None:
                    pytest.fail(f"{name} exited: {self.output(name)[-3000:]}")
            if time.monotonic() > ceiling:
                pytest.fail(f"{what} not reached within {CEILING} s")
            time.sleep(0.1)

    def output(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self) -> None:
        for _, proc in self.processes:
            proc.terminate()
        for _, proc in self.processes:
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/readyz", timeout=5).status_code == 200
    except requests.RequestException:
        return False


@pytest.fixture
def fleet(db: Database, demo: dict[str, Any], tmp_path: Path) -> Iterator[Fleet]:
    processes = Fleet(db, tmp_path)
    try:
        processes.serve("web-a")
        processes.serve("web-b")
        processes.start("worker-a", "worker")
        processes.start("worker-b", "worker")
        processes.wait_ready()
        yield processes
    finally:
        processes.stop()


def all_at_once(calls: list[Callable[[], requests.Response]]) -> list[requests.Response]:
    """Run every call in its own thread, released together by a barrier."""
    barrier = threading.Barrier(len(calls))
    answers: list[requests.Response | BaseException | None] = [None] * len(calls)

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=CEILING)
            answers[n] = calls[n]()
        except BaseException as exc:  # reported by the assertion below
            answers[n] = exc

    threads = [threading.Thread(target=run, args=(n,)) for n in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    failures = [a for a in answers if not isinstance(a, requests.Response)]
    assert not failures, failures
    return [a for a in answers if isinstance(a, requests.Response)]


def create_payment(url: str, api_key: str, key: str) -> requests.Response:
    """POST a payment; while the first request with this key is still running elsewhere, the
    API answers 409 in-progress and asks for a retry, which a till does."""
    for _ in range(100):
        answer = requests.post(
            f"{url}/api/v1/payments",
            json={"amount": "12.34", "currency": "EUR", "method": "qr", "reference": key},
            headers={"Authorization": f"Bearer {api_key}", "Idempotency-Key": key},
            timeout=60,
        )
        in_progress = answer.status_code == 409 and "in-progress" in answer.json().get("type", "")
        if not in_progress:
            return answer
    raise AssertionError(f"{key}: still in progress after 100 tries")


def count(db: Database, query: Any) -> int:
    with db.unit_of_work(readonly=True) as uow:
        return int(uow.session.scalar(select(func.count()).select_from(query.subquery())) or 0)


def test_two_instances_and_two_workers_keep_every_exactly_once_guarantee(
    db: Database, demo: dict[str, Any], fleet: Fleet
) -> None:
    api_key = demo["tills"][0]["api_key"]
    keys = [f"race-{n}" for n in range(6)]

    # 1. The same Idempotency-Key on both instances at once: one payment, one answer.
    payment_ids: dict[str, str] = {}
    for key in keys:
        calls = [
            lambda url=url, key=key: create_payment(url, api_key, key)
            for url in fleet.urls
            for _ in range(SENDS_PER_INSTANCE)
        ]
        answers = all_at_once(calls)
        assert {a.status_code for a in answers} == {201}, [a.text for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1
        assert sum(a.headers.get("Idempotent-Replayed") != "true" for a in answers) == 1
        payment_ids[key] = answers[0].json()["id"]
    ids = list(payment_ids.values())
    assert count(db, select(Payment)) == len(keys)
    assert count(db, select(IdempotencyRecord)) == len(keys)
    assert count(db, select(AuditEntry).where(AuditEntry.action == "payment.created")) == len(keys)
    assert count(db, select(Job).where(Job.kind == POLL_JOB)) == len(keys)

    # 2. The bank's callback for each payment delivered to both instances at once.
    with db.unit_of_work(readonly=True) as uow:
        payments = list(uow.session.scalars(select(Payment).where(Payment.id.in_(ids))))
        uow.session.expunge_all()
    for payment in payments:
        raw, headers = signed(f"evt_{payment.id}", paid_event(payment))
        calls = [
            lambda url=url, raw=raw, headers=headers: requests.post(
                f"{url}/bank/callbacks", data=raw, headers=headers, timeout=60
            )
            for url in fleet.urls
            for _ in range(SENDS_PER_INSTANCE)
        ]
        answers = all_at_once(calls)
        assert all(200 <= a.status_code < 300 for a in answers), [a.text for a in answers]
    assert count(db, select(InboundEvent)) == len(ids)
    assert count(db, select(Payment).where(Payment.status == "paid")) == len(ids)
    assert count(db, select(PaymentEvent).where(PaymentEvent.kind == "paid")) == len(ids)

    # 3. Jobs: fresh payments whose expiry is due now; both workers poll the one job table.
    fresh = [
        create_payment(fleet.urls[n % 2], api_key, f"expire-{n}").json()["id"] for n in range(12)
    ]
    with db.unit_of_work() as uow:
        past = utcnow() - timedelta(minutes=1)
        uow.session.execute(update(Payment).where(Payment.id.in_(fresh)).values(expires_at=past))
        watch = uow.session.scalars(select(Job).where(Job.kind == POLL_JOB)).all()
        due = [j.id for j in watch if j.payload["payment_id"] in fresh]
        uow.session.execute(update(Job).where(Job.id.in_(due)).values(run_at=past))
        uow.commit()
    assert len(due) == len(fresh)

    def finished() -> bool:
        return count(db, select(Job).where(Job.id.in_(due), Job.status == "pending")) == 0 and (
            count(db, select(Job).where(Job.id.in_(due), Job.status == "running")) == 0
        )

    fleet.wait_until(finished, "the expiry jobs")
    with db.unit_of_work(readonly=True) as uow:
        jobs = list(uow.session.scalars(select(Job).where(Job.id.in_(due))))
        assert {(j.status, j.attempts) for j in jobs} == {("done", 1)}, [
            (j.id, j.status, j.attempts, j.last_error) for j in jobs
        ]
        workers = {j.locked_by.split(":")[-1] for j in jobs if j.locked_by}
        pids = {str(proc.pid) for name, proc in fleet.processes if name.startswith("worker")}
        assert workers <= pids
        expired = uow.session.scalars(
            select(PaymentEvent.payment_id).where(
                PaymentEvent.payment_id.in_(fresh), PaymentEvent.kind == "expired"
            )
        ).all()
        assert sorted(expired) == sorted(fresh)  # each payment expired exactly once
        # Both instances wrote to one audit chain, interleaved: it is still intact.
        assert audit.verify(uow).intact
    for name in ("web-a", "web-b", "worker-a", "worker-b"):
        assert "Traceback" not in fleet.output(name), fleet.output(name)
