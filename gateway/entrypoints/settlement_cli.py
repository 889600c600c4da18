"""`kassa settlement …`: import bank and acquirer settlement files.

Errors (a malformed file, an unknown mapping) are :class:`~gateway.errors.KassaError`; the
``kassa`` group turns them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import click

from gateway.adapters.settlement_files import FORMATS, detect_format

if TYPE_CHECKING:
    from gateway.services.settlement.file_summary import ImportSummary
    from gateway.settings import Settings


@click.group("settlement")
def settlement() -> None:
    """Settlement files from banks and acquirers (camt.053, camt.054, CSV)."""


@settlement.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run",
    is_flag=True,
    help="Parse and summarise the file only: no database is opened, nothing is written.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--format", "file_format", type=click.Choice(FORMATS), help="Default: detected.")
@click.option("--mapping", help="CSV column mapping ([settlement.csv_mappings.NAME]).")
def import_command(
    file: Path, dry_run: bool, as_json: bool, file_format: str | None, mapping: str | None
) -> None:
    """Import FILE: store it raw, then its entries, once (a re-import changes nothing)."""
    if dry_run:
        from gateway.services.settlement.file_summary import summarise_settlement_file

        # Only a CSV's reading is configured (its column mappings): a camt file's dry run
        # starts without loading the configuration, as fast as the file's reader.
        settings = _configuration().settlement if _is_csv(file) else None
        with _progress(file, show=not as_json) as on_read:
            summary = summarise_settlement_file(
                file, settings, file_format=file_format, mapping_name=mapping, on_read=on_read
            )
    else:
        summary = _import(file, _configuration(), file_format, mapping, show_progress=not as_json)
    if as_json:
        click.echo(json.dumps(summary.to_json(), indent=2))
        return
    verb = "would import" if dry_run else "imported"
    if summary.duplicate:
        verb = "already imported"
    click.echo(f"{file.name}: {summary.format}, {summary.entries} entries, {verb}")
    if not summary.duplicate and not dry_run:
        click.echo(
            f"  file id {summary.file_id}: {summary.stored} stored, {summary.skipped}"
            " already known from other files"
        )
    for currency, sums in summary.sums.items():
        click.echo("  " + currency + ": " + ", ".join(f"{k} {v}" for k, v in sums.items()))
    if summary.updated:
        click.echo(f"  {summary.updated} pending movements from earlier files booked now")
    for code, count in summary.warning_counts.items():
        click.echo(f"  warning: {code} ({count}); see --json for paths, lines and values")
    if summary.pans_masked:
        click.echo(f"  {summary.pans_masked} full card numbers masked to first6/last4 on read")


def _import(
    file: Path, config: Settings, file_format: str | None, mapping: str | None, show_progress: bool
) -> ImportSummary:
    from gateway.adapters.db import Database
    from gateway.services.settlement.file_import import import_settlement_file

    database = Database(config.database.url)
    try:
        database.require_current_schema()
        with _progress(file, show=show_progress) as on_read, database.unit_of_work() as uow:
            return import_settlement_file(
                uow,
                file,
                config.settlement,
                file_format=file_format,
                mapping_name=mapping,
                on_read=on_read,
            )
    finally:
        database.dispose()


def _configuration() -> Settings:
    from gateway.config import load_config  # its settings import pydantic: only when needed

    return load_config()


def _is_csv(file: Path) -> bool:
    with file.open("rb") as f:
        return detect_format(f.read(1 << 16)) == "csv"


@contextmanager
def _progress(file: Path, show: bool) -> Iterator[Callable[[int], None] | None]:
    """A progress bar over the file's bytes, on a terminal only."""
    if not (show and sys.stdout.isatty()):
        yield None
        return
    with click.progressbar(length=file.stat().st_size, label=file.name, file=sys.stderr) as bar:
        yield bar.update
