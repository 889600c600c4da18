"""``pn532 decode`` and ``simulate pn532`` from the command line.

Vectors: UM0701-02 (NXP PN532 User Manual Rev. 02) §6.2.1.3–5 and §7.2.2; nfcpy
(github.com/nfcpy/nfcpy) ``tests/base_clf_pn53x.py``; nfc-experiments
(github.com/AndreMiras/nfc-experiments) ``README.md``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from drivers.pn532 import NfcReader
from drivers.pn532.cli import pn532
from drivers.transport import Transport

ROOT = Path(__file__).resolve().parents[2]


def decode(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = CliRunner().invoke(pn532, ["decode", *args])
    body = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, body, result.stderr


@pytest.mark.parametrize(
    ("hex_text", "kind"),
    [
        ("0000FF00FF00", "ack"),  # UM0701-02 §6.2.1.3
        ("00 00 FF FF 00 00", "nack"),  # UM0701-02 §6.2.1.4
        ("00 00 FF 01 FF 7F 81 00", "error"),  # UM0701-02 §6.2.1.5
    ],
)
def test_decode_sync_frames(hex_text: str, kind: str) -> None:
    code, body, _ = decode(hex_text)
    assert code == 0 and body is not None and body["kind"] == kind


def test_decode_firmware_response() -> None:
    # UM0701-02 §7.2.2: D5 03 32 01 06 07, framed per §6.2.1.1; spread over several arguments
    code, body, _ = decode("00 00 FF 06 FA", "D5 03 32 01 06 07 E8 00")
    assert code == 0
    assert body == {
        "kind": "info",
        "tfi": "D5",
        "command": 3,
        "name": "GetFirmwareVersion",
        "data": "32010607",
        "length": 6,
        "firmware": {"ic": 0x32, "ver": 1, "rev": 6, "support": 7},
    }


def test_decode_command_frame() -> None:
    # nfcpy tests/test_clf_pn532.py TestDevice.test_sense_tta_target_is_tt2: CMD('4A 0100')
    code, body, _ = decode("0000FF04FCD44A0100E100")
    assert code == 0 and body is not None
    assert (body["tfi"], body["command"], body["name"]) == ("D4", 0x4A, "InListPassiveTarget")
    assert (body["max_tg"], body["brty"]) == (1, 0)


def test_decode_list_passive_target_response() -> None:
    # nfc-experiments README.md: D5 4B 01 01 00 04 08 04 92 4C 52 27, framed per §6.2.1.1
    code, body, _ = decode("00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 92 4C 52 27 77 00")
    assert code == 0 and body is not None
    assert body["name"] == "InListPassiveTarget"
    assert body["targets"] == [
        {"tg": 1, "sens_res": "0004", "sel_res": 8, "uid": "924C5227", "ats": "",
         "kind": "mifare_classic"}
    ]  # fmt: skip


def test_decode_data_exchange_status_error() -> None:
    code, body, _ = decode("00 00 FF 03 FD D5 41 01 E9 00")
    assert code == 0 and body is not None
    assert body["status"] == 1
    assert body["error"] == "PN532 error 0x01: Time out, the target has not answered."


@pytest.mark.parametrize(
    ("hex_text", "message"),
    [
        ("0000ff 04fb d5 01 343536 8b 00", "bad LCS"),  # nfcpy ..._length_check_error
        ("0000ff 05fb d5 01 343536 8a 00", "bad DCS"),  # nfcpy ..._rsp_data_check_error
        ("0000ff 05fb d5 01 34", "truncated"),
        ("00 00 FF zz", "not hexadecimal"),
    ],
)
def test_decode_bad_bytes_exit_2_with_one_line(hex_text: str, message: str) -> None:
    code, _, stderr = decode(hex_text)
    assert code == 2
    assert stderr.startswith("kassa: ") and message in stderr
    assert stderr.count("\n") == 1


def test_simulate_prints_the_port_and_serves_until_ctrl_c() -> None:
    script = "from drivers.pn532.cli import pn532_simulate_command as c; c()"
    process = subprocess.Popen(
        [sys.executable, "-c", script, "--tag", "payment"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        with Transport(port, baudrate=115200) as transport:
            reader = NfcReader(transport)
            assert reader.begin().ic == 0x32
            event = reader.poll(timeout=60)  # the tag is there: returns once it is read
        assert event is not None and event.applications[1] == ("A0000003591010028001", "GIROCARD")
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()
