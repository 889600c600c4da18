"""camt.053 import speed: ``kassa settlement import`` (dry run and real) against a bare lxml pass.

A plain camt.053 of N entries (default 100 000 ``TxDtls`` in the sandbox bank's day ``Ntry``; a
card number in one remittance per thousand, to be masked) is written to a temporary directory.
Measured, in the same run, each in its own process (each import archiving its masked copy of
the file afresh, in the temporary directory):

- **bare lxml**: ``lxml.etree.iterparse`` over the file, clearing each ``TxDtls`` and ``Ntry``
  (the floor: no Kassa code at all);
- **dry run**: ``kassa settlement import --dry-run`` (parse, check, tally);
- **real import**: ``kassa settlement import`` into a fresh SQLite database (and PostgreSQL
  with ``--postgres URL``, into a schema of its own there, dropped afterwards);
- **rows alone**: the SQLite import's own rows inserted again by bare ``sqlite3`` into an empty
  copy of its table (its indexes, Kassa's pragmas, a transaction per 1,000 rows): the part of
  a SQLite import no reader can make faster.

Kassa's modules are compiled once beforehand into the temporary directory, as an installed
Kassa's are (with ``PYTHONDONTWRITEBYTECODE`` set, every command would compile them anew).
Entries per second are from the wall time of the whole command (Python start included), and
beside them the same ratio from CPU seconds (user + system), steadier on a shared machine;
peak memory is the child's ``ru_maxrss``. Target: the import at ≥ 50 % of the bare pass's
entries/s, memory flat for any file size (compare ``--entries`` 20 000 and 100 000).

Run from the repository root: ``.venv/bin/python -m bench.camt_import`` (``--quick``: 20 000).
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

BARE = """
import sys
from lxml import etree
n = 0
for _, el in etree.iterparse(sys.argv[1], events=("end",), tag=("{*}Ntry", "{*}TxDtls")):
    n += 1
    el.clear()
    while el.getprevious() is not None:
        del el.getparent()[0]
print(n)
"""


def write_file(path: Path, entries: int) -> None:
    from sandbox_bank.camt import camt053
    from sandbox_bank.settlement import SettlementBatch, SettlementLine

    day = date(2026, 11, 25)
    lines = tuple(
        SettlementLine(
            "payment",
            f"K{i:011d}",
            f"pay_{i}",
            None,
            None,
            day,
            1_000 + i % 5_000,
            15,
            "EUR",
            f"card 4111111111111111 payment {i}" if i % 1_000 == 0 else f"bill {i}",
        )
        for i in range(entries)
    )
    batch = SettlementBatch(
        "stl_bench",
        "KASSA-DEMO-0001",
        "Kassa Demo",
        "DE89370400440532013000",
        day,
        "EUR",
        datetime(2026, 11, 25, 12, tzinfo=UTC),
        0,
        lines,
    )
    path.write_text(camt053(batch), encoding="utf-8")


# The import's own rows written again by bare sqlite3 into an empty copy of its tables (Kassa's
# pragmas, a transaction per 1,000 rows as the import's batches): what SQLite alone costs.
ROWS_ONLY = """
import sqlite3, sys, time
source = sqlite3.connect(sys.argv[1])
tables = [sql for (sql,) in source.execute(
    "SELECT sql FROM sqlite_master WHERE tbl_name IN ('settlement_files', 'settlement_entries')"
    " AND sql IS NOT NULL ORDER BY tbl_name DESC, type DESC")]
columns = [c[1] for c in source.execute("PRAGMA table_info(settlement_entries)") if c[1] != "id"]
rows = source.execute(f"SELECT {', '.join(columns)} FROM settlement_entries").fetchall()
files = source.execute("SELECT * FROM settlement_files").fetchall()
target = sqlite3.connect(sys.argv[2], isolation_level=None)
for pragma in ("journal_mode=WAL", "synchronous=NORMAL"):
    target.execute(f"PRAGMA {pragma}")
for sql in tables:
    target.execute(sql)
target.executemany(f"INSERT INTO settlement_files VALUES ({', '.join('?' * len(files[0]))})", files)
target.execute("PRAGMA foreign_keys=ON")  # as Kassa's: each entry's file is checked
insert = (f"INSERT INTO settlement_entries ({', '.join(columns)})"
          f" VALUES ({', '.join('?' * len(columns))})")
cpu, wall = time.process_time(), time.perf_counter()
for start in range(0, len(rows), 1000):
    target.execute("BEGIN")
    target.executemany(insert, rows[start : start + 1000])
    target.execute("COMMIT")
print("ROWS", time.process_time() - cpu, time.perf_counter() - wall)
"""


# Runs a module or a code string and prints its own peak RSS (KiB) last on stderr. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss across exec, so a child would show this process's peak.
WRAP = """
import atexit, runpy, sys
def peak():
    with open("/proc/self/status") as f:
        kib = next(line.split()[1] for line in f if line.startswith("VmHWM:"))
    print("MAXRSS", kib, file=sys.stderr)
atexit.register(peak)
kind, what, *sys.argv[1:] = sys.argv[1:]
sys.argv[0] = what
exec(what) if kind == "code" else runpy.run_module(what, run_name="__main__", alter_sys=True)
"""


def run(cmd: list[str], env: dict[str, str]) -> tuple[float, float, float]:
    """Wall seconds, the child's peak RSS in MiB and its CPU seconds (user + system: on a
    shared machine the wall time is mostly whose turn it is)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", WRAP, *cmd], env=env, capture_output=True, text=True
    )
    if done.returncode:
        raise SystemExit(f"{' '.join(cmd[:4])} failed:\n{done.stdout}\n{done.stderr}")
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    peak = int(done.stderr.strip().splitlines()[-1].split()[-1])
    return wall, peak / 1024, cpu


def kassa(args: list[str]) -> list[str]:
    return ["module", "gateway.entrypoints.cli", "settlement", "import", *args]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--quick", action="store_true", help="20 000 entries")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--import-repeat", type=int, help="runs of each real import (--repeat)")
    parser.add_argument(
        "--postgres", help="also import into this PostgreSQL URL (in a schema of its own)"
    )
    args = parser.parse_args(argv)
    entries = 20_000 if args.quick else args.entries
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "statement.camt053.xml"
        write_file(path, entries)
        size = path.stat().st_size / 1e6
        print(f"camt.053 of {entries:,} entries, {size:.1f} MB")
        archive = Path(tmp) / "archive"  # each import masks and archives its copy afresh
        env = {
            **os.environ,
            "KASSA_DATABASE_URL": f"sqlite:///{tmp}/d.db",
            "KASSA_SETTLEMENT_ARCHIVE_DIR": str(archive),
            "PYTHONPYCACHEPREFIX": f"{tmp}/pycache",  # compiled once, as an installed Kassa is
        }
        env.pop("KASSA_CONFIG", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        subprocess.run(
            [sys.executable, "-m", "compileall", "-q", "gateway", "sandbox_bank"],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        cases: dict[str, list[str]] = {
            "bare lxml": ["code", BARE, str(path)],
            "dry run": kassa(["--dry-run", str(path)]),
        }
        # Alternated run by run (bare, dry, bare, dry …): a shared machine's load swings over a
        # block of runs, and each variant in a block of its own swung with it.
        alternated: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
        for _ in range(args.repeat):
            for name, cmd in cases.items():
                alternated[name].append(run(cmd, env))
        rows: list[tuple[str, list[tuple[float, float, float]]]] = []
        for name, runs in alternated.items():
            rows.append((name, runs))
            _show(rows, entries, name, runs)
        targets = [("sqlite", f"sqlite:///{tmp}/import.db")]
        if args.postgres:
            targets.append(("postgresql", _own_schema(args.postgres)))
        for db_name, url in targets:
            db_env = {**env, "KASSA_DATABASE_URL": url}
            runs = []
            for _ in range(args.import_repeat or args.repeat):
                _fresh(url, db_env)
                shutil.rmtree(archive, ignore_errors=True)
                runs.append(run(kassa([str(path)]), db_env))
            rows.append((f"import {db_name}", runs))
            _show(rows, entries, f"import {db_name}", runs)
            if db_name == "sqlite":
                _rows_only(rows, entries, tmp, args.repeat)
    return 0


def _rows_only(
    rows: list[tuple[str, list[tuple[float, float, float]]]], entries: int, tmp: str, repeat: int
) -> None:
    """The floor of a SQLite import: its rows inserted by bare sqlite3 (``ROWS_ONLY``)."""
    cpus, walls = [], []
    for n in range(repeat):
        target = Path(tmp) / f"rows-only-{n}.db"
        done = subprocess.run(
            [sys.executable, "-c", ROWS_ONLY, f"{tmp}/import.db", str(target)],
            capture_output=True, text=True, check=True,
        )  # fmt: skip
        cpu, wall = map(float, done.stdout.split()[1:3])
        cpus.append(cpu)
        walls.append(wall)
    bare_cpu = statistics.median(c for _, _, c in rows[0][1])
    cpu = statistics.median(cpus)
    print(
        f"{'  rows alone':18} median {statistics.median(walls):7.2f} s; CPU {cpu:6.2f} s, beside"
        f" bare lxml's {bare_cpu:.2f} s: a SQLite import with no other cost would reach"
        f" {100 * bare_cpu / (bare_cpu + cpu):5.1f} % by CPU",
        flush=True,
    )


def _show(rows: list[tuple[str, list[tuple[float, float, float]]]], entries: int, name: str,
          runs: list[tuple[float, float, float]]) -> None:  # fmt: skip
    bare = entries / statistics.median(t for t, _, _ in rows[0][1])
    bare_cpu = entries / statistics.median(c for _, _, c in rows[0][1])
    wall = statistics.median(t for t, _, _ in runs)
    cpu = statistics.median(c for _, _, c in runs)
    rate = entries / wall
    peak = max(m for _, m, _ in runs)
    print(
        f"{name:18} median {wall:7.2f} s ({', '.join(f'{t:.2f}' for t, _, _ in runs)}) "
        f"{rate:9,.0f} entries/s = {100 * rate / bare:5.1f} % of bare lxml; "
        f"CPU {cpu:6.2f} s = {100 * entries / cpu / bare_cpu:5.1f} %; peak {peak:,.0f} MiB",
        flush=True,
    )


def _own_schema(url: str) -> str:
    """``url`` confined to a new schema ``kassa_bench_camt_<pid>``, dropped when this exits:
    nothing else in that database is read, changed or emptied."""
    import atexit

    from sqlalchemy import create_engine, text

    schema = f"kassa_bench_camt_{os.getpid()}"
    admin = create_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))

    def drop() -> None:
        with admin.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        admin.dispose()

    atexit.register(drop)
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def _fresh(url: str, env: dict[str, str]) -> None:
    """An empty database at the current schema."""
    from sqlalchemy import create_engine, text

    from gateway.adapters.models import Base

    engine = create_engine(url)
    Base.metadata.drop_all(engine)
    with engine.begin() as conn:  # else `db upgrade` believes the schema is there
        conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    engine.dispose()
    subprocess.run(
        [sys.executable, "-m", "gateway.entrypoints.cli", "db", "upgrade"],
        env=env,
        check=True,
        capture_output=True,
    )


if __name__ == "__main__":
    sys.exit(main())
