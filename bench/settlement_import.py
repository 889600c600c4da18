"""The till beside a large settlement import on SQLite: payment creation latency, p50/p99.

A fresh SQLite database and `kassa serve` (2 workers) serving the gateway. The baseline is
``POST /api/v1/payments`` (and ``GET /healthz``) one after the other with nothing else running;
then the same while ``kassa settlement import`` (its own process, as an operator would run it)
imports a generated camt.053 of the size asked for (default 50 MB; ``--megabytes 200`` is the
issue's case). Every request must succeed; the figures say how much slower the till was.

Run from the repository root: ``.venv/bin/python -m bench.settlement_import`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from gateway.adapters.db import Database

NS53 = "urn:iso:std:iso:20022:tech:xsd:camt.053.001.08"
TX_BYTES = 211  # one TxDtls below, on average


def write_statement(path: Path, megabytes: float) -> int:
    """A camt.053 of about ``megabytes`` MB: one batch entry of 1.00 EUR TxDtls; their count."""
    count = int(megabytes * 1_000_000 / TX_BYTES)
    with path.open("w", encoding="utf-8") as f:
        f.write(
            f'<?xml version="1.0" encoding="UTF-8"?><Document xmlns="{NS53}"><BkToCstmrStmt>'
            "<GrpHdr><MsgId>BENCH</MsgId><CreDtTm>2026-11-25T00:00:00Z</CreDtTm></GrpHdr><Stmt>"
            "<Id>BENCH-1</Id><Acct><Id><IBAN>DE89370400440532013000</IBAN></Id></Acct><Ntry>"
            f'<Amt Ccy="EUR">{count}.00</Amt><CdtDbtInd>CRDT</CdtDbtInd><Sts><Cd>BOOK</Cd></Sts>'
            "<BookgDt><Dt>2026-11-25</Dt></BookgDt><AcctSvcrRef>BENCH</AcctSvcrRef><NtryDtls>"
            f"<Btch><NbOfTxs>{count}</NbOfTxs></Btch>\n"
        )
        for i in range(count):
            f.write(
                f"<TxDtls><Refs><AcctSvcrRef>A{i}</AcctSvcrRef><EndToEndId>E{i}</EndToEndId>"
                f'</Refs><Amt Ccy="EUR">1.00</Amt><CdtDbtInd>CRDT</CdtDbtInd>'
                f"<RmtInf><Ustrd>card payment {i} of the day</Ustrd></RmtInf></TxDtls>\n"
            )
        f.write("</NtryDtls></Ntry></Stmt></BkToCstmrStmt></Document>\n")
    return count


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def gateway(workdir: Path) -> Iterator[tuple[str, str, dict[str, str]]]:
    """Migrate and seed a SQLite database, serve it; yield (base URL, till API key, env)."""
    from gateway.services.demo import seed_demo

    url = f"sqlite:///{workdir / 'kassa.db'}"
    env = {
        **os.environ,
        "KASSA_DATABASE_URL": url,
        "KASSA_WEB_SECRET_KEY": "bench",
        "KASSA_PATHS_VAR_DIR": str(workdir / "var"),
    }
    db = Database(url)
    db.upgrade()
    with db.unit_of_work() as uow:
        creds = seed_demo(uow, workdir / "creds.json", promotions=False)
    db.dispose()
    port = free_port()
    serve = [sys.executable, "-m", "gateway.entrypoints.cli", "serve", "--host", "127.0.0.1"]
    proc = subprocess.Popen(
        [*serve, "--port", str(port), "--workers", "2", "--threads", "4"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                pass
            if proc.poll() is not None:
                raise RuntimeError("kassa serve stopped during start-up")
            time.sleep(0.1)
        yield base, creds["tills"][0]["api_key"], env
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def till_round(session: requests.Session, base: str, key: str) -> tuple[int, int, bool]:
    """One payment created and one /healthz: their latencies (ns) and whether both succeeded."""
    began = time.perf_counter_ns()
    created = session.post(
        base + "/api/v1/payments",
        json={"amount": "12.34", "currency": "EUR", "method": "qr"},
        headers={"Authorization": f"Bearer {key}", "Idempotency-Key": uuid.uuid4().hex},
        timeout=120,
    )
    posted = time.perf_counter_ns()
    health = session.get(base + "/healthz", timeout=120)
    return posted - began, time.perf_counter_ns() - posted, created.ok and health.ok


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1e6


def report(name: str, rounds: list[tuple[int, int, bool]]) -> None:
    posts = [p for p, _, _ in rounds]
    health = [h for _, h, _ in rounds]
    failed = sum(1 for *_, ok in rounds if not ok)
    figures = [percentile(xs, q) for xs in (posts, health) for q in (0.5, 0.99)]
    print(
        f"{name:<34} {len(rounds):>6} " + " ".join(f"{x:>9.1f}" for x in figures) + f" {failed:>7}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=float, default=50.0)
    parser.add_argument("--baseline-seconds", type=float, default=10.0)
    parser.add_argument("--quick", action="store_true", help="5 MB, 3 s of baseline")
    args = parser.parse_args(argv)
    if args.quick:
        args.megabytes, args.baseline_seconds = 5.0, 3.0
    with tempfile.TemporaryDirectory(prefix="kassa-bench-import-") as tmp:
        workdir = Path(tmp)
        statement = workdir / "statement.xml"
        count = write_statement(statement, args.megabytes)
        size = statement.stat().st_size / 1e6
        with gateway(workdir) as (base, key, env), requests.Session() as session:
            till_round(session, base, key)  # warm up both workers' connections
            baseline = []
            end = time.monotonic() + args.baseline_seconds
            while time.monotonic() < end:
                baseline.append(till_round(session, base, key))
            began = time.monotonic()
            importer = subprocess.Popen(
                [sys.executable, "-m", "gateway.entrypoints.cli", "settlement", "import",
                 str(statement)],
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
            during = []
            while importer.poll() is None:
                during.append(till_round(session, base, key))
            took = time.monotonic() - began
            output = importer.stdout.read().decode() if importer.stdout else ""
        first = output.splitlines()[0] if output else ""
        print(f"camt.053: {size:.1f} MB, {count} transactions, imported in {took:.1f} s "
              f"(exit {importer.returncode}): {first}")  # fmt: skip
        print(f"{'ms':<34} {'rounds':>6} {'POST p50':>9} {'POST p99':>9} "
              f"{'hz p50':>9} {'hz p99':>9} {'failed':>7}")  # fmt: skip
        report("baseline (no import)", baseline)
        if during:
            report("during the import", during)
        if importer.returncode != 0 or any(not ok for *_, ok in baseline + during):
            print("FAILED: a request or the import did not succeed")
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
