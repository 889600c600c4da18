"""Kassa's Prometheus counters: what happens in a process, counted where it happens.

Each process keeps its own counts (a web worker, ``kassa worker``); ``/metrics`` shows the
counts of the process that answers, unless ``PROMETHEUS_MULTIPROC_DIR`` names a directory that
every Kassa process shares (prometheus-client's multiprocess mode, which ``kassa run`` sets up):
then it shows their sums. What the database knows (payments by status, the job queue, devices,
imports) is read at scrape time instead: see :mod:`gateway.services.metrics`.
"""

from __future__ import annotations

from prometheus_client import Counter, Histogram

# registry=None: each scrape puts them in a fresh registry (gateway/services/metrics.py).
CALLBACKS = Counter(
    "kassa_bank_callbacks",
    "Bank callbacks received, by outcome (the stored event's status, or duplicate).",
    ["outcome"],
    registry=None,
)
CALLBACK_SECONDS = Histogram(
    "kassa_bank_callback_seconds",
    "Time to store and apply one bank callback.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
    registry=None,
)
POLLS = Counter(
    "kassa_bank_polls",
    "Questions asked of the bank about a payment or refund, by subject and outcome.",
    ["subject", "outcome"],
    registry=None,
)
POLL_SECONDS = Histogram(
    "kassa_bank_poll_seconds",
    "Time the bank took to answer a question about a payment or refund.",
    ["subject"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
    registry=None,
)

COUNTERS = (CALLBACKS, CALLBACK_SECONDS, POLLS, POLL_SECONDS)

__all__ = ["CALLBACKS", "CALLBACK_SECONDS", "COUNTERS", "POLLS", "POLL_SECONDS"]
