"""One Core statement run straight on the session's database connection, compiled once.

A bank callback's one statement (:func:`callbacks._insert_and_move`) is the same text every
time; through ``Session.execute`` each run still paid for the statement's cache key, the ORM's
and Core's execution contexts and a result object built from the cursor's description of its
31 columns: about a third of the callback's CPU. :class:`PreparedStatement` keeps what
SQLAlchemy would work out per run (the SQL text, which parameters need converting and how, how
each result column is read) and sends the text with psycopg's own cursor, in the session's
transaction; its values are bound and read with the columns' own types, exactly as
SQLAlchemy's execution would. :func:`loaded` makes the ORM entity the hooks expect from the
row's values, as the ORM's loading would (unread columns load when first asked for).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, inspect
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Mapper
from sqlalchemy.orm.attributes import instance_state
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler

from gateway.adapters.db import UnitOfWork

Processor = Callable[[Any], Any] | None
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PreparedStatement:
    """A statement compiled for one dialect: its text, the parameters it fixes itself, how each
    bound value is converted and how each result column is read."""

    sql: str
    fixed: dict[str, Any]
    binds: dict[str, Processor]
    reads: tuple[Processor, ...]
    # The same, for running: only the parameters and columns that need converting.
    _converts: tuple[tuple[str, Callable[[Any], Any]], ...] = ()
    _readers: tuple[tuple[int, Callable[[Any], Any]], ...] = ()

    def __post_init__(self) -> None:
        converts = tuple((name, f) for name, f in self.binds.items() if f is not None)
        readers = tuple((n, f) for n, f in enumerate(self.reads) if f is not None)
        object.__setattr__(self, "_converts", converts)
        object.__setattr__(self, "_readers", readers)

    @classmethod
    def compile(cls, statement: ClauseElement, dialect: Dialect) -> PreparedStatement:
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        required = {name for name, bind in compiled.binds.items() if bind.required}
        # What Core's execution applies, per name (a sequence only for tuple types: none here).
        processors: Mapping[str, Callable[[Any], Any]] = cast(Any, compiled._bind_processors)
        fixed = {
            name: processors[name](value) if name in processors else value
            for name, value in compiled.construct_params(_check=False).items()
            if name not in required
        }
        result = compiled._result_columns
        return cls(
            compiled.string,
            fixed,
            {name: processors.get(name) for name in required},
            tuple(column.type._cached_result_processor(dialect, None) for column in result),
        )

    def first(self, connection: Connection, values: Mapping[str, Any]) -> tuple[Any, ...] | None:
        """Run with ``values`` (every required parameter, as Python values) on ``connection``'s
        DBAPI connection, in its transaction; the first row, its values read as Core would."""
        if values.keys() != self.binds.keys():
            raise ValueError(f"parameters {sorted(values)} are not {sorted(self.binds)}")
        params = {**self.fixed, **values}
        for name, convert in self._converts:
            params[name] = convert(params[name])
        raw = connection.connection.dbapi_connection
        assert raw is not None
        cursor = raw.cursor()
        try:
            cursor.execute(self.sql, params)
            row = cursor.fetchone()
        except connection.dialect.loaded_dbapi.Error as exc:
            # As Core does with a connection that broke: the pool must not hand it out again.
            if connection.dialect.is_disconnect(exc, raw, cursor):
                connection.invalidate(exc)
            raise
        finally:
            cursor.close()
        if row is None:
            return None
        if len(row) != len(self.reads):
            raise ValueError(f"a row of {len(row)} columns, not {len(self.reads)}")
        read = list(row)
        for n, convert in self._readers:
            read[n] = convert(read[n])
        return tuple(read)


def loaded(uow: UnitOfWork, entity: type[T], keys: Sequence[str], values: Sequence[Any]) -> T:
    """``entity`` as the ORM would load it from a row holding ``values`` for the attributes
    ``keys`` (the primary key among them), in the unit of work's session; any other attribute
    is read from the database when first asked for, like a deferred column.

    What ``make_transient_to_detached`` and ``Session.add`` do for such an object, with what
    they work out per object worked out once per entity and keys: its identity key, its
    unread columns marked expired, and the session's attach (identity map, events). The
    ``save-update`` cascade is left out: it only follows related objects held in the
    instance's dict, and a row puts none there (``keys`` must be column attributes).
    """
    mapper, at, expired = _shape(cast(type, entity), tuple(keys))
    instance: T = mapper.class_manager.new_instance()
    state = instance_state(instance)
    state.dict.update(zip(keys, values, strict=True))
    state.key = mapper.identity_key_from_primary_key(tuple(values[n] for n in at))
    if expired:
        state.expired_attributes.update(expired)
        state.manager.dispatch.expire(state, expired)
    uow.session._update_impl(state)  # Session.add's attach of a detached object
    return instance


@lru_cache(maxsize=16)
def _shape(
    entity: type[Any], keys: tuple[str, ...]
) -> tuple[Mapper[Any], tuple[int, ...], frozenset[str]]:
    """The entity's mapper, where its primary key's columns are in ``keys``, and the column
    attributes ``keys`` leaves unread (each loads when first asked for)."""
    mapper: Mapper[Any] = inspect(entity)
    columns = {attribute.key for attribute in mapper.column_attrs}
    if not set(keys) <= columns:
        raise ValueError(f"{entity.__name__}: {sorted(set(keys) - columns)} are not columns")
    at = tuple(keys.index(mapper.get_property_by_column(c).key) for c in mapper.primary_key)
    unread = frozenset(
        key
        for key in columns.difference(keys)
        if mapper.class_manager[key].impl.accepts_scalar_loader
    )
    return mapper, at, unread
