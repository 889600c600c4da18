"""`kassa events list|show|replay`: the stored inbound events (bank callbacks, the bank's
answers to polls, settlement files), for a person explaining or repairing a result.

A replay processes one event again, idempotently: a replay of a processed event changes
nothing (gateway.services.inbound_events). Errors print one line on stderr, exit code 2.
"""

from __future__ import annotations

import json
from typing import Any

import click

from gateway.entrypoints.input_guard import MAX_ROW_ID

EVENT_ID = click.argument("event_id", type=click.IntRange(1, MAX_ROW_ID))


@click.group("events")
def events() -> None:
    """Stored inbound events: list them, show one raw, replay one."""


def _database() -> Any:
    from gateway.adapters.db import Database
    from gateway.config import load_config

    config = load_config()
    database = Database(config.database.url)
    database.require_current_schema()
    return config, database


@events.command("list")
@click.option("--type", "kind", help="Event type, e.g. payment.succeeded or camt053.")
@click.option("--status", help="processed, unmatched, unknown_type, invalid, failed, …")
@click.option("--source", type=click.Choice(["bank", "settlement_file"]))
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def list_command(
    kind: str | None, status: str | None, source: str | None, limit: int, as_json: bool
) -> None:
    """The newest events first, with their type, status and error."""
    from gateway.services import inbound_events

    wanted = inbound_events.EventFilter(source=source, kind=kind, status=status, limit=limit)
    _config, database = _database()
    with database.unit_of_work(readonly=True) as uow:
        rows, total = inbound_events.list_events(uow, wanted)
        for event in rows:
            if as_json:
                click.echo(json.dumps(_summary(event)))
                continue
            click.echo(
                f"{event.id:>6}  {event.received_at:%Y-%m-%d %H:%M:%S}  {event.source:<15} "
                f"{event.kind or '-':<20} {event.status:<12} {event.external_id}"
                + (f"  ({event.error})" if event.error else "")
            )
    if not as_json:
        click.echo(f"{len(rows)} of {total} matching events", err=True)


@events.command("show")
@EVENT_ID
def show_command(event_id: int) -> None:
    """One event: what it is, its headers, and its raw body as received."""
    from gateway.services import inbound_events

    _config, database = _database()
    with database.unit_of_work(readonly=True) as uow:
        event = inbound_events.get_event(uow, event_id)
        click.echo(json.dumps(_summary(event), indent=2))
        click.echo("headers:")
        click.echo(json.dumps(event.headers or {}, indent=2, sort_keys=True))
        click.echo("body:")
        click.echo(inbound_events.body_text(event))


@events.command("replay")
@EVENT_ID
def replay_command(event_id: int) -> None:
    """Process one event again (a processed one changes nothing)."""
    from gateway.services import inbound_events

    config, database = _database()
    done = inbound_events.replay(database, event_id, config.settlement)
    click.echo(f"event {done.event_id}: {done.before} -> {done.after}; {done.note}")


def _summary(event: Any) -> dict[str, Any]:
    return {
        "id": event.id,
        "source": event.source,
        "external_id": event.external_id,
        "type": event.kind,
        "status": event.status,
        "error": event.error,
        "received_at": event.received_at.isoformat(),
        "processed_at": event.processed_at.isoformat() if event.processed_at else None,
    }
