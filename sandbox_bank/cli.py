"""``kassa sandbox-bank``: serve the sandbox acquirer, or run a settlement from the shell.

Registered by the gateway's CLI as a sub-group; also usable alone
(``python -m sandbox_bank.cli``). Errors print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, date, datetime
from typing import Any

import click

from gateway.errors import KassaError
from sandbox_bank import delivery, events, settings, settlement_run, state
from sandbox_bank.app import create_app
from sandbox_bank.errors import NotFound
from sandbox_bank.models import Merchant


class _Group(click.Group):
    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except KassaError as exc:
            click.echo(f"kassa sandbox-bank: {exc}", err=True)
            sys.exit(2)


@click.group("sandbox-bank", cls=_Group)
def sandbox_bank_cli() -> None:
    """The sandbox acquirer: a pretend bank for development, demos and tests."""


@sandbox_bank_cli.command()
@click.option("--host", default=None, help="Address to listen on [config: sandbox_bank.host].")
@click.option("--port", type=int, default=None, help="Port [config: sandbox_bank.port].")
def serve(host: str | None, port: int | None) -> None:
    """Run the sandbox bank with granian (one worker, eight threads, callbacks in background)."""
    from gateway.entrypoints.web_server import serve_wsgi

    chosen = settings.from_config(settings.read_config())
    host, port = host or chosen.host, port or chosen.port
    click.echo(f"sandbox bank on http://{host}:{port}/sandbox/ (database {chosen.database_url})")
    serve_wsgi("sandbox_bank.wsgi:app", host=host, port=port, workers=1, threads=8,
               role="sandbox-bank")  # fmt: skip


@sandbox_bank_cli.command()
@click.option(
    "--date",
    "day",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=None,
    help="Settlement date YYYY-MM-DD (default: today, UTC).",
)
@click.option("--merchant", "merchant_id", default=None, help="One merchant (default: all).")
@click.option("--deliver", is_flag=True, help="Also send the callbacks now (no server running).")
@click.option("--json", "as_json", is_flag=True, help="Print the settlements as JSON.")
def settle(day: datetime | None, merchant_id: str | None, deliver: bool, as_json: bool) -> None:
    """Run the settlement of a day: camt.053, camt.054, CSV and a settlement.created callback."""
    config = settings.read_config()
    config[settings.SECTION]["deliver_in_background"] = False
    app = create_app(config)
    bank = state.of(app)
    when = day.date() if day else datetime.now(UTC).date()
    try:
        results = _settle_all(bank, when, merchant_id)
        if deliver:
            delivery.deliver_due(app)
    finally:
        bank.close()
    if as_json:
        click.echo(json.dumps(results, indent=2))
        return
    for result in results:
        click.echo(_summary(result))
    if not deliver:
        click.echo("settlement.created callbacks are queued; a running sandbox bank sends them")


def _settle_all(bank: state.SandboxBank, when: date, merchant_id: str | None) -> list[Any]:
    results = []
    with bank.writing() as session:
        merchants = [m for m in session.query(Merchant).order_by(Merchant.merchant_id)]
        chosen = [m for m in merchants if merchant_id in (None, m.merchant_id)]
        if not chosen:
            raise NotFound(f"the sandbox bank knows no merchant {merchant_id!r}")
        for merchant in chosen:
            found, created = settlement_run.run(session, merchant, when, bank.settings.url)
            body = events.settlement_json(found, bank.settings.url)
            body["created"] = created
            results.append(body)
    return results


def _summary(result: dict[str, Any]) -> str:
    verb = "settled" if result["created"] else "already settled"
    return (
        f"{result['merchant_id']} {result['date']} {verb} as {result['settlement_id']}:"
        f" {result['payment_count']} payments, gross {result['gross']}, fees {result['fees']},"
        f" refunds {result['refunds']}, net {result['net']} {result['currency']}\n"
        f"  {result['files']['camt053']}\n  {result['files']['camt054']}\n"
        f"  {result['files']['csv']}"
    )


if __name__ == "__main__":
    sandbox_bank_cli()
