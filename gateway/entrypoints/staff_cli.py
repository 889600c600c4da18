"""`kassa audit …` (check and read the audit trail) and `kassa admin …` (staff, stores, tills
and their API keys).

Errors are :class:`~gateway.errors.KassaError`; the ``kassa`` group turns them into one line on
stderr and exit code 2. Every admin action is written to the audit trail with source ``cli``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click


@contextmanager
def _unit_of_work(readonly: bool = False) -> Iterator[Any]:
    from gateway.adapters import passwords
    from gateway.adapters.db import Database
    from gateway.config import load_config

    settings = load_config()
    passwords.configure(settings.security.argon2_time_cost, settings.security.argon2_memory_kib)
    database = Database(settings.database.url)
    try:
        database.require_current_schema()
        with database.unit_of_work(readonly=readonly) as uow:
            yield uow
    finally:
        database.dispose()


@click.group("audit")
def audit() -> None:
    """The audit trail: who did what, chained by hashes so that an edit shows."""


@audit.command("verify")
def audit_verify() -> None:
    """Check every row's hash and the chain; exit 1 at the first broken row, 0 when intact."""
    from gateway.services.staff import audit as trail

    with _unit_of_work(readonly=True) as uow:
        result = trail.verify(uow)
    if result.intact:
        click.echo(f"audit trail intact: {result.checked} rows checked")
        return
    where = f"row {result.broken_id}" if result.broken_id else "the chain"
    click.echo(
        f"audit trail BROKEN at {where}: {result.reason} ({result.checked} rows before it are "
        "intact)",
        err=True,
    )
    sys.exit(1)
