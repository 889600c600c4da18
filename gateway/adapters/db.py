"""The database: engine, sessions, the unit of work and migrations.

SQLite is the embedded default (WAL, foreign keys, a busy timeout so concurrent writers wait
instead of failing); PostgreSQL (psycopg 3) is production.
"""

from __future__ import annotations

import functools
import os
import re
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str, echo: bool = False, pool_size: int = 16) -> Engine:
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    if url.startswith("sqlite"):
        _make_parent_directory(url)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        # pysqlite's own transaction handling defers BEGIN; take it over. A writing transaction
        # starts with BEGIN IMMEDIATE, so concurrent writers queue (busy timeout) instead of
        # deadlocking on a lock upgrade; a read-only one with a plain BEGIN, so reads run alongside.
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    # Up to ``pool_size`` connections stay open once used; a burst beyond them gets short-lived
    # extra ones.
    engine = create_engine(url, echo=echo, pool_size=pool_size, max_overflow=20)
    _ping_idle_connections(engine)
    return engine


# A pooled connection idle for longer than this is pinged before it is handed out again.
PING_AFTER_IDLE_SECONDS = 1.0


def _ping_idle_connections(engine: Engine) -> None:
    """Pessimistic disconnect handling without a round trip per checkout.

    ``pool_pre_ping`` pings every connection at every checkout: under load that was one extra
    round trip per unit of work (two or three per API request). A connection that went back to
    the pool less than :data:`PING_AFTER_IDLE_SECONDS` ago was working a moment ago, so only
    connections idle for longer are pinged (a database restarted while they sat in the pool is
    found out here, and the pool replaces them as with ``pool_pre_ping``).
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["kassa_idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.pop("kassa_idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the server went away: the pool connects afresh
            raise DisconnectionError(str(exc)) from exc
        if not alive:
            raise DisconnectionError("the database connection did not answer a ping")


def _make_parent_directory(url: str) -> None:
    """SQLite creates the database file on first connect, but not its directory; and it would
    create it readable by everyone (0644). Created here first, for its owner only (0600); its
    -wal and -shm files take the database file's mode."""
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
        try:
            os.close(os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass


def _sqlite_begin(conn: Any) -> None:
    readonly = conn.get_execution_options().get("kassa_readonly", False)
    conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # let the "begin" listener issue BEGIN IMMEDIATE
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


class Database:
    """One engine and its session factory, shared by the web app, the worker and the CLI."""

    def __init__(self, url: str, echo: bool = False, pool_size: int = 16) -> None:
        self.url = url
        self.engine = make_engine(url, echo, pool_size)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(self.sessions, readonly=readonly)

    def single_read(self) -> UnitOfWork:
        """A unit of work for one read-only statement (a till's key check on every API call).

        On PostgreSQL it runs without a transaction (autocommit): one statement sees one
        snapshot anyway, and the BEGIN and ROLLBACK round trips are saved. Elsewhere it is a
        ``readonly`` unit of work.
        """
        return UnitOfWork(self.sessions, readonly=True, autocommit=self.dialect == "postgresql")

    def read_connection(self) -> Connection:
        """A Core connection for one read-only statement, without an ORM session (the till's
        key check on every API call): as :meth:`single_read`, autocommit on PostgreSQL and a
        read-only ``BEGIN`` elsewhere, for about half the cost of a session. Use it as a
        context manager."""
        return self._reader.connect()

    @functools.cached_property
    def _reader(self) -> Engine:
        if self.dialect == "postgresql":
            return self.engine.execution_options(isolation_level="AUTOCOMMIT", kassa_readonly=True)
        return self.engine.execution_options(kassa_readonly=True)

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema with Alembic."""
        from alembic import command

        command.upgrade(alembic_config(self), revision)

    def require_current_schema(self) -> None:
        """Refuse to work on a database whose schema is behind this code's migrations.

        A database whose ``alembic_version`` holds exactly the head read from the migration
        files (``migrations_head``) is current without loading Alembic (a third of a second
        of CPU, more than a small command's whole work); anything else is Alembic's to judge.
        """
        head = migrations_head()
        if head is not None:
            try:
                with self.engine.connect() as conn:
                    found = conn.exec_driver_sql("SELECT version_num FROM alembic_version").all()
            except SQLAlchemyError:
                found = []  # no version table yet: Alembic says so below
            if [row[0] for row in found] == [head]:
                return
        from alembic.migration import MigrationContext
        from alembic.script import ScriptDirectory

        from gateway.errors import ConfigurationError

        head = ScriptDirectory.from_config(alembic_config(self)).get_current_head()
        with self.engine.connect() as conn:
            current = MigrationContext.configure(conn).get_current_revision()
        if current != head:
            raise ConfigurationError(
                f"the database is at schema revision {current or 'none'}, this Kassa needs "
                f"{head}: run `kassa db upgrade` first"
            )

    def dispose(self) -> None:
        self.engine.dispose()


class UnitOfWork:
    """A transaction: ``with db.unit_of_work() as uow: …; uow.commit()``.

    Leaving the block without ``commit()`` rolls everything back, so nothing is half-written.
    A ``readonly`` unit of work only reads (on SQLite it then does not queue behind writers).
    """

    def __init__(
        self, sessions: Callable[[], Session], *, readonly: bool = False, autocommit: bool = False
    ) -> None:
        self._sessions = sessions
        self._readonly = readonly
        self._autocommit = autocommit
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        if self._autocommit:
            self.session.connection(
                execution_options={"kassa_readonly": True, "isolation_level": "AUTOCOMMIT"}
            )
        elif self._readonly:
            self.session.connection(execution_options={"kassa_readonly": True})
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.session.rollback()
        self.session.close()
        self.session.info.pop("kassa.kept", None)

    def commit(self) -> None:
        self.session.commit()

    def keep(self, *objects: object) -> None:
        """Hold ``objects`` until the unit of work ends. The session's identity map holds
        unchanged rows only weakly: without this, a row a use case loaded and let go (the
        merchant, read for its currencies) is read again by the next ``get`` of it."""
        kept: list[object] = self.session.info.setdefault("kassa.kept", [])
        kept.extend(objects)

    def rollback(self) -> None:
        self.session.rollback()


# A migration's own ids, as every file in versions/ writes them (``revision: str = "0022_…"``).
_REVISION_LINE = re.compile(r'^(revision|down_revision)\b[^=\n]*=\s*(?:"([^"\n]*)"|None)\s*$', re.M)


@functools.cache
def migrations_head() -> str | None:
    """The one head of the migrations, read from each file's ``revision`` and
    ``down_revision`` lines; None when a file does not say both plainly or there is not
    exactly one head (a merge, a branch: Alembic reads those)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (MIGRATIONS / "versions").glob("*.py"):
        lines = _REVISION_LINE.findall(path.read_text(encoding="utf-8"))
        found = dict(lines)
        if len(lines) != 2 or set(found) != {"revision", "down_revision"}:
            return None
        if not found["revision"]:
            return None
        revisions.add(found["revision"])
        if found["down_revision"]:
            parents.add(found["down_revision"])
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 and parents <= revisions else None


def alembic_config(db: Database) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = db.engine
    return cfg
