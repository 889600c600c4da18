"""``zvt decode`` and ``simulate zvt`` from the command line.

Vectors: [PORTALUM] github.com/Portalum/Portalum.Zvt ``src/Portalum.Zvt.UnitTest/
StatusInformationParserTest.cs`` (Parse_PaymentGood1, Parse_AbortViaTimeout); [ECRTERM]
github.com/wirelane/ecrterm ``ecrterm/tests/test_parsing.py`` (test_version_completion, a
framed capture with its CRC).
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

from drivers.transport import Transport
from drivers.zvt import CardTerminal
from drivers.zvt.cli import zvt

ROOT = Path(__file__).resolve().parents[2]

PAYMENT_GOOD = (
    "04 0F 77 27 00 04 00 00 00 00 20 40 0B 00 04 70 0C 22 39 53 0D 10 06 0E 25 12 17 00 01 19 70"
    " 22 F0 F8 EE EE EE EE EE EE 47 71 29 28 00 48 69 2A 31 30 30 34 36 31 37 36 33 20 20 20 20"
    " 20 20 3B 36 31 31 38 30 34 00 00 3C F0 F1 F4 47 45 4E 2E 4E 52 2E 3A 36 31 31 38 30 34 49"
    " 09 78 87 04 70 88 00 04 70 8A 2E 8B F1 F7 44 65 62 69 74 20 4D 61 73 74 65 72 63 61 72 64 00"
)
FRAMED_COMPLETION = "10 02 06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00 10 03 B1 11"


def decode(*args: str) -> tuple[int, dict[str, object] | None, str]:
    result = CliRunner().invoke(zvt, ["decode", *args])
    body = json.loads(result.stdout) if result.exit_code == 0 else None
    return result.exit_code, body, result.stderr


def test_decode_status_information() -> None:
    code, body, _ = decode(PAYMENT_GOOD)
    assert code == 0 and body is not None
    assert body["class"] == "04" and body["instr"] == "0F"
    assert body["length"] == 0x77
    assert body["name"] == "Status-Information"
    assert body["result_code"] == 0
    assert body["amount_minor"] == 2040
    assert body["currency"] == "978"
    assert body["trace_number"] == 470
    assert body["receipt_number"] == 470
    assert body["terminal_id"] == "28004869"
    assert body["card_name"] == "Debit Mastercard"
    assert body["masked_pan"] == "************4771"
    assert body["additional_text"] == "GEN.NR.:611804"
    assert body["card_type"] == 0x2E  # and every other field


def test_decode_accepts_hex_without_spaces() -> None:
    code, body, _ = decode(PAYMENT_GOOD.replace(" ", "").lower())
    assert code == 0 and body is not None
    assert body["amount_minor"] == 2040


def test_a_capture_whose_length_byte_disagrees_is_refused() -> None:
    # [PORTALUM] Parse_AbortViaTimeout_Successful: the length byte says 44 (68), 37 bytes follow
    code, _, stderr = decode(
        "04-0F-44-27-6C-04-00-00-00-00-12-00-49-09-78-0C-11-33-39-0D-08-17-22-F0-F0-0B-00-00-00-"
        "19-60-29-52-50-02-95-8B-F0-F1-00".replace("-", " ")
    )
    assert code == 2
    assert stderr == "kassa: APDU 04 0F says 68 data bytes but 37 follow the header\n"
    # the same fields with the length corrected to 25 (37) decode
    code, body, _ = decode(
        "04 0F 25 27 6C 04 00 00 00 00 12 00 49 09 78 0C 11 33 39 0D 08 17 22 F0 F0 0B 00 00 00"
        " 19 60 29 52 50 02 95 8B F0 F1 00"
    )
    assert code == 0 and body is not None
    assert body["result_message"] == "abort via timeout or abort-key"
    assert body["amount_minor"] == 1200
    assert body["terminal_id"] == "52500295"
    assert body["date"] == "08-17"
    assert body["masked_pan"] == ""


def test_decode_unframes_and_checks_the_crc() -> None:
    code, body, _ = decode(FRAMED_COMPLETION)
    assert code == 0 and body is not None
    assert body["framed"] is True
    assert body["name"] == "Completion"
    assert body["software_version"] == "2.14.15"


@pytest.mark.parametrize(
    ("hex_text", "problem"),
    [
        (FRAMED_COMPLETION[:-2] + "12", "bad CRC: frame says 12B1, content gives 11B1"),
        ("04 0F 05 27 00", "says 5 data bytes but 2 follow"),
        ("04 0F", "truncated APDU"),
        (FRAMED_COMPLETION[:-12], "truncated frame"),
        ("04 0F zz", "not hex: 'z'"),
        ("04 0F 0", "odd number of hex digits"),
        ("04 0F 02 27", "says 2 data bytes but 1 follow"),
        ("04 0F 02 04 00", "BMP 04 (amount_minor) needs 6 byte(s), 1 left"),
    ],
)
def test_bad_input_is_one_line_on_stderr_and_exit_2(hex_text: str, problem: str) -> None:
    code, _, stderr = decode(hex_text)
    assert code == 2
    assert stderr.startswith("kassa: ")
    assert problem in stderr
    assert stderr.count("\n") == 1


def test_simulate_prints_the_port_and_serves_until_ctrl_c() -> None:
    script = (
        "from drivers.zvt.cli import zvt_simulate_command as c; "
        "c(['--baudrate', '115200', '--pin-delay', '0.01'])"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert process.stdout is not None
        port = process.stdout.readline().strip()
        assert port.startswith("/dev/")
        with Transport(port, baudrate=115200) as transport:
            assert CardTerminal(transport).charge(250).approved
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=60) == 0
    finally:
        if process.poll() is None:
            process.kill()


def test_simulate_stops_on_ctrl_c_even_when_started_with_sigint_ignored() -> None:
    """A program started in the background by a non-interactive shell inherits SIGINT ignored;
    the simulator still stops on Ctrl-C (and on SIGTERM) instead of running forever."""
    script = (
        "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
        "from drivers.zvt.cli import zvt_simulate_command as c; c(['--pin-delay', '0.01'])"
    )
    for stop in (signal.SIGINT, signal.SIGTERM):
        process = subprocess.Popen(
            [sys.executable, "-c", script],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        try:
            assert process.stdout is not None
            assert process.stdout.readline().strip().startswith("/dev/")
            process.send_signal(stop)
            assert process.wait(timeout=60) == 0
        finally:
            if process.poll() is None:
                process.kill()
