"""The portal's settlement pages on a real day: payments, a sandbox camt.053, reconciliation.

The day: three paid QR payments; the bank settles the first right, the second with a fee of
0.99 EUR where the schedule (1.5 % + 0.10) gives 0.40, not the third, and books 7.77 EUR that
Kassa never took.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from gateway.adapters.db import Database
from gateway.adapters.models import Payment, ReconDecision, ReconResult
from gateway.config import load_config
from gateway.services.settlement.file_import import import_settlement_file
from sandbox_bank.camt import camt053
from sandbox_bank.settlement import SettlementBatch, SettlementLine
from tests.conftest import isolated_env
from tests.factories import second_merchant
from tests.integration.test_portal_pages import log_in, staff
from tests.integration.test_refunds import paid_payment

DAY = date(2025, 3, 10)


def settlement_day(db: Database, demo: dict[str, Any], folder: Path) -> dict[str, str]:
    """Build the day described above; returns the payment ids by what happens to them."""
    ids = [paid_payment(db, demo, amount) for amount in ("12.34", "20.00", "5.00")]
    refs = []
    with db.unit_of_work() as uow:
        for payment_id in ids:
            payment = uow.session.get_one(Payment, payment_id)
            payment.paid_at = payment.created_at = datetime(2025, 3, 10, 12, tzinfo=UTC)
            refs.append(payment.reference)
        uow.commit()
    lines = (
        SettlementLine("payment", refs[0], "bp1", None, None, DAY, 1234, 29, "EUR", "bill 1"),
        SettlementLine("payment", refs[1], "bp2", None, None, DAY, 2000, 99, "EUR", "bill 2"),
        SettlementLine("payment", "NOT-OURS-1", "bp9", None, None, DAY, 777, 0, "EUR", "?"),
    )
    batch = SettlementBatch(
        "STL-20250310", "KASSA-DEMO-0001", "Kassa Demo", "DE89370400440532013000", DAY,
        "EUR", datetime(2025, 3, 10, 23, tzinfo=UTC), 0, lines,
    )  # fmt: skip
    path = folder / "stl-20250310.camt053.xml"
    path.write_text(camt053(batch), encoding="utf-8")
    with db.unit_of_work() as uow:
        import_settlement_file(uow, path, load_config(env=isolated_env()).settlement)
    return {"matched": ids[0], "fee": ids[1], "missing": ids[2]}


def form_token(page: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token, page
    return token.group(1)


def run_day(client: FlaskClient, day: date = DAY) -> Any:
    page = client.get(f"/portal/settlement?month={day:%Y-%m}").get_data(as_text=True)
    return client.post(f"/portal/settlement/{day}/run", data={"csrf_token": form_token(page)})


def unknown_line(db: Database) -> str:
    with db.unit_of_work(readonly=True) as uow:
        return uow.session.scalars(
            select(ReconResult.subject_id).where(ReconResult.outcome == "settled_unknown")
        ).one()


def outcomes(client: FlaskClient, day: date = DAY) -> dict[tuple[str, str], str]:
    page = client.get(f"/portal/settlement/{day}").get_data(as_text=True)
    rows = re.findall(r'data-subject="(\w+)" data-subject-id="([^"]+)" data-outcome="(\w+)"', page)
    return {(subject, sid): outcome for subject, sid, outcome in rows}


def decide(client: FlaskClient, path: str, **form: str) -> Any:
    token = form_token(client.get(path).get_data(as_text=True))
    return client.post(f"{path}/decide", data={"csrf_token": token, **form})


@pytest.fixture
def manager(app: Any, demo: Any) -> FlaskClient:
    client = app.test_client()
    assert log_in(client, *staff(demo, "manager")).status_code == 303
    return client


@pytest.fixture
def day(db: Database, demo: Any, tmp_path: Path) -> dict[str, str]:
    return settlement_day(db, demo, tmp_path)


def test_calendar_runs_a_day_and_shows_its_exceptions(
    manager: FlaskClient, day: dict[str, str]
) -> None:
    before = manager.get("/portal/settlement?month=2025-03").get_data(as_text=True)
    assert 'data-day="2025-03-10" data-status="not-run"' in before
    response = run_day(manager)
    assert response.status_code == 303
    assert response.headers["Location"] == "/portal/settlement?month=2025-03"
    page = manager.get(response.headers["Location"]).get_data(as_text=True)
    assert "Reconciled 2025-03-10: 2 matched, 2 matched fee difference" in page
    row = page[page.index('data-day="2025-03-10"') :].split("</tr>")[0]
    assert 'data-status="exceptions"' in row and "4 exceptions" in row
    # Expected 37,34 €; settled 40,11 € (incl. the unknown 7,77 €); fees charged 1,28 €;
    # difference = (40,11 − 1,28) − (37,34 − 0,87) = 2,36 €.
    for figure in ("€37.34", "€40.11", "€1.28", "€2.36"):
        assert figure in row
    assert 'data-day="2025-03-11" data-status="not-run"' in page
    assert "Settlement</a>" in page and 'aria-current="page">Settlement' in page


def test_day_page_and_csv_list_every_verdict(
    manager: FlaskClient, day: dict[str, str], db: Database
) -> None:
    run_day(manager)
    line = unknown_line(db)
    assert outcomes(manager) == {
        ("payment", day["matched"]): "matched",
        ("payment", day["fee"]): "matched_fee_difference",
        ("payment", day["missing"]): "paid_not_settled",
        ("line", "1"): "matched",
        ("line", "2"): "matched_fee_difference",
        ("line", line): "settled_unknown",
    }
    page = manager.get(f"/portal/settlement/{DAY}").get_data(as_text=True)
    assert f'href="/portal/payments/{day["matched"]}"' in page
    assert "where the schedule gives 0.40 EUR (difference 0.59 EUR)" in page
    response = manager.get(f"/portal/settlement/{DAY}.csv")
    assert response.mimetype == "text/csv"
    assert 'filename="settlement-2025-03-10.csv"' in response.headers["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    by_id = {r["subject_id"]: r for r in rows}
    assert len(rows) == 6
    fee = by_id[day["fee"]]
    assert (fee["outcome"], fee["exception"], fee["currency"]) == (
        "matched_fee_difference", "yes", "EUR",
    )  # fmt: skip
    assert (fee["expected"], fee["settled"], fee["fee_expected"], fee["fee_charged"]) == (
        "20.00", "20.00", "0.40", "0.99",
    )  # fmt: skip
    assert by_id[line]["expected"] == "" and by_id[line]["settled"] == "7.77"
    assert "matches no Kassa payment" in by_id[line]["reason"]


def test_exception_queue_filters_and_exports(
    manager: FlaskClient, day: dict[str, str], db: Database
) -> None:
    run_day(manager)

    def listed(query: str) -> set[str]:
        page = manager.get(f"/portal/settlement/exceptions{query}").get_data(as_text=True)
        return set(re.findall(r'data-subject-id="([^"]+)"', page))

    line = unknown_line(db)
    assert listed("") == {day["fee"], "2", day["missing"], line}
    assert listed("?outcome=paid_not_settled") == {day["missing"]}
    assert listed("?outcome=settled_unknown&from=2025-03-10&to=2025-03-10") == {line}
    assert listed("?from=2025-03-11") == set() and listed("?currency=usd") == set()
    assert listed("?currency=EUR") == {day["fee"], "2", day["missing"], line}
    bad = manager.get("/portal/settlement/exceptions?outcome=matched").get_data(as_text=True)
    assert "“matched” is not an exception outcome." in bad
    response = manager.get("/portal/settlement/exceptions.csv?outcome=paid_not_settled")
    assert (
        response.mimetype == "text/csv" and "attachment" in response.headers["Content-Disposition"]
    )
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [(r["subject_id"], r["expected"], r["currency"]) for r in rows] == [
        (day["missing"], "5.00", "EUR")
    ]


def test_write_off_holds_across_runs_and_reopen_restores_the_exception(
    manager: FlaskClient, day: dict[str, str], db: Database
) -> None:
    run_day(manager)
    path = f"/portal/settlement/results/payment/{day['missing']}"
    detail = manager.get(path).get_data(as_text=True)
    assert "payment of 5.00 EUR on 2025-03-10 has no bank line" in detail
    assert "No bank line is linked." in detail and "€5.00" in detail

    response = decide(manager, path, action="write_off", note="customer paid cash instead")
    assert response.status_code == 303 and response.headers["Location"] == path
    page = manager.get(path).get_data(as_text=True)
    assert 'data-outcome="written_off"' in page and "customer paid cash instead" in page
    assert "staff:" in page and 'data-state="active"' in page
    run_day(manager)
    assert outcomes(manager)[("payment", day["missing"])] == "written_off"

    decision = re.search(r"/reopen/(\d+)", page)
    assert decision
    token = form_token(page)
    response = manager.post(f"{path}/reopen/{decision.group(1)}", data={"csrf_token": token})
    assert response.status_code == 303
    page = manager.get(path).get_data(as_text=True)
    assert 'data-outcome="paid_not_settled"' in page and 'data-state="revoked"' in page
    with db.unit_of_work(readonly=True) as uow:
        kept = uow.session.scalars(select(ReconDecision)).one()
        assert kept.revoked_by and kept.note == "customer paid cash instead"


def test_a_line_is_linked_by_hand_to_a_payment(
    manager: FlaskClient, day: dict[str, str], db: Database
) -> None:
    run_day(manager)
    line = unknown_line(db)
    path = f"/portal/settlement/results/line/{line}"
    page = manager.get(path).get_data(as_text=True)
    assert "NOT-OURS-1" in page and "stl-20250310.camt053.xml" in page
    response = decide(manager, path, action="link", other=day["missing"], note="bank typo")
    assert response.status_code == 303
    assert outcomes(manager)[("line", line)] != "settled_unknown"
    assert outcomes(manager)[("payment", day["missing"])] != "paid_not_settled"


def test_a_decision_needs_a_note_and_known_ids(
    manager: FlaskClient, day: dict[str, str], db: Database
) -> None:
    run_day(manager)
    path = f"/portal/settlement/results/payment/{day['missing']}"
    response = decide(manager, path, action="write_off", note="  ")
    assert response.status_code == 422
    assert "say why in a note" in response.get_data(as_text=True)
    response = decide(manager, path, action="link", other="99999", note="x")
    assert response.status_code == 422 and "no bank line 99999" in response.get_data(as_text=True)
    response = manager.post(f"{path}/decide", data={"action": "write_off", "note": "no token"})
    assert response.status_code == 400
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count(ReconDecision.id))) == 0
    assert outcomes(manager)[("payment", day["missing"])] == "paid_not_settled"


def test_other_merchants_and_cashiers_see_none_of_it(
    app: Any, manager: FlaskClient, demo: Any, day: dict[str, str], db: Database
) -> None:
    run_day(manager)
    other = second_merchant(db)
    client = app.test_client()
    log_in(client, other["manager"], other["password"])
    calendar = client.get("/portal/settlement?month=2025-03").get_data(as_text=True)
    assert 'data-day="2025-03-10" data-status="not-run"' in calendar
    assert outcomes(client) == {}
    assert "No open exceptions" in client.get("/portal/settlement/exceptions").get_data(
        as_text=True
    )
    assert client.get(f"/portal/settlement/results/payment/{day['missing']}").status_code == 404
    assert client.get(f"/portal/settlement/{DAY}.csv").get_data(as_text=True).count("\n") == 1
    path = f"/portal/settlement/results/payment/{day['missing']}"
    token = form_token(calendar)
    response = client.post(
        f"{path}/decide", data={"csrf_token": token, "action": "write_off", "note": "mine"}
    )
    assert response.status_code == 404  # not theirs: nothing stored
    with db.unit_of_work(readonly=True) as uow:
        assert uow.session.scalar(select(func.count(ReconDecision.id))) == 0

    cashier = app.test_client()
    log_in(cashier, *staff(demo, "cashier"))
    for url in ("/portal/settlement", f"/portal/settlement/{DAY}", "/portal/settlement/exceptions"):
        assert cashier.get(url).status_code == 403
    assert cashier.post(f"/portal/settlement/{DAY}/run").status_code in (400, 403)


def test_a_flawed_statement_is_shown_per_file_and_per_statement_and_flags_its_day(
    db: Database, manager: FlaskClient
) -> None:
    corpus = Path(__file__).resolve().parents[1] / "fixtures" / "settlement" / "corpus"
    with db.unit_of_work() as uow:
        summary = import_settlement_file(
            uow, corpus / "kassa_balance_and_summary.xml", load_config(env={}).settlement
        )
    flawed_day = date(2026, 11, 25)
    assert run_day(manager, flawed_day).status_code == 303
    calendar = manager.get(f"/portal/settlement?month={flawed_day:%Y-%m}").get_data(as_text=True)
    assert 'data-flawed="1"' in calendar and "Statement flawed: check" in calendar
    page = manager.get(f"/portal/settlement/{flawed_day}").get_data(as_text=True)
    assert 'id="flawed-statements"' in page and "BALANCE-EUR" in page
    assert page.count('data-code="summary-differs"') == 3
    assert "217.50 EUR" in page and "227.50 EUR" in page and "(line 15)" in page
    quiet = manager.get(f"/portal/settlement/{flawed_day.replace(day=24)}").get_data(as_text=True)
    assert 'id="flawed-statements"' not in quiet
    files = manager.get("/portal/settlement/files").get_data(as_text=True)
    assert f'data-file="{summary.file_id}"' in files and "kassa_balance_and_summary.xml" in files
    one = manager.get(f"/portal/settlement/files/{summary.file_id}")
    assert one.status_code == 200
    text = one.get_data(as_text=True)
    assert 'id="file-flaws"' in text and 'data-warnings="4"' in text
    assert 'data-code="balance-differs"' in text
    assert manager.get("/portal/settlement/files/999").status_code == 404


def test_calendar_lists_this_months_days_newest_first_and_none_to_come(
    manager: FlaskClient,
) -> None:
    before = datetime.now(UTC).date()
    page = manager.get(f"/portal/settlement?month={before:%Y-%m}").get_data(as_text=True)
    after = datetime.now(UTC).date()  # the request may cross midnight on a slow machine
    shown = [date.fromisoformat(d) for d in re.findall(r'<tr data-day="([\d-]+)"', page)]
    assert shown[0] in (before, after) and all(day <= after for day in shown)
    assert shown == sorted(shown, reverse=True)  # newest first
    assert shown[-1] == shown[0].replace(day=1)  # every day of the month so far
    assert len(shown) == shown[0].day
    following = (before.replace(day=28) + timedelta(days=5)).strftime("%Y-%m")
    ahead = manager.get(f"/portal/settlement?month={following}").get_data(as_text=True)
    assert "data-day=" not in ahead and "This month has not begun yet." in ahead
