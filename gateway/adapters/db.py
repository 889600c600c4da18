"""The database: engine, sessions, the unit of work and migrations.

SQLite is the embedded default (WAL, foreign keys, a busy timeout so concurrent writers wait
instead of failing); PostgreSQL (psycopg 3) is production.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parents[1] / "migrations"


def make_engine(url: str, echo: bool = False) -> Engine:
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
    engine = create_engine(url, echo=echo, pool_size=10, max_overflow=20)
    _ping_when_idle(engine)
    return engine


# A pooled connection unused this long is checked with a ping before it is handed out (the
# server may have restarted meanwhile). One in steady use is not: SQLAlchemy's pool_pre_ping
# pings at every checkout, a round trip as long as a callback's INSERT, once per request or job.
PING_AFTER_IDLE_SECONDS = 5.0


def _ping_when_idle(engine: Engine) -> None:
    @event.listens_for(engine.pool, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["kassa_returned"] = time.monotonic()

    @event.listens_for(engine.pool, "checkout")
    def _alive(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get("kassa_returned")
        if returned is None or time.monotonic() - returned < PING_AFTER_IDLE_SECONDS:
            return  # just connected, or in use a moment ago
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops this connection and checks out another
            raise DisconnectionError(f"pooled connection went away: {exc}") from exc


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

    def __init__(self, url: str, echo: bool = False) -> None:
        self.url = url
        self.engine = make_engine(url, echo)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def unit_of_work(self, *, readonly: bool = False) -> UnitOfWork:
        return UnitOfWork(self.sessions, readonly=readonly)

    def upgrade(self, revision: str = "head") -> None:
        """Migrate the schema with Alembic."""
        from alembic import command

        command.upgrade(alembic_config(self), revision)

    def require_current_schema(self) -> None:
        """Refuse to work on a database whose schema is behind this code's migrations."""
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

    def __init__(self, sessions: Callable[[], Session], *, readonly: bool = False) -> None:
        self._sessions = sessions
        self._readonly = readonly
        self.session: Session

    def __enter__(self) -> UnitOfWork:
        self.session = self._sessions()
        if self._readonly:
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

    def commit(self) -> None:
        self.session.commit()

    def rollback(self) -> None:
        self.session.rollback()


def alembic_config(db: Database) -> Any:
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.attributes["engine"] = db.engine
    return cfg
