"""The support log: the device host's real drivers against the simulators on ptys, every byte
logged with its decoded message, card data masked, files capped; ``kassa devices log`` and
the portal show it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from drivers.device_log import DeviceLog, read_entries
from drivers.simulators.pn532 import NTAG215, Pn532Simulator
from drivers.simulators.zvt import ZvtSimulator
from drivers.zvt import framing
from drivers.zvt.apdu import Apdu, encode_bmp
from gateway.adapters.db import Database
from gateway.entrypoints.device_host import DeviceHost, TillDevices
from gateway.services.payments import payment_reads
from gateway.services.staff.auth import authenticate_till
from tests.integration.test_device_host import KEY, _card_payment, _till, _until

ROOT = Path(__file__).resolve().parents[2]
KASSA = [sys.executable, "-m", "gateway.entrypoints.cli"]
FULL_PAN = "4111111111111111"  # the scheme's published test number, Luhn-valid


def _host(db: Database, demo: Any, tmp_path: Path, **devices: Any) -> DeviceHost:
    till = _till(db, demo)
    return DeviceHost(
        db,
        [TillDevices(till.till_id, till.label, store="Berlin Mitte", **devices)],
        token_key=KEY,
        heartbeat_seconds=60,
        log_dir=tmp_path / "device-logs",
    )


def _log_text(tmp_path: Path) -> str:
    return "".join(p.read_text() for p in (tmp_path / "device-logs").rglob("*.log*"))


def test_a_card_payment_is_logged_both_ways_with_the_card_number_masked(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    with ZvtSimulator(baudrate=115200) as terminal:
        terminal.card_number = bytes.fromhex(FULL_PAN)  # type: ignore[attr-defined]
        host = _host(db, demo, tmp_path, terminal_url=terminal.port, terminal_baudrate=115200)
        payment_id = _card_payment(db, _till(db, demo))

        def authorised() -> bool:
            """the payment is authorised"""
            with db.unit_of_work(readonly=True) as uow:
                till = _till(db, demo)
                return (
                    payment_reads.get_payment(uow, payment_id, till.merchant_id).status
                    == "authorised"
                )

        _until(authorised, host, seconds=20)
        host._close(host.tills[0])
    folder = tmp_path / "device-logs" / "Berlin_Mitte" / host.tills[0].label
    entries = read_entries(folder, 0)
    whats = [(e["dir"], e["what"]) for e in entries]
    assert ("out", "Authorisation") in whats
    assert ("in", "Intermediate Status-Information") in whats
    assert ("in", "Status-Information") in whats and ("in", "Completion") in whats
    assert ("in", "ACK") in whats and ("out", "ACK") in whats
    texts = [e["fields"]["status_text"] for e in entries if "status_text" in e.get("fields", {})]
    assert "Insert card" in texts and "Please watch PIN-Pad" in texts
    status = next(e for e in entries if e["what"] == "Status-Information")
    assert status["fields"]["masked_pan"] == "411111******1111"
    assert "**" in status["hex"]
    assert status["hex"].startswith("10 02 04 0F")
    written = _log_text(tmp_path)
    assert FULL_PAN not in written and "41 11 11 11 11 11 11 11" not in written
    assert all(e["t"] <= time.time() for e in entries)
    assert entries == sorted(entries, key=lambda e: e["t"])


def test_kassa_devices_log_prints_the_tills_log(db: Database, demo: Any, tmp_path: Path) -> None:
    with Pn532Simulator(baudrate=115200) as reader:
        host = _host(db, demo, tmp_path, reader_url=reader.port)
        reader.present(NTAG215)  # type: ignore[attr-defined]
        _until(lambda: _listed(tmp_path), host)
        host._close(host.tills[0])
    env = {**os.environ, "KASSA_DEVICES_LOG_DIR": str(tmp_path / "device-logs")}
    done = subprocess.run(
        [*KASSA, "devices", "log", "--till", f"Berlin Mitte/{host.tills[0].label}"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any("nfc_reader → " in line and "InListPassiveTarget" in line for line in lines)
    assert any("nfc_reader ← " in line and NTAG215.uid.hex().upper()[:2] in line for line in lines)
    bad = subprocess.run(
        [*KASSA, "devices", "log", "--till", "T01"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert bad.returncode == 2 and "STORE/TILL" in bad.stderr


def _listed(tmp_path: Path) -> bool:
    text = _log_text(tmp_path)
    return "InListPassiveTarget" in text and '"dir": "in"' in text


def test_chunks_become_messages_and_files_stay_under_the_cap(tmp_path: Path) -> None:
    clock = iter(range(1_000_000)).__next__
    log = DeviceLog(
        tmp_path / "t.log", "zvt-serial", max_bytes=4096, backups=2, clock=lambda: float(clock())
    )
    status = Apdu(0x04, 0x0F, encode_bmp(0x27, b"\x00") + encode_bmp(0x22, bytes.fromhex(FULL_PAN)))
    frame = framing.frame(status.encode())
    for _ in range(200):
        for byte in frame:  # one byte per read, as a slow line delivers it
            log("in", bytes([byte]))
        log("out", b"\x06")
    log.flush()
    files = sorted(tmp_path.glob("t.log*"))
    assert [p.name for p in files] == ["t.log", "t.log.1", "t.log.2"]
    assert all(p.stat().st_size <= 4096 for p in files)
    entries = read_entries(tmp_path, 0)
    assert {e["what"] for e in entries} == {"Status-Information", "ACK"}
    assert entries[-1]["t"] > 300  # the newest survive rotation
    assert FULL_PAN not in "".join(p.read_text() for p in files)


def test_bytes_that_never_complete_a_message_are_kept(tmp_path: Path) -> None:
    log = DeviceLog(tmp_path / "t.log", "zvt-tcp")
    log("in", bytes.fromhex("04 0F 05 27"))  # the line dropped mid-APDU
    log("out", bytes.fromhex("80 00 00"))
    log.flush()
    first, second = (json.loads(line) for line in (tmp_path / "t.log").read_text().splitlines())
    assert (first["dir"], first["what"], first["hex"]) == ("in", "incomplete", "04 0F 05 27")
    assert (second["what"], second["fields"]) == ("Positive Acknowledgement", {"positive": True})


def test_the_portal_devices_page_shows_the_last_minutes(
    db: Database, demo: Any, tmp_path: Path
) -> None:
    from gateway.entrypoints.app import create_app
    from tests.conftest import app_config
    from tests.integration.test_portal_pages import log_in, staff

    with db.unit_of_work(readonly=True) as uow:
        till = authenticate_till(uow, f"Bearer {demo['tills'][0]['api_key']}")
    folder = tmp_path / "device-logs" / "Berlin_Mitte" / till.label
    log = DeviceLog(folder / "card_terminal.log", "zvt-tcp")
    log("out", bytes.fromhex("06 01 0A 04 00 00 00 00 10 00 49 09 78"))
    log("in", bytes.fromhex("80 00 00"))
    DeviceHost(  # a heartbeat, so the page lists the till's terminal
        db,
        [TillDevices(till.till_id, till.label, terminal_url="socket://127.0.0.1:9")],
        token_key=KEY,
    ).heartbeat()
    app = create_app(app_config(db, devices={"log_dir": str(tmp_path / "device-logs")}), db=db)
    client = app.test_client()
    log_in(client, *staff(demo, "manager"))
    page = client.get("/portal/devices").get_data(as_text=True)
    assert "06 01 0A 04 00 00 00 00 10 00 49 09 78" in page
    assert "Authorisation" in page and "Positive Acknowledgement" in page
