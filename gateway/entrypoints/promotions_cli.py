"""`kassa promotions …`: list promotions, show one, issue batch coupon codes, read an
experiment's results, audit a lucky draw.

Errors (an unknown key, a bad date) are :class:`~gateway.errors.KassaError`; the ``kassa``
group turns them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time
from typing import Any

import click

from gateway.entrypoints.input_guard import MAX_ROW_ID, check_date
from gateway.errors import InvalidInput, NotFound

MERCHANT = click.option(
    "--merchant",
    "merchant_id",
    type=click.IntRange(1, MAX_ROW_ID),
    help="Merchant id (default: the only merchant).",
)


@click.group("promotions")
def promotions() -> None:
    """In-store wallet promotions and their A/B tests."""


@contextmanager
def _unit_of_work(readonly: bool = False) -> Iterator[Any]:
    from gateway.adapters.db import Database
    from gateway.config import load_config

    database = Database(load_config().database.url)
    try:
        database.require_current_schema()
        with database.unit_of_work(readonly=readonly) as uow:
            yield uow
    finally:
        database.dispose()


def _merchant(uow: Any, merchant_id: int | None) -> int:
    from gateway.services.staff.stores import chosen_merchant

    return chosen_merchant(uow, merchant_id)


def _money(minor: int | None, currency: str) -> str:
    from gateway.domain.money import Money

    return "—" if minor is None else str(Money(minor, currency))


@promotions.command("list")
@MERCHANT
@click.option("--json", "as_json", is_flag=True, help="Print the promotions as JSON.")
def list_command(merchant_id: int | None, as_json: bool) -> None:
    """The promotions, newest first: status, budget used and uses."""
    from gateway.adapters.models import utcnow
    from gateway.services.promotions.promotion_reads import list_promotions

    with _unit_of_work(readonly=True) as uow:
        rows = list_promotions(uow, _merchant(uow, merchant_id), now=utcnow())
    if as_json:
        click.echo(json.dumps([r.to_json() for r in rows], indent=2))
        return
    table = [("KEY", "NAME", "KIND", "STATUS", "BUDGET USED", "GIVEN", "USES")]
    for r in rows:
        budget = _money(r.budget_minor, r.currency) if r.budget_minor is not None else "no limit"
        used = f"{_money(r.used_minor, r.currency)} / {budget}"
        given = _money(r.given_minor, r.currency)
        uses = f"{r.used_count}" + (f" / {r.count_limit}" if r.count_limit is not None else "")
        table.append((r.key, r.name, r.kind, r.status, used, given, uses))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    for row in table:
        click.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    if not rows:
        click.echo("(no promotions)")


@promotions.command("show")
@click.argument("key")
@MERCHANT
def show_command(key: str, merchant_id: int | None) -> None:
    """One promotion: its facts, spec and change history, as JSON."""
    from gateway.adapters.models import utcnow
    from gateway.services.promotions import promotion_admin as admin
    from gateway.services.promotions import promotion_reads as reads

    with _unit_of_work(readonly=True) as uow:
        row = admin.get_promotion(uow, _merchant(uow, merchant_id), key)
        summary = reads.summarise(uow, [row], utcnow())[0]
        out = summary.to_json() | {
            "spec": row.spec,
            "history": [
                {
                    "at": c.created_at.isoformat(),
                    "action": c.action,
                    "actor": c.actor,
                    "detail": c.detail,
                }
                for c in reads.history(uow, row)
            ],
        }
    click.echo(json.dumps(out, indent=2, ensure_ascii=False))


@promotions.command("issue-coupons")
@click.argument("key")
@click.option(
    "--count", type=click.IntRange(-MAX_ROW_ID, MAX_ROW_ID), help="How many codes (1 to 10 000)."
)
@click.option("--expires", help="Last day the codes are valid, YYYY-MM-DD (UTC).")
@click.option(
    "--customer",
    "customers",
    multiple=True,
    help="A customer's token (cus_…): a personal code only they can use; repeat per customer.",
)
@MERCHANT
def issue_coupons_command(
    key: str,
    count: int | None,
    expires: str | None,
    customers: tuple[str, ...],
    merchant_id: int | None,
) -> None:
    """Issue unique codes of the batch coupon KEY (COUNT of them, or one per --customer) and
    print them, one a line."""
    from sqlalchemy import select

    from gateway.adapters.promotion_models import Customer
    from gateway.services.promotions import promotion_admin as admin

    expires_at = None
    if expires:
        try:
            day = check_date(date.fromisoformat(expires), "--expires")
        except ValueError:
            raise InvalidInput(f"--expires must be YYYY-MM-DD, not {expires!r}") from None
        expires_at = datetime.combine(day, time.max, tzinfo=UTC)
    if customers and count not in (None, len(customers)):
        raise InvalidInput(f"--count is {count} but {len(customers)} customers were named")
    if count is None and not customers:
        raise InvalidInput("say how many codes with --count N, or name customers with --customer")
    count = count or len(customers)
    with _unit_of_work() as uow:
        merchant = _merchant(uow, merchant_id)
        row = admin.get_promotion(uow, merchant, key)
        ids = None
        if customers:
            found = dict(
                uow.session.execute(
                    select(Customer.token, Customer.id).where(
                        Customer.merchant_id == merchant, Customer.token.in_(customers)
                    )
                ).all()
            )
            if missing := [t for t in customers if t not in found]:
                raise NotFound(f"no customer {missing[0]!r} at this merchant")
            ids = [found[t] for t in customers]
        codes = admin.issue_coupons(
            uow, row, count=count, expires_at=expires_at, customer_ids=ids, actor="cli"
        )
        uow.commit()
    if customers:
        click.echo(
            "\n".join(f"{code}\t{token}" for code, token in zip(codes, customers, strict=True))
        )
    else:
        click.echo("\n".join(codes))


@promotions.command("results")
@click.argument("experiment_key")
@MERCHANT
@click.option("--json", "as_json", is_flag=True, help="Print the figures and tests as JSON.")
def results_command(experiment_key: str, merchant_id: int | None, as_json: bool) -> None:
    """An experiment's figures per variant and each variant tested against the control."""
    from gateway.adapters.models import utcnow
    from gateway.services.promotions.experiment_results import results

    with _unit_of_work(readonly=True) as uow:
        out = results(uow, _merchant(uow, merchant_id), experiment_key, now=utcnow())
    if as_json:
        click.echo(json.dumps(out.to_json(), indent=2, ensure_ascii=False))
        return
    click.echo(f"{out.name} ({out.key}), control {out.control}, amounts in {out.currency}")
    click.echo("VARIANT  CUSTOMERS  ELIGIBLE  REDEEMED  PURCHASES  AVG TICKET  NEW  RETAINED  COST")
    for f in out.figures:
        click.echo(
            f"{f.name:<8} {f.customers:>9} {f.eligible:>9} {f.redemptions:>9} {f.purchases:>10} "
            f"{_money(f.average_ticket_minor, out.currency):>11} {f.new_customers:>4} "
            f"{f.retained_30d:>4}/{f.retention_base:<4} {_money(f.cost_minor, out.currency)}"
        )
    for c in out.comparisons:
        click.echo(f"\n{c.variant} against {out.control}:")
        for t in c.tests:
            click.echo(f"  {t.metric}: {t.test}, statistic {t.statistic:.3f}, p {t.p_value:.4f}")
        click.echo(f"  {c.verdict}")


@promotions.command("audit-draws")
@click.argument("key")
@MERCHANT
@click.option("--reveal-seed", is_flag=True, help="Print the seed (only once the draw ended).")
@click.option("--json", "as_json", is_flag=True, help="Print every draw and its replay as JSON.")
def audit_draws_command(
    key: str, merchant_id: int | None, reveal_seed: bool, as_json: bool
) -> None:
    """Replay every paid draw of the lucky draw KEY from its recorded seed, key and stock.

    Exits 1 if any replay disagrees with the record."""
    from gateway.adapters.models import utcnow
    from gateway.services.promotions.draw_audit import audit_draws, published_seed

    with _unit_of_work(readonly=True) as uow:
        merchant = _merchant(uow, merchant_id)
        draws = audit_draws(uow, merchant, key)
        seed = published_seed(uow, merchant, key, utcnow()) if reveal_seed else None
    bad = [d for d in draws if not d.agrees]
    if as_json:
        out = {
            "promotion": key,
            "draws": [
                {"sale_id": d.sale_id, "at": d.drawn_at.isoformat(), "roll": d.roll,
                 "outcome": d.outcome, "prize": d.prize, "replayed_roll": d.replayed_roll,
                 "replayed_outcome": d.replayed_outcome, "agrees": d.agrees}
                for d in draws
            ],
            "seed": seed,
        }  # fmt: skip
        click.echo(json.dumps(out, indent=2, ensure_ascii=False))
    else:
        for d in draws:
            mark = "ok" if d.agrees else f"DIFFERS: replay {d.replayed_roll} {d.replayed_outcome}"
            click.echo(
                f"{d.drawn_at:%Y-%m-%d %H:%M:%S}  {d.sale_id}  roll {d.roll:>6}  "
                f"{d.outcome:<8} {d.prize or '':<20} {mark}"
            )
        click.echo(f"{len(draws) - len(bad)} of {len(draws)} draws replay exactly")
        if seed is not None:
            click.echo(f"seed: {seed}")
    if bad:
        raise SystemExit(1)
