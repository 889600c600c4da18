"""The device host with its terminal and reader behind RFC 2217 serial servers (pyserial's own
PortManager in front of the simulators' ptys), on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from drivers.simulators.pn532 import NTAG215, Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import CustomerTap, DeviceStatus
from tests.card_helpers import card_payment, close, first_till, host_for, read_payment, until
from tests.rfc2217_server import Rfc2217Server


def test_card_payment_and_tap_through_rfc2217(db: Database, demo: Any) -> None:
    till = first_till(db, demo)
    with (
        ZvtSimulator(baudrate=115200) as terminal,
        Pn532Simulator(baudrate=115200) as reader,
        Rfc2217Server(terminal.port) as terminal_server,
        Rfc2217Server(reader.port) as reader_server,
    ):
        host = host_for(db, till, terminal_server.url, reader_url=reader_server.url, timezone="UTC")
        try:
            payment_id = card_payment(db, till, "12.34")
            until(lambda: read_payment(db, payment_id).status == "authorised", host)
            reader.present(NTAG215)  # type: ignore[attr-defined]

            def tapped() -> bool:
                """the tap came through the RFC 2217 server"""
                with db.unit_of_work(readonly=True) as uow:
                    return uow.session.scalars(select(CustomerTap)).first() is not None

            until(tapped, host)
        finally:
            close(host)
    assert [(b.kind, b.amount_minor) for b in terminal.journal] == [("authorisation", 1234)]


def test_an_rfc2217_server_that_is_gone_is_a_disconnected_reader(db: Database, demo: Any) -> None:
    till = first_till(db, demo)
    host = host_for(db, till, "", reader_url="rfc2217://127.0.0.1:9")
    try:
        host.step()  # the reader poll fails with a driver error, not an exception that escapes
        host.heartbeat()
    finally:
        close(host)
    with db.unit_of_work(readonly=True) as uow:
        status = uow.session.scalars(select(DeviceStatus)).one()
        assert (status.kind, status.state) == ("nfc_reader", "disconnected")
        assert status.last_error and "cannot open rfc2217://127.0.0.1:9" in status.last_error
