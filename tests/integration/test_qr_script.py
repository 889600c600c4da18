"""The installed ``kassa`` script itself (a subprocess, so not a unit test)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.unit.test_qr_cli import BAD_CRC


def test_real_kassa_script_exits_2_with_one_line_for_a_bad_crc() -> None:
    script = Path(sys.executable).with_name("kassa")
    completed = subprocess.run(
        [str(script), "qr", "decode", BAD_CRC],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""
    assert completed.stderr == "kassa: CRC mismatch: payload says 1D3E, computed 1D3D\n"
