"""A database behind this code's migrations is refused, whether or not Alembic is loaded to
say so: ``require_current_schema`` trusts the migration files' own head only when the
database holds exactly it (both databases)."""

from __future__ import annotations

import pytest
from alembic.script import ScriptDirectory
from alembic.util import CommandError

from gateway.adapters.db import Database, alembic_config, migrations_head
from gateway.errors import ConfigurationError


def test_the_head_read_from_the_files_is_alembics(db: Database) -> None:
    head = ScriptDirectory.from_config(alembic_config(db)).get_current_head()
    assert migrations_head() == head is not None


@pytest.mark.parametrize(
    ("versions", "refusal"),
    [
        (["0021_parts"], ConfigurationError),
        ([], ConfigurationError),
        (["0023_not_yet_written"], ConfigurationError),
        (["0022_audit_chains", "0021_parts"], CommandError),  # Alembic's own words for it
    ],
    ids=["one behind", "none", "unknown", "two rows"],
)
def test_a_database_not_exactly_at_the_head_is_refused(
    db: Database, versions: list[str], refusal: type[Exception]
) -> None:
    db.require_current_schema()  # at the head: accepted
    head = migrations_head()
    try:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM alembic_version")
            for version in versions:
                conn.exec_driver_sql(
                    "INSERT INTO alembic_version (version_num) VALUES (:v)".replace(
                        ":v", "?" if db.engine.dialect.name == "sqlite" else "%s"
                    ),
                    (version,),
                )
        with pytest.raises(refusal, match=r"run `kassa db upgrade` first|more than one head"):
            db.require_current_schema()
    finally:
        with db.engine.begin() as conn:
            conn.exec_driver_sql("DELETE FROM alembic_version")
            conn.exec_driver_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{head}')")
    db.require_current_schema()


def test_a_database_emptied_table_by_table_migrates_again(db: Database) -> None:
    """Dropping every table leaves migration 0023's trigger functions behind on PostgreSQL
    (functions belong to the schema, not to a table): `kassa db upgrade` of such a database
    (the camt benchmark empties its database so) must make them again, not fail on them."""
    import os

    from sqlalchemy import text

    from gateway.adapters.models import Base

    if db.engine.dialect.name != "postgresql":
        pytest.skip("trigger functions outliving their tables are PostgreSQL's")
    schema = f"kassa_test_emptied_{os.getpid()}"
    with db.engine.begin() as conn:
        conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    url = db.engine.url.set(query={"options": f"-csearch_path={schema}"})
    emptied = Database(url.render_as_string(hide_password=False))
    try:
        emptied.upgrade()
        Base.metadata.drop_all(emptied.engine)
        with emptied.engine.begin() as conn:
            conn.execute(text("DROP TABLE alembic_version"))
            assert conn.scalar(
                text(
                    "SELECT count(*) FROM pg_proc WHERE proname = 'kassa_merchant_revision' "
                    "AND pronamespace = :schema ::regnamespace"
                ),
                {"schema": schema},
            )  # what dropping the tables left
        emptied.upgrade()
        emptied.require_current_schema()
        with emptied.engine.begin() as conn:
            triggers = conn.scalars(
                text(
                    "SELECT tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = :schema AND NOT t.tgisinternal ORDER BY tgname"
                ),
                {"schema": schema},
            ).all()
        assert triggers == ["merchants_revision", "webhook_endpoints_revision"]
    finally:
        emptied.dispose()
        with db.engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA IF EXISTS {schema} CASCADE"))
