"""Shared fixtures: real databases (SQLite always, PostgreSQL when configured) and a real app.

``KASSA_TEST_DATABASE_URL`` (e.g. postgresql://postgres@127.0.0.1:5432/test) adds PostgreSQL to
every database-parametrised test. Under CI=true it is required, so PostgreSQL is never skipped.

Tests write only under temporary directories: the session points Kassa's data directory
(``KASSA_PATHS_VAR_DIR``, inherited by every process a test starts) at one, and fails the run if
the checkout gained a file (apart from the tools' own caches).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from sqlalchemy import text
from werkzeug.serving import make_server

from gateway.adapters import passwords
from gateway.adapters.db import Database
from gateway.adapters.models import Base
from gateway.config import PROJECT_DIR, load_config
from gateway.services.payments import merchant_cache
from gateway.services.staff import audit_context, mfa

PG_URL = os.environ.get("KASSA_TEST_DATABASE_URL")
# Tests never race the clock: Hypothesis' per-example deadline (200 ms) fails a correct test
# whenever the two shared cores are busy or the collector pauses.
# In CI the examples are derived from each test's name, so a red run can be repeated exactly.
settings.register_profile("kassa", deadline=None, derandomize=os.environ.get("CI") == "true")
settings.load_profile("kassa")
BACKENDS = ["sqlite", "postgresql"]
TEST_MFA_KEY = "test-mfa-key"


# Written by the tools themselves, not by the code under test.
TOOL_CACHES = (".venv", ".pytest_cache", ".hypothesis", ".mypy_cache", ".ruff_cache", "__pycache__")


def pytest_configure(config: pytest.Config) -> None:
    # Real Argon2id, at the lowest cost: each demo seed hashes passwords, and tests seed often.
    passwords.configure(time_cost=1, memory_cost_kib=256)
    mfa.configure(TEST_MFA_KEY)  # the demo fixture enrols the manager's second factor
    if os.environ.get("CI") == "true" and not PG_URL:
        raise pytest.UsageError("CI=true but KASSA_TEST_DATABASE_URL is not set")
    var_dir = tempfile.mkdtemp(prefix="kassa-test-var-")
    config.stash[_VAR_DIR] = (var_dir, os.environ.get("KASSA_PATHS_VAR_DIR"))
    os.environ["KASSA_PATHS_VAR_DIR"] = var_dir
    config.stash[_CHECKOUT] = checkout_files()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test wrote into the checkout instead of a temporary directory, or
    left a card number in a database or archive it made (see ``card_numbers_left``).

    Under pytest-xdist (``make test``) each worker sweeps what its own tests left and hands the
    hits to the controller (``pytest_testnodedown``), which reports them and fails the run:
    a worker's own exit status is not the run's."""
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:
        workeroutput["kassa_card_numbers"] = session.config.stash.get(_PAN_HITS, [])
        return  # the controller checks the checkout once, for every worker
    hits = session.config.stash.get(_PAN_HITS, [])
    if hits:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line("card numbers stored by the tests (kassa db scan-pans):", red=True)
            for hit in hits:
                reporter.write_line(f"  {hit}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    before = session.config.stash.get(_CHECKOUT, None)
    if before is None:
        return
    new = sorted(checkout_files() - before)
    if new:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_line(f"tests wrote into the checkout {PROJECT_DIR}: {new}", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node: Any, error: object) -> None:
    """pytest-xdist: a worker finished; keep the card numbers its sweep found."""
    found = getattr(node, "workeroutput", {}).get("kassa_card_numbers", [])
    if found:
        node.config.stash[_PAN_HITS] = node.config.stash.get(_PAN_HITS, []) + list(found)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _VAR_DIR not in config.stash:
        return
    var_dir, previous = config.stash[_VAR_DIR]
    shutil.rmtree(var_dir, ignore_errors=True)
    if previous is None:
        os.environ.pop("KASSA_PATHS_VAR_DIR", None)
    else:
        os.environ["KASSA_PATHS_VAR_DIR"] = previous


_VAR_DIR = pytest.StashKey[tuple[str, str | None]]()
_CHECKOUT = pytest.StashKey[set[str]]()
_PAN_HITS = pytest.StashKey[list[str]]()


def checkout_files() -> set[str]:
    """Untracked and ignored paths in the checkout (git's view, directories collapsed), and
    every file under the default data directory ``var/``, minus the tools' caches."""
    found: set[str] = set()
    try:
        status = subprocess.run(
            ["git", "status", "--porcelain", "--ignored", "-z"],
            cwd=PROJECT_DIR,
            capture_output=True,
            check=True,
            timeout=120,
        ).stdout.decode()
        found |= {entry[3:] for entry in status.split("\0") if entry[:2] in ("??", "!!")}
    except (OSError, subprocess.SubprocessError):
        pass  # not a git checkout: the data directory's listing below still counts
    var = PROJECT_DIR / "var"
    if var.exists():
        found |= {str(p.relative_to(PROJECT_DIR)) for p in var.rglob("*")} | {"var/"}
    return {
        path
        for path in found
        if not any(part in TOOL_CACHES or part.endswith(".egg-info") for part in Path(path).parts)
    }


def isolated_env() -> dict[str, str]:
    """An environment for ``load_config`` without the developer's ``KASSA_*`` settings, but
    with the session's temporary data directory."""
    return {"KASSA_PATHS_VAR_DIR": os.environ["KASSA_PATHS_VAR_DIR"]}


# -- no card number left behind ----------------------------------------------------------------
# `kassa db scan-pans` runs over everything the tests stored, on both databases: PostgreSQL
# after each test (the next one truncates the tables; a hit fails the test that stored it),
# and at the end of the session every SQLite database and settlement archive the session made
# under its temporary directories (a hit fails the run, naming the file, hence the test).
# A test that plants card numbers on purpose does so in a database it removes itself.

SQLITE_MAGIC = b"SQLite format 3\x00"
_SCHEMAS: dict[str, Any] = {}  # reflected text columns, by schema, so each scan is quick


def stored_card_numbers(database: Database) -> list[str]:
    """The scanner's hits in ``database`` (each schema reflected once per session)."""
    from gateway.adapters.card_scan import scan_database, text_tables

    with database.engine.connect() as conn:
        if database.dialect == "sqlite":
            schema = str(conn.exec_driver_sql("SELECT sql FROM sqlite_master ORDER BY name").all())
        else:
            schema = database.url
        if schema not in _SCHEMAS:
            _SCHEMAS[schema] = text_tables(conn)
        try:
            return [str(hit) for hit in scan_database(conn, _with_rows(conn, _SCHEMAS[schema]))]
        except Exception:  # the schema changed under the test (a migration test): reflect anew
            conn.rollback()
            return [str(hit) for hit in scan_database(conn)]


def _with_rows(conn: Any, tables: list[Any]) -> list[Any]:
    """The tables of ``tables`` that hold a row, asked in one query: an empty table holds no
    card number, and a test fills a few of the 46 (the session's sweep scans hundreds of
    SQLite files, each with an engine and statement cache of its own)."""
    if not tables:
        return tables
    quote = conn.dialect.identifier_preparer.quote
    probe = " UNION ALL ".join(
        f"SELECT {n} WHERE EXISTS (SELECT 1 FROM {quote(table.name)})"
        for n, (table, _) in enumerate(tables)
    )
    filled = {n for (n,) in conn.exec_driver_sql(probe)}
    return [entry for n, entry in enumerate(tables) if n in filled]


def sqlite_files(folder: Path) -> list[Path]:
    """Every SQLite database file under ``folder`` (by its header, whatever its name)."""
    found = []
    for path in folder.rglob("*"):
        try:
            if path.is_file() and not path.is_symlink():
                with path.open("rb") as f:
                    if f.read(16) == SQLITE_MAGIC:
                        found.append(path)
        except OSError:
            continue
    return sorted(found)


def card_numbers_under(folder: Path) -> list[str]:
    """The scanner's hits in every SQLite database, settlement archive and device log folder
    under ``folder``."""
    from gateway.adapters.card_scan import scan_folder

    hits: list[str] = []
    for path in sqlite_files(folder):
        database = Database(f"sqlite:///{path}")
        try:
            hits += [f"{path}: {hit}" for hit in stored_card_numbers(database)]
        except Exception as exc:  # e.g. a file a test corrupted on purpose: not ours to judge
            warnings.warn(f"{path} could not be scanned for card numbers: {exc}", stacklevel=1)
        finally:
            database.dispose()
    kept = [*folder.rglob("settlement-files"), *folder.rglob("device-logs")]
    for archive in sorted(p for p in kept if p.is_dir()):
        hits += [str(hit) for hit in scan_folder(archive)]
    return hits


@pytest.fixture(scope="session", autouse=True)
def card_numbers_left(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[None]:
    yield
    hits = card_numbers_under(tmp_path_factory.getbasetemp())
    hits += card_numbers_under(Path(os.environ["KASSA_PATHS_VAR_DIR"]))
    request.config.stash[_PAN_HITS] = hits


@pytest.fixture(autouse=True)
def fresh_process_state() -> None:
    """Each test starts with the process-wide state a fresh process has:
    - nobody acting, the CLI as the audit source: a portal request through Flask's test client
      signs its person into the thread's context, and the next test in the same worker would
      otherwise audit as them;
    - the test MFA key: a test that builds an app or runs a command with another ``mfa_key``
      re-keys the process, and a later test in the worker then failed to unseal the demo's
      TOTP secrets ("mfa_key changed"), by the order the tests happened to run in;
    - no merchant kept from another test's database (ids and revisions start over there)."""
    audit_context.set_process_source("cli")
    audit_context.set_acting(None)
    mfa.configure(TEST_MFA_KEY)
    merchant_cache.forget_all()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "kassa.db"
    database = Database(f"sqlite:///{path}")
    database.upgrade()
    database.dispose()
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[Database | None]:
    """A schema of its own per test run, so concurrent runs on one server never collide.

    Its sessions (and those of the processes a test starts with its URL) commit without
    waiting for the server's disk (``synchronous_commit=off``): a commit is as atomic and as
    visible to others as ever, only a crash of the server itself could lose the last ones,
    which no test does. It saves a few milliseconds a commit, thousands of times a run."""
    if not PG_URL:
        yield None
        return
    schema = f"kassa_test_{os.getpid()}"
    admin = Database(PG_URL)
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in PG_URL else "?"
    options = f"-csearch_path%3D{schema}%20-csynchronous_commit%3Doff"
    database = Database(f"{PG_URL}{sep}options={options}")
    database.upgrade()
    yield database
    database.dispose()
    with admin.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
    admin.dispose()


# Above this many rows in a table, TRUNCATE empties it faster than DELETE does.
_MANY_ROWS = 2000


def _truncate(database: Database) -> None:
    """Every table empty and every sequence restarted, as ``TRUNCATE ... RESTART IDENTITY``
    leaves them. Truncating all 46 tables gives each table and index a new file (0.2-0.7 s a
    test, over 500 PostgreSQL tests a run); a test leaves rows in a few, so those are emptied
    by DELETE, children first, and the sequences it drew from restart. A test that left many
    rows in a table gets the TRUNCATE."""
    tables = [t.name for t in Base.metadata.sorted_tables]
    counts = " UNION ALL ".join(
        f"SELECT '{name}', (SELECT count(*) FROM (SELECT 1 FROM {name} LIMIT {_MANY_ROWS}) AS r)"
        for name in tables
    )
    with database.engine.begin() as conn:
        rows: dict[str, int] = {name: n for name, n in conn.execute(text(counts))}
        if max(rows.values()) >= _MANY_ROWS:
            conn.execute(text(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE"))
            return
        for name in reversed(tables):  # sorted_tables puts a table after those it refers to
            if rows[name]:
                conn.execute(text(f"DELETE FROM {name}"))
        drawn = conn.execute(
            text(
                "SELECT sequencename, start_value FROM pg_sequences"
                " WHERE schemaname = current_schema() AND last_value IS NOT NULL"
            )
        ).all()
        for sequence, start in drawn:
            conn.execute(text("SELECT setval(:s, :v, false)"), {"s": sequence, "v": start})


@pytest.fixture(params=BACKENDS)
def db(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sqlite_template: Path,
    pg_database: Database | None,
) -> Iterator[Database]:
    """A migrated, empty database: SQLite (a file, so several connections share it) or PG."""
    if request.param == "sqlite":
        path = tmp_path / "kassa.db"
        shutil.copy(sqlite_template, path)
        database = Database(f"sqlite:///{path}")
        yield database
        database.dispose()
        return
    if pg_database is None:
        pytest.skip("PostgreSQL: set KASSA_TEST_DATABASE_URL to run")
    _truncate(pg_database)
    yield pg_database
    hits = stored_card_numbers(pg_database)
    if hits:
        pytest.fail("card numbers stored (kassa db scan-pans):\n" + "\n".join(hits), False)


def app_config(database: Database, **overrides: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {
        "database": {"url": database.url},
        "web": {"secret_key": "test-secret-key"},
        "security": {
            "argon2_time_cost": 1,
            "argon2_memory_kib": 256,
            "mfa_key": TEST_MFA_KEY,
        },
    }
    for section, values in overrides.items():
        merged.setdefault(section, {}).update(values)
    return load_config(env=isolated_env(), overrides=merged)


@pytest.fixture
def app(db: Database) -> Any:
    from gateway.entrypoints.app import create_app

    application = create_app(app_config(db), db=db)
    application.config["TESTING"] = True
    return application


class LiveServer:
    def __init__(self, application: Any) -> None:
        self._server = make_server("127.0.0.1", 0, application, threaded=True)
        self.url = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def __enter__(self) -> LiveServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._thread.join(5)


@pytest.fixture
def live_server(app: Any) -> Iterator[LiveServer]:
    """The real app on a real port (threaded werkzeug server) for HTTP and browser tests."""
    with LiveServer(app) as server:
        yield server


@pytest.fixture
def demo(db: Database, tmp_path: Path) -> dict[str, Any]:
    """The demo merchant with its credentials, seeded into the test database (without the
    demo's promotions, so each test sets up exactly the promotions it prices with)."""
    from gateway.services.demo import seed_demo

    with db.unit_of_work() as uow:
        return seed_demo(uow, tmp_path / "demo-credentials.json", promotions=False)
