"""A card payment the terminal declined says why in the cashier's language: the ZVT simulator
declines with a result code, the device host stores the driver's English sentence, and a
Chinese (zh_CN) or German cashier reads it translated on the payment page, in its status JSON
and in the live event stream; a reversal the terminal refused says why on the refund pages.
On SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask.testing import FlaskClient

from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt.codes import result_message
from gateway.adapters.db import Database
from gateway.entrypoints.device_host import DeviceHost
from gateway.services.payments import refunds
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until
from tests.integration.test_cashier_pages import at_till
from tests.integration.test_portal_pages import log_in, staff

INSUFFICIENT_FUNDS = 51  # a host code (01–63 hex): the acquirer's ISO 8583 "insufficient funds"


@pytest.fixture
def terminal() -> Iterator[ZvtSimulator]:
    with ZvtSimulator(baudrate=115200) as simulator:
        simulator.clock_zone = "Europe/Berlin"  # the demo store's clock
        yield simulator  # type: ignore[misc]


@pytest.fixture
def host(db: Database, demo: Any, terminal: ZvtSimulator) -> Iterator[DeviceHost]:
    device_host = host_for(db, first_till(db, demo), terminal.port)
    yield device_host
    close(device_host)


def speaking(client: FlaskClient, accept_language: str) -> FlaskClient:
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = accept_language
    return client


def declined(db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator, code: int) -> str:
    terminal.decline_next = code
    payment_id = card_payment(db, first_till(db, demo))
    until(lambda: read_payment(db, payment_id).status == "failed", host)
    return payment_id


def test_a_declined_card_payment_says_why_in_chinese(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = declined(db, demo, host, terminal, INSUFFICIENT_FUNDS)
    stored = read_payment(db, payment_id).display_text
    assert stored == result_message(INSUFFICIENT_FUNDS)  # English, as the driver says it
    assert stored == "declined by the card issuer or network (host code 51: insufficient funds)"
    chinese = "被发卡机构或卡组织拒绝（主机代码 51：余额不足）"

    client = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    at_till(client, demo)
    status = client.get(f"/cashier/payments/{payment_id}/status").json
    assert status["screen"] == "failed"
    assert status["display_text"] == chinese
    page = client.get(f"/cashier/payments/{payment_id}").get_data(as_text=True)
    assert f"<p data-outcome-message>{chinese}</p>" in page
    assert "insufficient funds" not in page
    stream = client.get(f"/cashier/payments/{payment_id}/events").get_data(as_text=True)
    events = [json.loads(line[6:]) for line in stream.splitlines() if line.startswith("data: ")]
    assert [e["display_text"] for e in events] == [chinese]  # settled: one event, then it ends


def test_an_aborted_card_payment_says_why_in_german(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id = declined(db, demo, host, terminal, 0x78)  # chapter 10: "card expired"
    assert read_payment(db, payment_id).display_text == "card expired"
    client = speaking(app.test_client(), "de-DE,de;q=0.9")
    at_till(client, demo)
    assert client.get(f"/cashier/payments/{payment_id}/status").json["display_text"] == (
        "Karte abgelaufen"
    )
    english = speaking(app.test_client(), "en")
    at_till(english, demo)
    assert english.get(f"/cashier/payments/{payment_id}/status").json["display_text"] == (
        "card expired"
    )


def refused_reversal(
    db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> tuple[str, str]:
    """(payment, refund): a refund of an authorised card payment (its reversal) that the
    terminal refused, once it failed: the receipt was reversed at the terminal itself (B4)."""
    till = first_till(db, demo)
    payment_id = card_payment(db, till, "10.00")
    until(lambda: read_payment(db, payment_id).status == "authorised", host)
    terminal._reversed.add(terminal.journal[0].receipt_number)
    with db.unit_of_work() as uow:
        refund = refunds.request_refund(
            uow, payment_id, till.merchant_id, amount=None, reason=None, actor="staff:cashier"
        )
        uow.commit()
        refund_id = refund.id

    def failed() -> bool:
        """the refund failed"""
        with db.unit_of_work(readonly=True) as uow:
            return [r.status for r in refunds.list_refunds(uow, payment_id)] == ["failed"]

    until(failed, host)
    return payment_id, refund_id


def test_a_reversal_the_terminal_refused_says_why_in_chinese(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    payment_id, refund_id = refused_reversal(db, demo, host, terminal)
    with db.unit_of_work(readonly=True) as uow:
        assert [r.failure for r in refunds.list_refunds(uow, payment_id)] == ["already reversed"]

    client = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    at_till(client, demo)
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    row = re.search(r"<td data-refund-status-text>([^<]*)</td>", page)
    assert row and row.group(1) == "失败: 已冲正", page  # "failed: already reversed"
    status = client.get(f"/cashier/payments/{payment_id}/status").json
    assert status["refunds"] == [{"id": refund_id, "status": "failed", "failure": "已冲正"}]

    manager = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    assert log_in(manager, *staff(demo, "manager")).status_code == 303
    detail = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    rows = detail[detail.index('id="refunds"') :]
    rows = rows[: rows.index("</table>")]
    assert "已冲正" in rows and "already reversed" not in rows


def test_the_attention_of_a_refused_reversal_reads_in_chinese(
    app: Any, db: Database, demo: Any, host: DeviceHost, terminal: ZvtSimulator
) -> None:
    """Kassa's own sentence (gateway.domain.sentences) with the terminal's inside it."""
    payment_id, _ = refused_reversal(db, demo, host, terminal)  # flagged as the refund failed
    assert read_payment(db, payment_id).attention == (
        "the terminal refused the reversal: already reversed"  # stored in English
    )
    chinese = "终端拒绝了撤销：已冲正"

    client = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    at_till(client, demo)
    page = client.get(f"/cashier/payments/{payment_id}/refund").get_data(as_text=True)
    assert f'<p class="alert" role="alert" data-attention>{chinese}</p>' in page
    manager = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    assert log_in(manager, *staff(demo, "manager")).status_code == 303
    detail = manager.get(f"/portal/payments/{payment_id}").get_data(as_text=True)
    assert chinese in detail and "refused the reversal" not in detail


def test_a_terminal_that_does_not_answer_says_so_in_chinese(
    app: Any, db: Database, demo: Any, tmp_path: Any
) -> None:
    """No terminal at the till's port: nothing charged, the sentence fits the screen and reads
    in the cashier's language; what went wrong stays in the payment's history."""
    till = first_till(db, demo)
    device_host = host_for(db, till, str(tmp_path / "no-terminal-here"))
    try:
        payment_id = card_payment(db, till)
        until(lambda: read_payment(db, payment_id).status == "failed", device_host)
    finally:
        close(device_host)
    payment = read_payment(db, payment_id)
    assert payment.display_text == (
        "Not charged: the terminal did not answer. Check that it is on and connected, then "
        "start the payment again."
    )
    assert "no-terminal-here" in (payment.card or {}).get("error", "")

    client = speaking(app.test_client(), "zh-CN,zh;q=0.9")
    at_till(client, demo)
    assert client.get(f"/cashier/payments/{payment_id}/status").json["display_text"] == (
        "未扣款：终端没有应答。请检查终端是否已开机并连接，然后重新发起付款。"
    )
