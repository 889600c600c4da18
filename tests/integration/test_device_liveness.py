"""Liveness that probes: idle devices are asked whether they are there, so the portal shows a
dead one disconnected within seconds and a healthy idle one connected, and a device that comes
back is used again by itself. Real drivers against the simulators; SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from drivers.simulators.pn532 import Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator, ZvtTcpSimulator
from gateway.adapters.db import Database
from gateway.adapters.models import DeviceStatus
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from tests.card_helpers import KEY, first_till, until
from tests.integration.test_portal_pages import log_in, staff


def _state(db: Database, kind: str = "card_terminal") -> str | None:
    with db.unit_of_work(readonly=True) as uow:
        row = uow.session.scalars(select(DeviceStatus).where(DeviceStatus.kind == kind)).first()
        return row.state if row else None


def _host(db: Database, devices: TillDevices) -> DeviceHost:
    return DeviceHost(db, [devices], token_key=KEY, heartbeat_seconds=0.5, probe_seconds=0.5)


def test_a_healthy_idle_terminal_is_connected_before_any_job(
    app: Any, db: Database, demo: Any
) -> None:
    till = first_till(db, demo)
    with ZvtTcpSimulator() as terminal:
        host = _host(
            db,
            TillDevices(till.till_id, till.label, terminal_url=terminal.port, terminal_link="tcp"),
        )
        try:
            until(lambda: _state(db) == "connected", host)
            assert terminal.received[-1].control == (0x05, 0x01)  # asked by Status Enquiry
        finally:
            host.close_devices(host.tills[0])
    manager = app.test_client()
    log_in(manager, *staff(demo, "manager"))
    assert 'data-device-state="connected"' in manager.get("/portal/devices").get_data(as_text=True)


def test_a_dead_terminal_shows_disconnected_and_comes_back_by_itself(
    db: Database, demo: Any
) -> None:
    till = first_till(db, demo)
    first = ZvtTcpSimulator().start()
    port = first.address[1]
    host = _host(
        db, TillDevices(till.till_id, till.label, terminal_url=first.port, terminal_link="tcp")
    )
    try:
        until(lambda: _state(db) == "connected", host)
        first.stop()  # the terminal is switched off
        until(lambda: _state(db) == "disconnected", host)
        with ZvtTcpSimulator(listen_port=port):  # and on again
            until(lambda: _state(db) == "connected", host)
    finally:
        host.close_devices(host.tills[0])
        first.stop()


def test_an_unplugged_serial_terminal_and_reader_show_disconnected(db: Database, demo: Any) -> None:
    till = first_till(db, demo)
    with ZvtSimulator(baudrate=115200) as terminal, Pn532Simulator(baudrate=115200) as reader:
        devices = TillDevices(
            till.till_id,
            till.label,
            terminal_url=terminal.port,
            terminal_baudrate=115200,
            reader_url=reader.port,
        )
        host = _host(db, devices)
        try:
            until(lambda: _state(db) == _state(db, "nfc_reader") == "connected", host)
            terminal.unplug()
            reader.unplug()
            until(lambda: _state(db) == _state(db, "nfc_reader") == "disconnected", host)
        finally:
            host.close_devices(devices)
