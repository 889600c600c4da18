"""The support commands import only what they use (issue 12: they must start fast).

Each command runs in a fresh interpreter, as ``kassa`` would, and reports the modules it loaded;
the web stack, the sandbox bank and the statistics libraries must not be among them. Modules,
not seconds: ``bench/cli_startup.py`` measures the time.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Whole packages the support commands never need; and the gateway's own heavy layers.
FORBIDDEN_PACKAGES = {
    "flask",
    "werkzeug",
    "jinja2",
    "sqlalchemy",
    "alembic",
    "scipy",
    "numpy",
    "requests",
    "sandbox_bank",
}
FORBIDDEN_MODULES = ("gateway.services", "gateway.adapters.db", "gateway.adapters.models")

# Run ``kassa ARGS`` in-process and print the loaded module names as one JSON line on stderr.
SCRIPT = """
import json, sys
from gateway.entrypoints.cli import main
try:
    main(sys.argv[1:], prog_name="kassa")
except SystemExit:
    pass
sys.stderr.write("\\nMODULES " + json.dumps(sorted(sys.modules)) + "\\n")
"""

PIX = (  # Banco Central do Brasil, Pix manual, BR Code example (as in test_qr_cli.py)
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
    "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)


def loaded_modules(args: list[str], stdin: str = "") -> tuple[list[str], str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
        check=False,
    )
    marker = done.stderr.rindex("\nMODULES ")
    modules = json.loads(done.stderr[marker + len("\nMODULES ") :])
    return modules, done.stderr[:marker]


@pytest.mark.parametrize(
    "args",
    [
        ["zvt", "decode", "06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00"],  # ecrterm completion
        ["zvt", "decode", "04 0F 05 27 00"],  # bad input takes the same path
        ["pn532", "decode", "00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 92 4C 52 27 77 00"],
        ["pn532", "decode", "00 00 FF zz"],
        ["qr", "decode", PIX],
        ["qr", "decode", "--lenient", PIX[:-4] + "0000"],
        ["qr", "decode", "not a payload"],
        ["simulate", "zvt", "--help"],
        ["simulate", "pn532", "--help"],
    ],
    ids=lambda args: " ".join(args)[:32],
)
def test_support_commands_leave_the_web_stack_unimported(args: list[str]) -> None:
    modules, stderr = loaded_modules(args)
    assert "Traceback" not in stderr
    assert "click" in modules and "gateway.entrypoints.cli" in modules  # it did run
    heavy = sorted(
        name
        for name in modules
        if name.split(".")[0] in FORBIDDEN_PACKAGES or name.startswith(FORBIDDEN_MODULES)
    )
    assert heavy == []


def test_qr_encode_leaves_the_web_stack_unimported() -> None:
    tree = {"00": "01", "26": {"00": "br.gov.bcb.pix", "01": "kassa@example.com"}}
    tree |= {"52": "0000", "53": "986", "58": "BR", "59": "KASSA", "60": "BRASILIA"}
    modules, stderr = loaded_modules(["qr", "encode"], stdin=json.dumps(tree))
    assert "Traceback" not in stderr
    assert not [name for name in modules if name.split(".")[0] in FORBIDDEN_PACKAGES]
    assert "gateway.domain.money" not in modules  # the ISO 4217 table is for payments only


def test_the_server_commands_are_still_there() -> None:
    """Lazy loading must not lose a command: every one is listed and loads."""
    from click.testing import CliRunner

    from gateway.entrypoints.cli import main

    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = {line.split()[0] for line in result.stdout.split("Commands:")[1].splitlines() if line}
    assert listed >= {
        "db", "demo-data", "devices", "pn532", "promotions", "qr", "recon", "run",
        "sandbox-bank", "serve", "settlement", "simulate", "worker", "zvt",
    }  # fmt: skip


def test_a_dry_run_import_leaves_the_database_layer_unimported(tmp_path: Path) -> None:
    """``kassa settlement import --dry-run`` reads the file only: no SQLAlchemy, no models."""
    from tests.unit.test_camt_plain_reader import sandbox_statement

    path = tmp_path / "statement.camt053.xml"
    path.write_bytes(sandbox_statement())
    modules, stderr = loaded_modules(["settlement", "import", "--dry-run", str(path)])
    assert "Traceback" not in stderr
    assert "gateway.services.settlement.file_summary" in modules  # it did read the file
    heavy = sorted(
        name
        for name in modules
        if name.split(".")[0] in FORBIDDEN_PACKAGES - {"sandbox_bank"}
        or name.startswith(("gateway.adapters.db", "gateway.adapters.models"))
        or name == "gateway.services.settlement.file_import"
    )
    assert heavy == []
    # A camt file's reading is not configured: neither the configuration nor pydantic loads.
    assert [m for m in modules if m.split(".")[0] == "pydantic" or m == "gateway.config"] == []
