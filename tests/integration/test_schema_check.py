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
