"""``/metrics``: Kassa's state in the Prometheus text format, read from the database at scrape
time (one grouped query per family), beside the counters each process keeps
(:mod:`gateway.adapters.metrics`).

The families read from the database are the same whichever process answers: payments and
refunds by status, the job queue (depth by kind and status, how long the oldest due job has
waited), the devices by kind and state (the device hosts' heartbeats, and how many have gone
silent) and settlement files by state (``staging`` while an import runs).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from sqlalchemy import func, select

from gateway.adapters import metrics
from gateway.adapters.db import Database
from gateway.adapters.models import Job, Payment, Refund, SettlementFile, utcnow
from gateway.services.devices import device_reads

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class DatabaseCollector(Collector):
    """The gauges read from the database, once per scrape."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def collect(self) -> Iterator[Metric]:
        with self.db.unit_of_work(readonly=True) as uow:
            run = uow.session.execute
            payments = run(select(Payment.status, func.count()).group_by(Payment.status)).all()
            refunds = run(select(Refund.status, func.count()).group_by(Refund.status)).all()
            queue = run(
                select(Job.kind, Job.status, func.count(), func.min(Job.run_at))
                .where(Job.status.in_(("pending", "running")))
                .group_by(Job.kind, Job.status)
            ).all()
            devices = device_reads.device_health(uow, utcnow())
            files = run(
                select(SettlementFile.state, func.count()).group_by(SettlementFile.state)
            ).all()
        yield _gauge("kassa_payments", "Payments by status.", ["status"], payments)
        yield _gauge("kassa_refunds", "Refunds by status.", ["status"], refunds)
        yield _gauge(
            "kassa_jobs",
            "Jobs waiting (pending) or running, by kind.",
            ["kind", "status"],
            [(kind, status, count) for kind, status, count, _ in queue],
        )
        yield _gauge(
            "kassa_job_oldest_due_seconds",
            "How long the oldest pending job of each kind has been due (0: none is due yet).",
            ["kind"],
            [(kind, _waited(oldest)) for kind, status, _, oldest in queue if status == "pending"],
        )
        yield _gauge(
            "kassa_devices",
            "Card terminals and NFC readers by state, as their device hosts last reported.",
            ["kind", "state"],
            devices.by_state,
        )
        yield _gauge(
            "kassa_devices_silent",
            f"Devices whose host has not reported for {device_reads.SILENT_SECONDS} s, by kind.",
            ["kind"],
            devices.silent,
        )
        yield _gauge(
            "kassa_settlement_files", "Settlement files by import state.", ["state"], files
        )


def _gauge(name: str, doc: str, labels: list[str], rows: object) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, doc, labels=labels)
    for *values, count in rows:  # type: ignore[attr-defined]
        family.add_metric([str(v) for v in values], float(count))
    return family


def _waited(oldest: datetime | None) -> float:
    if oldest is None:
        return 0.0
    return max(0.0, (utcnow() - oldest).total_seconds())


def exposition(db: Database) -> bytes:
    """Everything ``/metrics`` shows: this process's counters (or, in prometheus-client's
    multiprocess mode, every process's) and the database's gauges."""
    registry = CollectorRegistry(auto_describe=False)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        MultiProcessCollector(registry)
    else:
        for counter in metrics.COUNTERS:
            registry.register(counter)
    registry.register(DatabaseCollector(db))
    return generate_latest(registry)


__all__ = ["CONTENT_TYPE", "DatabaseCollector", "exposition"]
