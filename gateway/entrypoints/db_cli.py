"""`kassa db scan-pans`: look for card numbers stored anywhere Kassa keeps data.

Every text, JSON and binary column of every table (the schema is reflected, so nothing is
missed) and every file under the settlement archive folder and the device hosts' support logs
(``[devices] log_dir``: every byte to and from each terminal and reader, masked as written).
Each hit is printed as ``table.column [row id]: masked sample`` (or ``file [byte offset]``);
the exit code is 1 when anything was found, 0 when clean, 2 for a usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.command("scan-pans")
@click.option(
    "--url",
    "urls",
    multiple=True,
    help="A database to scan instead of the configured one; repeatable.",
)
@click.option(
    "--folder",
    "folders",
    multiple=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A folder to scan instead of [settlement] archive_dir and [devices] log_dir; repeatable.",
)
@click.option("--no-files", is_flag=True, help="Scan the database only.")
def scan_pans(urls: tuple[str, ...], folders: tuple[Path, ...], no_files: bool) -> None:
    """Find stored card numbers: exit 1 and list them (masked) if any, exit 0 if none."""
    from sqlalchemy.exc import SQLAlchemyError

    from gateway.adapters.card_scan import scan_database, scan_folder
    from gateway.adapters.db import Database
    from gateway.config import device_log_dir, load_config
    from gateway.errors import ConfigurationError

    config = load_config()
    hits = 0
    for url in urls or (config.database.url,):
        _require_existing_sqlite(url)
        database = Database(url)
        try:
            with database.engine.connect() as connection:
                for hit in scan_database(connection):
                    click.echo(str(hit))
                    hits += 1
        except SQLAlchemyError as exc:
            problem = exc.__class__.__name__
            raise ConfigurationError(f"cannot scan {_safe(url)}: {problem}") from None
        finally:
            database.dispose()
    if not no_files:
        kept = (Path(config.settlement.archive_dir), device_log_dir(config))
        for folder in folders or kept:
            for hit in scan_folder(folder):
                click.echo(str(hit))
                hits += 1
    if hits:
        click.echo(f"kassa: {hits} card numbers stored; mask them (`kassa db upgrade`)", err=True)
        sys.exit(1)
    click.echo("no card numbers found", err=True)


def _require_existing_sqlite(url: str) -> None:
    """Scanning must not create an empty database where there was none."""
    from sqlalchemy import make_url

    try:
        parsed = make_url(url)
    except Exception:  # any unreadable URL is the user's to fix
        raise click.UsageError(f"--url {url!r} is not a database URL") from None
    database = parsed.database or ""
    if parsed.get_backend_name() == "sqlite" and database not in ("", ":memory:"):
        if not database.startswith("file:") and not Path(database).is_file():
            raise click.UsageError(f"no SQLite database at {database}")


def _safe(url: str) -> str:
    from sqlalchemy import make_url

    return make_url(url).render_as_string(hide_password=True)
