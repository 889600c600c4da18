"""`kassa qr decode|encode|render`, through click's runner and once through the real script."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from gateway.domain.emv_qr import decode
from gateway.entrypoints.cli import main

# Banco Central do Brasil, "Manual de Padrões para Iniciação do Pix", BR Code example, CRC 1D3D.
PIX = (
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
    "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)
# EMV QRCPS Merchant-Presented Mode (EMVCo), the specification's worked example, CRC A13A.
EMVCO = (
    "00020101021229300012D156000000000510A93FO3230Q31280012D15600000001030812345678520441115802"
    "CN5914BEST TRANSPORT6007BEIJING64200002ZH0104最佳运输0202北京540523.725303156550201623303"
    "0412340603***0708A60086670902ME91320016A0112233449988770708123456786304A13A"
)
BAD_CRC = PIX[:-4] + "1D3E"


def kassa(*args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def one_error_line(result: Result) -> str:
    assert result.exit_code == 2, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def test_decode_prints_the_tree_as_json() -> None:
    result = kassa("qr", "decode", EMVCO)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == decode(EMVCO)
    assert '"01": "最佳运输"' in result.stdout  # ensure_ascii=False
    assert '\n  "64": {\n    "00": "ZH",' in result.stdout  # indent 2, nested template


@pytest.mark.parametrize("payload", [PIX, EMVCO])
def test_decode_then_encode_gives_back_the_payload(payload: str) -> None:
    decoded = kassa("qr", "decode", payload)
    encoded = kassa("qr", "encode", stdin=decoded.stdout)
    assert encoded.exit_code == 0, encoded.output
    assert encoded.stdout == payload + "\n"


def test_encode_reads_a_file_argument(tmp_path: Path) -> None:
    source = tmp_path / "tree.json"
    source.write_text(kassa("qr", "decode", PIX).stdout, encoding="utf-8")
    assert kassa("qr", "encode", str(source)).stdout == PIX + "\n"


def test_decode_bad_crc() -> None:
    line = one_error_line(kassa("qr", "decode", BAD_CRC))
    assert line == "kassa: CRC mismatch: payload says 1D3E, computed 1D3D"


def test_decode_truncated() -> None:
    line = one_error_line(kassa("qr", "decode", PIX[: PIX.index("6008BRASILIA") + 8]))
    assert line == (
        "kassa: truncated: tag 60 (merchant city) declares length 8 but only 4 characters"
        " remain at position 110"
    )


@pytest.mark.parametrize(
    ("stdin", "message"),
    [
        ("{", "kassa: input is not JSON: Expecting property name enclosed in double quotes at"),
        ('["00", "01"]', 'kassa: expected a JSON object such as {"00": "01", ...}, got a list'),
        ('{"00": "01", "54": 10.5}', "kassa: tag 54 (transaction amount) must be a string, not"),
        ('{"00": "01", "26": {"00": 7}}', "kassa: tag 26-00 (globally unique identifier) must be"),
        ('{"00": "01", "59": "X"}', "kassa: missing mandatory tag 52 (merchant category code)"),
    ],
)
def test_encode_bad_input(stdin: str, message: str) -> None:
    assert one_error_line(kassa("qr", "encode", stdin=stdin)).startswith(message)


def test_render_png_scans_back_to_the_payload(tmp_path: Path) -> None:
    zxingcpp = pytest.importorskip("zxingcpp")
    from PIL import Image

    target = tmp_path / "pay.png"
    result = kassa("qr", "render", EMVCO, "-o", str(target))
    assert result.exit_code == 0, result.output
    image = Image.open(io.BytesIO(target.read_bytes()))
    assert [code.text for code in zxingcpp.read_barcodes(image)] == [EMVCO]


def test_render_svg(tmp_path: Path) -> None:
    target = tmp_path / "pay.SVG"
    result = kassa("qr", "render", PIX, "--output", str(target))
    assert result.exit_code == 0, result.output
    assert b"<svg" in target.read_bytes()


def test_render_unknown_extension(tmp_path: Path) -> None:
    target = tmp_path / "pay.gif"
    line = one_error_line(kassa("qr", "render", PIX, "-o", str(target)))
    assert line == "kassa: cannot render to 'pay.gif': the file name must end in .png or .svg"
    assert not target.exists()


def test_render_invalid_payload_writes_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pay.png"
    line = one_error_line(kassa("qr", "render", BAD_CRC, "-o", str(target)))
    assert line == "kassa: CRC mismatch: payload says 1D3E, computed 1D3D"
    assert not target.exists()


def test_decode_lenient_shows_a_non_conforming_payload_and_every_broken_rule() -> None:
    # dtinth/promptpay-qr index.test.js "Amount" (the same vector test_emv_qr cites).
    promptpay = "00020101021229370016A000000677010111011300660000000005802TH530376454044.226304E469"
    strict = kassa("qr", "decode", promptpay)
    assert one_error_line(strict) == "kassa: missing mandatory tag 52 (merchant category code)"
    lenient = kassa("qr", "decode", "--lenient", promptpay)
    assert lenient.exit_code == 1
    out = json.loads(lenient.stdout)
    assert out["conforms"] is False and len(out["problems"]) == 3
    assert out["tree"]["54"] == "4.22"
    good = kassa("qr", "decode", "--lenient", PIX)
    assert good.exit_code == 0 and json.loads(good.stdout)["conforms"] is True
    broken = kassa("qr", "decode", "--lenient", "0002010102125")
    assert "truncated" in one_error_line(broken)
