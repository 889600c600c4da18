"""The ``kassa`` command line: one group, a sub-command per job.

Errors the user can fix print one line on stderr and exit with code 2.
"""

from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from gateway.errors import KassaError

if TYPE_CHECKING:
    from gateway.settings import Settings


class LazyGroup(click.Group):
    """A group whose sub-commands are imported on first use (click's documented LazyGroup).

    ``lazy`` maps a sub-command's name to ``"module:attribute"``. Support commands such as
    ``kassa zvt decode`` then import only their own modules, not Flask, SQLAlchemy or the
    services the web tier needs.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self.lazy})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy and cmd_name not in self.commands:
            module, _, attribute = self.lazy[cmd_name].partition(":")
            command = getattr(importlib.import_module(module), attribute)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return super().get_command(ctx, cmd_name)


class KassaGroup(LazyGroup):
    """Turns a :class:`KassaError` anywhere below into one line on stderr and exit code 2."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # No shell passes a NUL (execve cannot), but a script calling Kassa might: refused
        # before any command could hand it to a database that cannot store it.
        for arg in args:
            if "\x00" in arg:
                click.echo("kassa: an argument contains a NUL character; remove it", err=True)
                sys.exit(2)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        # What a command does is audited as coming from ``cli``: the audit context's default
        # for a process. Only if something already set a source here (a web request in the
        # same thread, say) is it reset; the fast support commands import nothing for this.
        context = sys.modules.get("gateway.services.staff.audit_context")
        if context is not None:
            context.set_source("cli")
        try:
            return super().invoke(ctx)
        except KassaError as exc:
            from gateway.domain.card_data import scrub_card_numbers

            click.echo(f"kassa: {scrub_card_numbers(str(exc))}", err=True)
            sys.exit(2)


@click.group(
    cls=KassaGroup,
    lazy={
        "admin": "gateway.entrypoints.staff_cli:admin",
        "audit": "gateway.entrypoints.staff_cli:audit",
        "customers": "gateway.entrypoints.customers_cli:customers",
        "events": "gateway.entrypoints.events_cli:events",
        "pn532": "drivers.pn532.cli:pn532",
        "promotions": "gateway.entrypoints.promotions_cli:promotions",
        "qr": "gateway.entrypoints.qr_cli:qr",
        "sandbox-bank": "sandbox_bank.cli:sandbox_bank_cli",
        "settlement": "gateway.entrypoints.settlement_cli:settlement",
        "zvt": "drivers.zvt.cli:zvt",
    },
)
@click.pass_context
def main(ctx: click.Context) -> None:
    """Kassa: merchant point-of-sale integration gateway."""
    import logging

    from gateway.adapters.logging_setup import configure_logging

    role = PROCESS_ROLES.get(ctx.invoked_subcommand or "", "cli")
    # One format for every kassa process, the card-number filter on every handler.
    configure_logging(role, level=logging.WARNING if role == "cli" else logging.INFO)


# The role a log line names, by sub-command (``serve`` and ``sandbox-bank serve`` set theirs up as
# they start granian, whose workers' WSGI modules set it up again); other commands log as ``cli``,
# warnings only.
PROCESS_ROLES = {"worker": "worker", "devices": "device-host", "sandbox-bank": "sandbox-bank"}


def _config() -> Settings:
    from gateway.adapters import passwords
    from gateway.config import load_config

    settings = load_config()
    passwords.configure(settings.security.argon2_time_cost, settings.security.argon2_memory_kib)
    _configure_identity(settings)
    if settings.web.log_format != "auto":
        import logging

        from gateway.adapters.logging_setup import configure_logging

        configure_logging(log_format=settings.web.log_format, level=logging.getLogger().level)
    return settings


def _configure_identity(settings: Settings) -> None:
    """TOTP secrets' key, for commands that enrol or check a second factor."""
    from gateway.config import mfa_key
    from gateway.services.staff import mfa

    mfa.configure(mfa_key(settings))


def _database(config: Settings) -> Any:
    from gateway.adapters.db import Database
    from gateway.services.monitoring import thresholds

    thresholds.configure(config.monitoring)  # the anomaly rules' defaults for this process
    return Database(config.database.url)


@main.group(cls=LazyGroup, lazy={"scan-pans": "gateway.entrypoints.db_cli:scan_pans"})
def db() -> None:
    """Database schema, and what is stored in it."""


@db.command("upgrade")
@click.option("--revision", default="head", show_default=True)
def db_upgrade(revision: str) -> None:
    """Migrate the database to the newest schema (Alembic)."""
    config = _config()
    _database(config).upgrade(revision)
    click.echo(f"database at {_safe_url(config.database.url)} is at revision {revision}")


@main.command("demo-data")
@click.option("--json", "as_json", is_flag=True, help="Print the credentials as JSON.")
def demo_data(as_json: bool) -> None:
    """Seed one merchant, two stores, three tills, a cashier, a manager and a supervisor; print
    credentials (every till's API key, approval PINs) and a few of the demo's coupon codes."""
    config = _config()
    database = _database(config)
    database.upgrade()
    creds = _seed_demo(config, database)
    if as_json:
        click.echo(json.dumps(creds, indent=2))
        return
    click.echo(f"Merchant: {creds['merchant']}")
    for staff in creds["staff"]:
        pin = f", approval PIN {staff['pin']}" if staff.get("pin") else ""
        click.echo(f"  {staff['role']:<8} login: {staff['username']} / {staff['password']}{pin}")
        if staff.get("totp_secret"):
            click.echo(f"           TOTP secret (authenticator app): {staff['totp_secret']}")
    for till in creds["tills"]:
        click.echo(f"  till {till['store']} {till['till']}: API key {till['api_key']}")
    if creds["coupon_codes"]:
        click.echo(f"  coupon codes (10 % off, single use): {', '.join(creds['coupon_codes'])}")


def _seed_demo(config: Settings, database: Any) -> dict[str, Any]:
    """The demo's credentials, seeded if need be, with coupon codes still unused right now."""
    from gateway.services.demo import demo_coupon_codes, seed_demo

    with database.unit_of_work() as uow:
        creds = seed_demo(uow, Path(config.demo.credentials_file), history=True)
        return {**creds, "coupon_codes": demo_coupon_codes(uow)}


@main.command()
def worker() -> None:
    """Run background jobs (QR expiry, retries) from the job table until stopped."""
    from gateway.services.jobs import run_worker
    from gateway.services.registry import job_handlers

    config = _config()
    database = _database(config)
    database.require_current_schema()
    from gateway.adapters.models import utcnow
    from gateway.services.staff.audit_context import set_process_source

    set_process_source("worker")
    from gateway.services.promotions.privacy import schedule_retention
    from gateway.services.promotions.sales import schedule_purge
    from gateway.services.settlement.reconciliation import schedule_all

    with database.unit_of_work() as uow:  # the daily jobs keep themselves going from here
        schedule_all(uow, utcnow().date())
        schedule_purge(uow, utcnow().date())
        schedule_retention(uow, utcnow().date())
        uow.commit()
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo("kassa worker: running jobs from the job table (Ctrl-C stops)")
    run_worker(
        database,
        job_handlers(config),
        poll_interval=config.worker.poll_interval_ms / 1000,
        lease_seconds=config.worker.lease_seconds,
        stop=lambda: stopping,
        threads=config.worker.threads,
    )


@main.group(invoke_without_command=True)
@click.option(
    "--simulate",
    is_flag=True,
    help="Start a simulated ZVT terminal and PN532 reader for the first configured till.",
)
@click.pass_context
def devices(ctx: click.Context, simulate: bool) -> None:
    """Own the tills' serial ports: run card jobs, poll NFC readers, write heartbeats.

    With a sub-command, ``log`` shows what the devices said and ``end-of-day`` asks the running
    device host to close a till's batch.
    """
    if ctx.invoked_subcommand is None:
        _run_device_host(simulate)


@devices.command("log")
@click.option("--till", "till", required=True, metavar="STORE/TILL", help='e.g. "Berlin Mitte/T01"')
@click.option("--since", default="10m", show_default=True, help="How far back: 90s, 10m, 2h, 1d.")
@click.option("--device", type=click.Choice(["card_terminal", "nfc_reader"]), default=None)
def devices_log(till: str, since: str, device: str | None) -> None:
    """Print a till's raw device log: every byte to and from its terminal and reader, with
    the decoded message beside it (card data masked)."""
    from drivers.device_log import device_directory, format_entry, read_entries
    from gateway.config import device_log_dir, load_config

    store, slash, label = till.rpartition("/")
    if not slash or not store or not label:
        raise click.UsageError(f"--till is STORE/TILL, e.g. 'Berlin Mitte/T01', not {till!r}")
    folder = device_directory(device_log_dir(load_config()), store, label)
    entries = read_entries(folder, time.time() - _seconds(since))
    for entry in entries:
        if device is None or entry["device"] == device:
            click.echo(format_entry(entry))
    if not entries:
        click.echo(f"kassa: nothing logged for {store}/{label} in the last {since}", err=True)


def _seconds(span: str) -> float:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    number, unit = span[:-1], span[-1:]
    if unit not in units or not number.replace(".", "", 1).isdigit():
        raise click.BadParameter(
            f"{span!r}: a number and s, m, h or d (e.g. 10m)", param_hint="--since"
        )
    return float(number) * units[unit]


@devices.command("end-of-day")
@click.option("--till", "till_name", required=True, help="The till, as STORE/TILL.")
@click.option(
    "--wait",
    "wait_seconds",
    type=float,
    default=0,
    help="Wait up to this many seconds for the device host to close the batch.",
)
def devices_end_of_day(till_name: str, wait_seconds: float) -> None:
    """Close the till's terminal batch now: its card payments become paid."""
    from gateway.services.devices import end_of_day

    config = _config()
    database = _database(config)
    database.require_current_schema()
    with database.unit_of_work() as uow:
        till = end_of_day.till_by_name(uow, till_name)
        till_id, merchant_id = till.id, till.store.merchant_id
        job = end_of_day.request_end_of_day(uow, till_id, merchant_id, "cli")
        uow.commit()
        job_id = job.id
    click.echo(f"end of day queued for {till_name} (job {job_id}); the device host runs it")
    if wait_seconds > 0:
        click.echo(_wait_for_batch(database, job_id, till_id, wait_seconds))


def _wait_for_batch(database: Any, job_id: int, till_id: int, seconds: float) -> str:
    from sqlalchemy import select

    from gateway.adapters.models import CardBatch, Job
    from gateway.errors import Conflict

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with database.unit_of_work(readonly=True) as uow:
            job = uow.session.get_one(Job, job_id)
            if job.status == "done":
                batch = uow.session.scalars(
                    select(CardBatch)
                    .where(CardBatch.till_id == till_id)
                    .order_by(CardBatch.id.desc())
                    .limit(1)
                ).one()
                return (
                    f"closed: terminal {batch.terminal_total_minor} ({batch.terminal_count}), "
                    f"Kassa {batch.kassa_total_minor} ({batch.kassa_count}) minor units "
                    f"{batch.currency}; "
                    + (f"DIFFERENCE: {batch.difference}" if batch.difference else "they agree")
                )
            if job.status == "failed":
                raise Conflict(f"end of day failed at the terminal: {job.last_error}")
        time.sleep(0.2)
    raise Conflict(f"no device host closed the batch within {seconds:g} s; it is still queued")


def _run_device_host(simulate: bool) -> None:
    from gateway.config import device_log_dir, tag_token_key
    from gateway.entrypoints.device_host import DeviceHost, configured_tills
    from gateway.services.staff.audit_context import set_process_source

    set_process_source("device-host")

    config = _config()
    database = _database(config)
    database.require_current_schema()
    tills = configured_tills(database, config)
    simulators: list[Any] = []
    if simulate and tills:
        from drivers.simulators.pn532 import Pn532Simulator
        from drivers.simulators.zvt import ZvtSimulator

        terminal, reader = ZvtSimulator().start(), Pn532Simulator().start()
        terminal.clock_zone = tills[0].timezone  # a terminal shows its store's time
        simulators = [terminal, reader]
        tills[0].terminal_url, tills[0].reader_url = terminal.port, reader.port
    for till in tills:
        click.echo(
            f"kassa devices: till {till.label}: terminal {till.terminal_url or '-'}, "
            f"reader {till.reader_url or '-'}"
        )
    stopping = False

    def stop(*_: Any) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host = DeviceHost(
        database,
        tills,
        token_key=tag_token_key(config),
        heartbeat_seconds=config.devices.heartbeat_seconds,
        probe_seconds=config.devices.probe_seconds,
        log_dir=device_log_dir(config),
        log_max_bytes=config.devices.log_max_bytes,
        log_backups=config.devices.log_backups,
    )
    try:
        host.run(stop=lambda: stopping)
    finally:
        for simulator in simulators:
            simulator.stop()


@main.command()
@click.option("--host", default=None, help="Bind address (default from config).")
@click.option("--port", default=None, type=int, help="Port (default from config).")
@click.option("--workers", default=2, show_default=True, type=int)
@click.option(
    "--threads",
    default=16,
    show_default=True,
    type=click.IntRange(1, 256),
    help="Threads per worker: each open card payment screen's live stream holds one.",
)
def serve(host: str | None, port: int | None, workers: int, threads: int) -> None:
    """Serve the gateway web tier (API, cashier screen, portal) with granian."""
    from gateway.entrypoints.web_server import serve_wsgi

    config = _config()
    # Each thread may hold a database connection: keep that many open in every worker.
    os.environ["KASSA_DATABASE_POOL_SIZE"] = str(max(threads, config.database.pool_size))
    serve_wsgi(
        "gateway.entrypoints.wsgi:app",
        host=host or config.web.host,
        port=port or config.web.port,
        workers=workers,
        threads=threads,
        role="web",
    )


@main.command()
def run() -> None:
    """Set up and run everything for a demo on this machine.

    The gateway web tier, its worker and the sandbox acquirer (which pays QR codes from its
    wallet page and calls the gateway back), each in its own process; Ctrl-C stops them all.
    """
    config = _config()
    database = _database(config)
    database.upgrade()
    creds = _seed_demo(config, database)
    _share_metrics(config)
    kassa = [sys.executable, "-m", "gateway.entrypoints.cli"]
    procs = [
        subprocess.Popen([*kassa, "sandbox-bank", "serve"]),
        subprocess.Popen([*kassa, "serve"]),
        subprocess.Popen([*kassa, "worker"]),
    ]
    if config.devices.simulated:
        procs.append(subprocess.Popen([*kassa, "devices", "--simulate"]))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # stop the children on SIGTERM too
    try:
        base = f"http://{config.web.host}:{config.web.port}"
        bank = config.bank.url.rstrip("/")
        wait_ready("the sandbox bank", bank + "/healthz", procs)
        wait_ready("the web tier", base + "/readyz", procs)
        click.echo(_banner(base, bank, creds, config.devices.simulated))
        while all(p.poll() is None for p in procs):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        stop_children(procs)


def _share_metrics(config: Settings) -> None:
    """Let /metrics sum the counters of every child (the web tier's workers, the worker, the device
    host): prometheus-client's multiprocess mode, in an emptied folder under the data directory."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return  # the operator chose one
    import shutil

    from gateway.config import var_dir

    folder = var_dir(config) / "prometheus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(folder)  # the children inherit it


def _banner(base: str, bank: str, creds: dict[str, Any], devices: bool) -> str:
    cashier = next(s for s in creds["staff"] if s["role"] == "cashier")
    manager = next(s for s in creds["staff"] if s["role"] == "manager")
    indent = " " * 19
    lines = [
        "",
        "Kassa is running.",
        f"  Cashier screen:  {base}/cashier   login {cashier['username']} / "
        f"{cashier['password']} (Berlin Mitte's tills)",
        f"  Merchant portal: {base}/portal    login {manager['username']} / "
        f"{manager['password']} (the cashier screen too, any till)",
        f"{indent}second factor: TOTP secret {manager.get('totp_secret', '-')} (add it to an",
        f"{indent}authenticator app, or `kassa admin totp-code --secret …` prints the code)",
        *(
            f"{indent}approves large refunds and payments at the till: {who['username']} PIN "
            f"{who['pin']}"
            for who in creds["staff"]
            if who.get("pin")
        ),
        f"{indent}One sign-in per browser: for cashier and manager at once, open the",
        f"{indent}portal in a second browser profile or a private window.",
        f"  Terminal API:    {base}/api/v1    (OpenAPI: {base}/api/v1/openapi.json)",
        *(
            f"{indent}{till['store']} {till['till']} key: {till['api_key']}"
            for till in creds["tills"]
        ),
        f"  Sandbox bank:    {bank}/sandbox/   paste a payment's QR payload there to pay it",
        f"  Promotions:      {base}/portal/promotions, `kassa promotions list`; the cashier's",
        f"{indent}'Basket with promotions' prices a sale with them",
    ]
    if creds.get("coupon_codes"):
        lines.append(f"{indent}coupon codes (10 % off): {', '.join(creds['coupon_codes'])}")
    if devices:
        lines.append(
            "  Card terminal:   simulated ZVT terminal and PN532 reader at Berlin Mitte T01 "
            "(press Card)"
        )
    return "\n".join([*lines, "Press Ctrl-C to stop.", ""])


def wait_ready(name: str, url: str, procs: list[subprocess.Popen[bytes]]) -> float:
    """Wait until ``url`` answers 2xx, however long a loaded machine takes, saying so on one
    progress line; the seconds it took. Only a process that stops ends the wait early."""
    import requests

    began, said = time.monotonic(), -1
    tty = sys.stderr.isatty()
    again = "\r" if tty else ""  # a terminal's progress line is rewritten in place
    while True:
        if any(p.poll() is not None for p in procs):
            raise click.ClickException("a Kassa process stopped during start-up; see above")
        try:
            answer = requests.get(url, timeout=2)
            if answer.ok:
                waited = time.monotonic() - began
                if said >= 0:
                    click.echo(f"{again}{name} is ready ({waited:.0f} s)".ljust(100), err=True)
                return waited
            why = f"answers {answer.status_code}"
        except requests.RequestException:
            why = "not answering yet"
        seconds = int(time.monotonic() - began)
        if seconds != said and (tty or seconds % 5 == 0):
            line = f"{again}waiting for {name} at {url}: {why} ({seconds} s)"
            click.echo(line.ljust(100) if tty else line, err=True, nl=not tty)
            said = seconds
        time.sleep(0.2)


def stop_children(procs: list[subprocess.Popen[bytes]]) -> None:
    """Stop every child (SIGTERM, then SIGKILL after 10 s), ignoring a second Ctrl-C meanwhile,
    so stopping ends quietly instead of in a traceback."""
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    finally:
        signal.signal(signal.SIGINT, previous)


def _safe_url(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@main.group()
def recon() -> None:
    """Settlement reconciliation: match the bank's lines to Kassa's payments."""


@recon.command("run")
@click.option("--date", "day", required=True, help="The day to reconcile, YYYY-MM-DD.")
@click.option(
    "--merchant",
    "merchant_id",
    type=click.IntRange(1, 2**31 - 1),  # an INTEGER column: larger ids do not exist
    help="Merchant id (default: all).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the outcome counts as JSON.")
def recon_run(day: str, merchant_id: int | None, as_json: bool) -> None:
    """Reconcile DAY: every payment, refund and bank line gets one verdict with its reason."""
    from datetime import date as date_type

    from sqlalchemy import select

    from gateway.adapters.models import Merchant
    from gateway.entrypoints.input_guard import check_date
    from gateway.errors import InvalidInput
    from gateway.services.settlement.reconciliation import ReconSettings, reconcile_day

    try:
        wanted = check_date(date_type.fromisoformat(day), "--date")
    except ValueError:
        raise InvalidInput(f"--date must be YYYY-MM-DD, not {day!r}") from None
    config = _config()
    database = _database(config)
    database.require_current_schema()
    settings = ReconSettings.from_settings(config.reconciliation)
    out = {}
    with database.unit_of_work() as uow:
        ids = [merchant_id] if merchant_id else list(uow.session.scalars(select(Merchant.id)))
        for mid in ids:
            run = reconcile_day(uow, mid, wanted, settings, actor="cli")
            out[str(mid)] = run.counts
        uow.commit()
    if as_json:
        click.echo(json.dumps({"date": wanted.isoformat(), "merchants": out}, indent=2))
        return
    for mid, counts in out.items():
        summary = ", ".join(f"{k} {v}" for k, v in counts.items()) or "nothing to reconcile"
        click.echo(f"merchant {mid}, {wanted}: {summary}")


@main.group(
    cls=LazyGroup,
    lazy={
        "pn532": "drivers.pn532.cli:pn532_simulate_command",
        "zvt": "drivers.zvt.cli:zvt_simulate_command",
    },
)
def simulate() -> None:
    """Run a simulated device on a pty and print its port path (Ctrl-C stops it)."""


if __name__ == "__main__":
    main()
