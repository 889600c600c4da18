"""An operator's view, on SQLite and PostgreSQL: ``/metrics`` in the Prometheus text format over
real HTTP (payments, a processed callback, the job queue), who may read it, and JSON log lines
that carry the request id and the payment id, from a web request and from a worker's job."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select, update

from gateway.adapters import logging_setup
from gateway.adapters.db import Database
from gateway.adapters.models import DeviceStatus, Job, Payment, Till, utcnow
from gateway.services import jobs
from tests.conftest import LiveServer, app_config
from tests.integration.test_bank_callbacks import (
    build_app,
    deliver,
    new_payment,
    paid_event,
    reload,
)

TOKEN = "metrics-test-token-0123456789"


def scrape(url: str, **headers: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``/metrics`` parsed by prometheus-client's own parser: {(sample, labels): value}."""
    response = requests.get(f"{url}/metrics", headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_show_payments_a_processed_callback_and_the_job_queue(
    db: Database, demo: dict[str, Any]
) -> None:
    app = build_app(db)
    with LiveServer(app) as server:
        before = scrape(server.url)
        waiting = new_payment(db, "5.00")  # stays open: its bank watch is a pending job
        paid = new_payment(db, "7.50")
        assert deliver(server, "evt_metrics_paid", paid_event(paid)).status_code == 200
        assert reload(db, paid.id).status == "paid"
        after = scrape(server.url)

    open_status = reload(db, waiting.id).status
    assert after[("kassa_payments", (("status", open_status),))] == 1
    assert after[("kassa_payments", (("status", "paid"),))] == 1
    processed = ("kassa_bank_callbacks_total", (("outcome", "processed"),))
    assert after[processed] == before.get(processed, 0) + 1
    took = ("kassa_bank_callback_seconds_count", ())
    assert after[took] == before.get(took, 0) + 1
    queued = [v for (name, labels), v in after.items() if name == "kassa_jobs"]
    assert sum(queued) >= 1
    assert ("kassa_jobs", (("kind", "poll_bank_payment"), ("status", "pending"))) in after
    assert ("kassa_job_oldest_due_seconds", (("kind", "poll_bank_payment"),)) in after


def test_metrics_count_devices_by_state_and_the_silent_ones(
    db: Database, demo: dict[str, Any], app: Flask
) -> None:
    with db.unit_of_work() as uow:
        till = uow.session.scalars(select(Till).order_by(Till.id)).first()
        assert till is not None
        long_ago = utcnow() - timedelta(minutes=5)
        for kind, state, seen in (
            ("card_terminal", "connected", long_ago),  # its host has gone quiet
            ("nfc_reader", "disconnected", utcnow()),
        ):
            uow.session.add(
                DeviceStatus(
                    till_id=till.id, kind=kind, url="x", state=state, host="h", last_seen_at=seen
                )
            )
        uow.commit()
    response = app.test_client().get("/metrics")
    assert response.status_code == 200
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for s in family.samples
    }
    assert samples[("kassa_devices", (("kind", "card_terminal"), ("state", "connected")))] == 1
    assert samples[("kassa_devices", (("kind", "nfc_reader"), ("state", "disconnected")))] == 1
    assert samples[("kassa_devices_silent", (("kind", "card_terminal"),))] == 1
    assert ("kassa_devices_silent", (("kind", "nfc_reader"),)) not in samples
    assert "# TYPE kassa_settlement_files gauge" in response.get_data(as_text=True)


def test_without_a_token_metrics_answer_only_on_this_machine(app: Flask) -> None:
    client = app.test_client()
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 200
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "::1"}).status_code == 200
    refused = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert refused.status_code == 403
    assert refused.json is not None and "metrics_token" in refused.json["detail"]
    proxied = client.get(
        "/metrics",
        environ_base={"REMOTE_ADDR": "127.0.0.1"},
        headers={"X-Forwarded-For": "203.0.113.9"},
    )
    assert proxied.status_code == 403


def test_with_a_token_metrics_need_it_from_anywhere(db: Database) -> None:
    from gateway.entrypoints.app import create_app

    app = create_app(app_config(db, web={"metrics_token": TOKEN}), db=db)
    client = app.test_client()
    far = {"REMOTE_ADDR": "10.1.2.3"}
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"}).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert client.get("/metrics", environ_base=far, headers=wrong).status_code == 401
    right = {"Authorization": f"Bearer {TOKEN}"}
    assert client.get("/metrics", environ_base=far, headers=right).status_code == 200


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """Kassa's logging set up as in a process whose stderr is a file: JSON lines, here into a
    StringIO; undone afterwards."""
    out = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = logging_setup.configure_logging("web", "auto", stream=out)
    yield out
    root.removeHandler(handler)
    root.setLevel(level)


def log_lines(out: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_a_web_request_logs_json_with_its_request_id_and_payment_id(
    db: Database, demo: dict[str, Any], app: Flask, json_log: io.StringIO
) -> None:
    payment = new_payment(db, "3.20")
    key = {"Authorization": f"Bearer {demo['tills'][0]['api_key']}"}
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/payments/{payment.id}"
        sent = requests.get(url, headers={**key, "X-Request-Id": "till-7.abc-123"}, timeout=10)
        made_up = requests.get(url, headers={**key, "X-Request-Id": "a b;c<d>"}, timeout=10)
    assert sent.status_code == 200 and sent.headers["X-Request-Id"] == "till-7.abc-123"
    generated = made_up.headers["X-Request-Id"]
    assert len(generated) == 32 and generated != "a b;c<d>"
    lines = [x for x in log_lines(json_log) if x["logger"] == "gateway.request"]
    mine = [x for x in lines if x.get("request_id") == "till-7.abc-123"]
    assert len(mine) == 1, lines
    assert mine[0]["payment_id"] == payment.id
    assert mine[0]["role"] == "web" and mine[0]["level"] == "INFO"
    assert f"GET /api/v1/payments/{payment.id} 200" in mine[0]["message"]
    assert any(x.get("request_id") == generated for x in lines)


def test_a_worker_job_logs_json_with_its_payment_id(
    db: Database, demo: dict[str, Any], json_log: io.StringIO
) -> None:
    payment = new_payment(db, "4.10")
    with db.unit_of_work() as uow:
        jobs.enqueue(uow, "test.look_at_payment", {"payment_id": payment.id})
        uow.commit()
    logging_setup.payment_id.set(None)  # as in the worker: no payment before the job's
    seen: list[str] = []
    done = jobs.run_due_jobs(
        db, {"test.look_at_payment": lambda uow, payload: seen.append(payload["payment_id"])}
    )
    assert seen == [payment.id] and done == 1
    lines = [x for x in log_lines(json_log) if "test.look_at_payment" in x["message"]]
    assert len(lines) == 1, log_lines(json_log)
    assert lines[0]["payment_id"] == payment.id
    assert lines[0]["logger"] == "gateway.services.jobs"
    assert logging_setup.payment_id.get() is None  # the job's id does not leak into the next


def test_log_lines_stay_one_line_and_carry_no_card_number(json_log: io.StringIO) -> None:
    logging.getLogger("kassa.test.operable").warning(
        "forged\nline %s card 4111111111111111", "x\r\x00\u2028y"
    )
    (line,) = [x for x in log_lines(json_log) if x["logger"] == "kassa.test.operable"]
    assert "4111111111111111" not in line["message"] and "411111******1111" in line["message"]
    assert "\n" not in json_log.getvalue().strip()
    assert "\\x0d\\x00\\u2028" in line["message"]  # the argument's escapes, as before


def test_plain_lines_on_a_terminal_are_escaped_too() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging_setup.PlainFormatter())
    handler.addFilter(logging_setup.ContextFilter())
    logger = logging.getLogger("kassa.test.operable.plain")
    logger.addHandler(handler)
    logger.propagate = False
    token = logging_setup.payment_id.set("pay_plain")
    try:
        logger.warning("one\nline")
    finally:
        logging_setup.payment_id.reset(token)
        logger.removeHandler(handler)
    text = out.getvalue()
    assert text.count("\n") == 1 and "one\\x0aline" in text and "[payment=pay_plain]" in text


def test_in_multiprocess_mode_metrics_sum_the_counts_of_every_process(
    db: Database, tmp_path: Path
) -> None:
    """As under ``kassa run``: two processes count a poll each, a third serves the sum."""
    shared = tmp_path / "prometheus"  # its own folder: every *.db in it is read as counts
    shared.mkdir()
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(shared)}
    count = (
        "from gateway.adapters import metrics\n"
        "metrics.POLLS.labels(subject='refund', outcome='answered').inc()\n"
    )
    for _ in range(2):
        subprocess.run([sys.executable, "-c", count], env=env, check=True, timeout=120)
    show = (
        "import sys\n"
        "from gateway.adapters.db import Database\n"
        "from gateway.services.metrics import exposition\n"
        "sys.stdout.write(exposition(Database(sys.argv[1])).decode())\n"
    )
    shown = subprocess.run(
        [sys.executable, "-c", show, db.url],
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(shown)
        for s in family.samples
    }
    assert (
        samples[("kassa_bank_polls_total", (("outcome", "answered"), ("subject", "refund")))] == 2
    )
    assert "# TYPE kassa_payments gauge" in shown  # and the database's gauges beside them


def test_a_kassa_worker_process_logs_json_lines_with_the_payment_id(
    db: Database, demo: dict[str, Any], tmp_path: Path
) -> None:
    """A real ``kassa worker`` whose stderr is a file: JSON lines, role ``worker``, and the line
    of the job that watched (here: expired) the payment carries its id."""
    payment = new_payment(db, "2.40")
    with db.unit_of_work() as uow:  # due now, as if its time had run out
        uow.session.execute(update(Payment).values(expires_at=utcnow()))
        uow.session.execute(update(Job).values(run_at=utcnow()))
        uow.commit()
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": db.url,
        "KASSA_WORKER_POLL_INTERVAL_MS": "100",
        "KASSA_BANK_API_KEY": "",  # no bank to ask: the expiry goes ahead without its word
    }
    stderr = tmp_path / "worker.log"
    with stderr.open("w") as sink:
        worker = subprocess.Popen(
            [sys.executable, "-m", "gateway.entrypoints.cli", "worker"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
        try:
            # A ceiling, not a deadline: a loaded machine takes a while to start the worker.
            ceiling = time.monotonic() + 120
            while time.monotonic() < ceiling and worker.poll() is None:
                if f'"payment_id": "{payment.id}"' in stderr.read_text():
                    break
                time.sleep(0.2)
        finally:
            worker.terminate()
            worker.wait(timeout=60)
    lines = [json.loads(line) for line in stderr.read_text().splitlines()]
    assert lines and all(line["role"] == "worker" for line in lines), lines
    about = [line for line in lines if line.get("payment_id") == payment.id]
    assert any("poll_bank_payment" in line["message"] for line in about), lines
