"""The settlement run: fees, sums, idempotency, and the camt.053 / camt.054 / CSV files."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

import defusedxml.ElementTree as SafeET
import pytest
import requests
from click.testing import CliRunner
from flask import Flask
from flask.testing import FlaskClient

from sandbox_bank import camt, secrets, state
from sandbox_bank.cli import sandbox_bank_cli
from sandbox_bank.delivery import deliver_due
from sandbox_bank.settlement import SettlementBatch, SettlementLine, fee_minor, to_csv
from tests.sandbox_bank.helpers import DEMO, Receiver, pay, sandbox_config

NS053 = {"c": camt.CAMT053}
NS054 = {"c": camt.CAMT054}


@pytest.fixture
def today() -> date:
    """The bank's day, read when the test runs (not at collection: a suite may cross midnight)."""
    return datetime.now(UTC).date()


@pytest.mark.parametrize(
    ("amount", "bp", "fixed", "fee"),
    [
        (1234, 150, 10, 29),  # 18.51 → 19, + 10
        (1100, 150, 10, 27),  # 16.50 → 17 (half rounds up), + 10
        (1033, 150, 10, 25),  # 15.495 → 15, + 10
        (1, 150, 0, 0),  # 0.015 → 0
        (34, 150, 0, 1),  # 0.51 → 1
        (0, 150, 10, 10),
        (100_000, 0, 25, 25),
    ],
)
def test_fee_is_basis_points_rounded_half_up_plus_fixed(
    amount: int, bp: int, fixed: int, fee: int
) -> None:
    assert fee_minor(amount, bp, fixed) == fee


@pytest.fixture
def settled(app: Flask, client: FlaskClient, auth: dict[str, str], today: date) -> dict[str, Any]:
    """Three payments and one refund today, settled: the hand-computed example."""
    pay(client, "K-1", "12.34", bill_number="B-1")
    pay(client, "K-2", "11.00")
    pay(client, "K-3", "10.33")
    body = {"refund_id": "R-1", "payment_reference": "K-2", "amount": "2.00", "currency": "EUR"}
    client.post("/v1/refunds", headers=auth | {"Idempotency-Key": "r1"}, json=body)
    deliver_due(app)  # finishes the refund
    answer = client.post("/v1/settlements", headers=auth, json={"date": today.isoformat()})
    assert answer.status_code == 201
    return answer.json  # type: ignore[no-any-return]


def test_settlement_sums_and_fees(settled: dict[str, Any], today: date) -> None:
    # gross 12.34 + 11.00 + 10.33 = 33.67; fees 0.29 + 0.27 + 0.25 = 0.81; refund 2.00
    assert settled["gross"] == "33.67"
    assert settled["fees"] == "0.81"
    assert settled["refunds"] == "2.00"
    assert settled["net"] == "30.86"
    assert settled["payment_count"] == 3 and settled["currency"] == "EUR"
    assert settled["date"] == today.isoformat()


def test_settling_again_returns_the_same_run(
    client: FlaskClient, auth: dict[str, str], settled: dict[str, Any], today: date
) -> None:
    again = client.post("/v1/settlements", headers=auth, json={"date": today.isoformat()})
    assert again.status_code == 200 and again.json == settled
    assert client.get(f"/v1/settlements/{today}", headers=auth).json == settled
    assert client.get("/v1/settlements/2001-01-01", headers=auth).status_code == 404
    bad = client.post("/v1/settlements", headers=auth, json={"date": "25.11.2026"})
    assert bad.status_code == 422


def test_nothing_is_settled_twice_and_balances_chain(
    client: FlaskClient, auth: dict[str, str], settled: dict[str, Any], today: date
) -> None:
    pay(client, "K-4", "5.00")
    tomorrow = (today + timedelta(days=1)).isoformat()
    nxt = client.post("/v1/settlements", headers=auth, json={"date": tomorrow}).json
    assert (
        nxt["payment_count"] == 1 and nxt["gross"] == "5.00" and nxt["net"] == "4.82"
    )  # fee 7.5 → 8, + 10
    statement = _xml(client.get(f"/v1/settlements/{tomorrow}/camt053.xml", headers=auth).data)
    assert _balance(statement, "OPBD") == Decimal("30.86")
    assert _balance(statement, "CLBD") == Decimal("35.68")


def _xml(data: bytes) -> Element:
    root: Element = SafeET.fromstring(data)
    return root


def _amount(element: Element | None) -> Decimal:
    assert element is not None and element.text is not None
    return Decimal(element.text)


def _signed(parent: Element, ns: dict[str, str]) -> Decimal:
    value = _amount(parent.find("c:Amt", ns))
    return -value if parent.findtext("c:CdtDbtInd", namespaces=ns) == "DBIT" else value


def _balance(statement: Element, code: str) -> Decimal:
    for balance in statement.iterfind("c:BkToCstmrStmt/c:Stmt/c:Bal", NS053):
        if balance.findtext("c:Tp/c:CdOrPrtry/c:Cd", namespaces=NS053) == code:
            return _signed(balance, NS053)
    raise AssertionError(f"no {code} balance")


def _check_entry(entry: Element, ns: dict[str, str], settled: dict[str, Any], today: date) -> None:
    assert _signed(entry, ns) == Decimal(settled["net"])
    assert entry.find("c:Amt", ns).get("Ccy") == "EUR"  # type: ignore[union-attr]
    assert entry.findtext("c:Sts/c:Cd", namespaces=ns) == "BOOK"
    assert entry.findtext("c:BookgDt/c:Dt", namespaces=ns) == today.isoformat()
    assert entry.findtext("c:ValDt/c:Dt", namespaces=ns) == today.isoformat()
    assert entry.findtext("c:AcctSvcrRef", namespaces=ns) == settled["settlement_id"]
    assert entry.findtext("c:BkTxCd/c:Domn/c:Cd", namespaces=ns) == "PMNT"
    fees = _amount(entry.find("c:Chrgs/c:TtlChrgsAndTaxAmt", ns))
    assert fees == Decimal(settled["fees"])
    assert entry.findtext("c:NtryDtls/c:Btch/c:NbOfTxs", namespaces=ns) == "4"
    transactions = entry.findall("c:NtryDtls/c:TxDtls", ns)
    assert sum(_signed(tx, ns) for tx in transactions) == Decimal(settled["net"])
    gross = [_amount(tx.find("c:AmtDtls/c:InstdAmt/c:Amt", ns)) for tx in transactions]
    charges = [_amount(tx.find("c:Chrgs/c:TtlChrgsAndTaxAmt", ns)) for tx in transactions[:3]]
    assert gross == [Decimal("12.34"), Decimal("11.00"), Decimal("10.33"), Decimal("2.00")]
    assert charges == [Decimal("0.29"), Decimal("0.27"), Decimal("0.25")]
    refs = [tx.findtext("c:Refs/c:EndToEndId", namespaces=ns) for tx in transactions]
    assert refs == ["K-1", "K-2", "K-3", "K-2"]
    assert transactions[3].findtext("c:CdtDbtInd", namespaces=ns) == "DBIT"
    assert transactions[3].findtext("c:Refs/c:InstrId", namespaces=ns) == "R-1"
    assert "B-1" in (transactions[0].findtext("c:RmtInf/c:Ustrd", namespaces=ns) or "")


def test_camt053_statement(
    client: FlaskClient, auth: dict[str, str], settled: dict[str, Any], today: date
) -> None:
    response = client.get(f"/v1/settlements/{today}/camt053.xml", headers=auth)
    assert response.mimetype == "application/xml"
    root = _xml(response.data)
    assert root.tag == f"{{{camt.CAMT053}}}Document"
    statement = root.find("c:BkToCstmrStmt/c:Stmt", NS053)
    assert statement is not None
    assert statement.findtext("c:Id", namespaces=NS053) == settled["settlement_id"]
    assert statement.findtext("c:Acct/c:Id/c:IBAN", namespaces=NS053) == "DE89370400440532013000"
    assert _balance(root, "OPBD") == 0 and _balance(root, "CLBD") == Decimal("30.86")
    [entry] = statement.findall("c:Ntry", NS053)
    _check_entry(entry, NS053, settled, today)
    payments = {p["reference"]: p for p in _payments(client, auth, ["K-1", "K-2", "K-3"])}
    refs = [
        tx.findtext("c:Refs/c:AcctSvcrRef", namespaces=NS053)
        for tx in entry.iterfind(".//c:TxDtls", NS053)
    ]
    assert refs[:3] == [payments[r]["bank_payment_id"] for r in ("K-1", "K-2", "K-3")]


def test_camt054_notification(
    client: FlaskClient, auth: dict[str, str], settled: dict[str, Any], today: date
) -> None:
    data = client.get(f"/v1/settlements/{today}/camt054.xml", headers=auth).data
    root = _xml(data)
    assert root.tag == f"{{{camt.CAMT054}}}Document"
    notification = root.find("c:BkToCstmrDbtCdtNtfctn/c:Ntfctn", NS054)
    assert notification is not None
    assert notification.find("c:Bal", NS054) is None
    [entry] = notification.findall("c:Ntry", NS054)
    _check_entry(entry, NS054, settled, today)


def test_acquirer_csv(
    client: FlaskClient, auth: dict[str, str], settled: dict[str, Any], today: date
) -> None:
    response = client.get(f"/v1/settlements/{today}.csv", headers=auth)
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.data.decode())))
    assert [(r["reference"], r["type"], r["gross"], r["fee"], r["net"]) for r in rows] == [
        ("K-1", "payment", "12.34", "0.29", "12.05"),
        ("K-2", "payment", "11.00", "0.27", "10.73"),
        ("K-3", "payment", "10.33", "0.25", "10.08"),
        ("K-2", "refund", "-2.00", "0.00", "-2.00"),
    ]
    assert {r["merchant_id"] for r in rows} == {DEMO} and {r["currency"] for r in rows} == {"EUR"}
    assert {r["date"] for r in rows} == {today.isoformat()}
    assert sum(Decimal(r["net"]) for r in rows) == Decimal(settled["net"])
    assert rows[3]["bank_refund_id"].startswith("rfd_") and rows[0]["bank_payment_id"].startswith(
        "pay_"
    )
    same = client.get(f"/v1/settlements/{today}/settlement.csv", headers=auth)
    assert same.data == response.data


def _payments(client: FlaskClient, auth: dict[str, str], refs: list[str]) -> list[dict[str, Any]]:
    return [client.get(f"/v1/payments/{ref}", headers=auth).json for ref in refs]


def test_settlement_created_callback_links_the_files(
    live: tuple[Flask, str], receiver: Receiver, today: date
) -> None:
    app, url = live
    client = app.test_client()
    pay(client, "K-1", "12.34")
    key = state.of(app).settings.merchant(DEMO).api_key  # type: ignore[union-attr]
    auth = {"Authorization": f"Bearer {key}"}
    created = requests.post(
        f"{url}/v1/settlements", headers=auth, json={"date": today.isoformat()}, timeout=10
    )
    assert created.status_code == 201
    deliver_due(app)
    [callback] = receiver.accepted("settlement.created")
    data = callback["body"]["data"]
    assert callback["verified"] and data["settlement_id"] == created.json()["settlement_id"]
    assert data["merchant_id"] == DEMO and data["net"] == "12.05" and data["payment_count"] == 1
    for name, link in data["files"].items():
        assert link.startswith(f"{url}/v1/settlements/{today}/")
        fetched = requests.get(link, headers=auth, timeout=10)
        assert fetched.status_code == 200, name
    assert requests.get(data["files"]["csv"], timeout=10).status_code == 401


def test_amounts_carry_the_currencys_decimals() -> None:
    line = SettlementLine(
        kind="payment",
        reference="J-1",
        bank_payment_id="pay_1",
        bank_refund_id=None,
        refund_id=None,
        booked_on=date(2026, 11, 25),
        amount_minor=1234,
        fee_minor=fee_minor(1234, 150, 0),
        currency="JPY",
        remittance="J-1",
    )
    batch = SettlementBatch(
        settlement_id="stl_1",
        merchant_id="M",
        merchant_name="Tokyo",
        iban="DE89370400440532013000",
        settlement_date=date(2026, 11, 25),
        currency="JPY",
        created_at=datetime(2026, 11, 25, 23, 0, tzinfo=UTC),
        opening_balance_minor=0,
        lines=(line,),
    )
    statement = camt.camt053(batch)
    assert '<Amt Ccy="JPY">1215</Amt>' in statement  # fee 18.51 → 19 yen, no decimals
    assert to_csv(batch).splitlines()[1].endswith(",payment,1234,19,1215,JPY,")


def test_cli_settles_a_day(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    section = sandbox_config(tmp_path, receiver.url)["sandbox_bank"]
    lines = [f"{k} = {_toml(v)}" for k, v in section.items() if k != "merchants"]
    for merchant in section["merchants"]:
        lines.append("[[sandbox_bank.merchants]]")
        lines += [f"{k} = {_toml(v)}" for k, v in merchant.items()]
    config = tmp_path / "kassa.toml"
    config.write_text("[sandbox_bank]\n" + "\n".join(lines) + "\n")
    monkeypatch.setenv("KASSA_CONFIG", str(config))
    receiver.secrets[DEMO] = secrets.load_or_create(section["secrets_file"])["webhook_secret"]
    runner = CliRunner()
    result = runner.invoke(
        sandbox_bank_cli, ["settle", "--date", "2026-01-02", "--merchant", DEMO, "--deliver"]
    )
    assert result.exit_code == 0, result.output
    assert "KASSA-DEMO-0001 2026-01-02 settled" in result.output
    assert receiver.accepted("settlement.created")[0]["body"]["data"]["date"] == "2026-01-02"
    again = runner.invoke(sandbox_bank_cli, ["settle", "--date", "2026-01-02", "--json"])
    assert again.exit_code == 0 and '"created": false' in again.output
    unknown = runner.invoke(sandbox_bank_cli, ["settle", "--merchant", "NOPE"])
    assert unknown.exit_code == 2 and "knows no merchant" in unknown.output


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
