"""QR rendering: every code decodes with a real decoder and equals the qrcode library's own symbol.

The decoder is zxing-cpp, reading the PNG (or a raster of the SVG path) the way a wallet app's
scanner would. The library comparison pins the fast mask search to ``QRCode.best_mask_pattern``:
same penalty for each of the eight masks, same mask chosen, same modules.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import qrcode
import zxingcpp
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image
from qrcode import constants, util

from gateway.adapters import qr_render
from gateway.adapters.qr_render import penalties, qr_matrix, render_png, render_svg
from gateway.errors import InvalidInput, InvalidQrPayload

# A dynamic EMV merchant-presented payload as a till would show it (CRC not valid: rendering
# takes any string).
TYPICAL = (
    "00020101021226360014IO.KASSA.DEMO0114KASSA0000000015204541153039785406123.455802DE"
    "5912Kassa Demo 16006Berlin62310525P-2026-00001234ABCDEFGHJ0703T0163040000"
)
# Merchant name and city in Chinese, as an EMV Merchant Information – Language Template (64).
CHINESE = (
    "00020101021226360014IO.KASSA.DEMO0114KASSA0000000015204581253031565406268.005802CN"
    "5912Kassa Beijing6007Beijing64200002ZH0106北京烤鸭店0203北京62310525P-2026-00009876QWERTYUIO"
    "0703T016304ABCD"
)
LONG_512 = (TYPICAL + "62990595" + "RF18539007547034ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789" * 8)[:512]
SAMPLES = [TYPICAL, CHINESE, LONG_512, "A", "0123456789", "https://kassa.example/p/12345"]

PRINTABLE_ASCII = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1)
BLACK, WHITE = 0, 255


def payment_payload(reference: int) -> str:
    """The typical payload with a fresh reference, as each payment has."""
    return TYPICAL.replace("00001234", f"{reference:08d}")


def library_symbol(payload: str) -> tuple[np.ndarray, int, int]:
    """qrcode's default path at level M: (modules, version, chosen mask)."""
    code = qrcode.QRCode(error_correction=constants.ERROR_CORRECT_M)
    code.add_data(payload)
    code.make(fit=True)
    modules = np.array(code.modules, dtype=np.bool_)
    return modules, code.version, code.best_mask_pattern()


def decode(image: Image.Image) -> zxingcpp.Result:
    results = zxingcpp.read_barcodes(image)
    assert len(results) == 1, f"expected one QR code, decoder found {len(results)}"
    result = results[0]
    assert result.valid and result.format == zxingcpp.BarcodeFormat.QRCode
    return result


def png_modules(png: bytes, *, scale: int, border: int) -> np.ndarray:
    """Read the module matrix back from a PNG by sampling each module's centre (True = dark)."""
    pixels = np.array(Image.open(io.BytesIO(png)).convert("L"))
    centres = pixels[scale // 2 :: scale, scale // 2 :: scale]
    return centres[border:-border, border:-border] == BLACK


def svg_modules(svg: bytes) -> tuple[ET.Element, np.ndarray]:
    """Parse the SVG and rebuild its module matrix (quiet zone included) from the path."""
    root = ET.fromstring(svg)
    namespace = "{http://www.w3.org/2000/svg}"
    assert root.tag == f"{namespace}svg"
    (path,) = root.iter(f"{namespace}path")
    _, _, width, height = (int(v) for v in root.attrib["viewBox"].split())
    matrix = np.zeros((height, width), dtype=np.bool_)
    d = path.attrib["d"]
    run = re.compile(r"M(\d+) (\d+)h(\d+)v1h-\3z")
    assert "".join(m.group(0) for m in run.finditer(d)) == d, "path holds only module runs"
    for match in run.finditer(d):
        x, y, w = (int(g) for g in match.groups())
        assert not matrix[y, x : x + w].any(), "runs do not overlap"
        matrix[y, x : x + w] = True
    return root, matrix


@pytest.mark.parametrize(
    "payload", SAMPLES, ids=["typical", "chinese", "512", "A", "digits", "url"]
)
def test_png_decodes_to_the_payload_at_level_m_with_the_library_version_and_mask(payload: str):
    _, version, mask = library_symbol(payload)

    result = decode(Image.open(io.BytesIO(render_png(payload))))

    assert result.text == payload
    assert result.bytes == payload.encode("utf-8")
    assert result.ec_level == "M"
    symbol = result.extra  # what the decoder read from the symbol itself
    assert isinstance(symbol, dict)
    assert symbol["Version"] == str(version)
    assert symbol["DataMask"] == mask


@settings(max_examples=25, deadline=None)
@given(payload=PRINTABLE_ASCII.filter(lambda s: len(s) <= 300))
def test_any_ascii_payload_decodes(payload: str):
    result = decode(Image.open(io.BytesIO(render_png(payload, scale=3))))

    assert result.text == payload


@pytest.mark.parametrize("payload", [*SAMPLES, *(payment_payload(n) for n in range(40))])
def test_matrix_equals_the_library_default_path(payload: str):
    modules, _, _ = library_symbol(payload)

    assert np.array_equal(qr_matrix(payload), modules)


@pytest.mark.parametrize("version", [1, 2, 6, 7, 9, 10, 14, 27])
def test_matrix_equals_the_library_near_each_version_boundary(version: int):
    # Fill the version to 3 bytes short of capacity: covers version information (7+), the
    # longer character counts (10+, 27+) and the growing grid of alignment patterns.
    capacity = util.BIT_LIMIT_TABLE[constants.ERROR_CORRECT_M][version] // 8
    payload = ("kassa#" * capacity)[: capacity - 3]
    modules, library_version, _ = library_symbol(payload)

    assert library_version == version
    assert np.array_equal(qr_matrix(payload), modules)


def library_codewords(payload: str) -> tuple[int, list[int], list[int]]:
    """(version, qrcode's codewords, ours) for ``payload`` at level M."""
    code = qrcode.QRCode(error_correction=constants.ERROR_CORRECT_M)
    code.add_data(payload)
    version = code.best_fit()
    theirs = util.create_data(version, constants.ERROR_CORRECT_M, code.data_list)
    ours = qr_render._encode(payload)
    assert ours[0] == version  # the same smallest version
    return version, theirs, ours[1]


@pytest.mark.parametrize("version", range(1, 41))
@pytest.mark.parametrize("alphabet", ["0123456789", "KASSA 0123456789$%*+-./:", "kassa#€"])
def test_codewords_equal_the_library_at_each_version_in_each_mode(version: int, alphabet: str):
    # Numeric, alphanumeric and byte mode, each filling ``version`` nearly to its capacity: every
    # block structure of level M, both pad codewords and the terminator cut short at the end.
    capacity = util.BIT_LIMIT_TABLE[constants.ERROR_CORRECT_M][version]
    per_char = {"0123456789": 10 / 3, "KASSA 0123456789$%*+-./:": 5.5}.get(alphabet, 8.0)
    if alphabet == "kassa#€":
        per_char = 8 * len(alphabet.encode()) / len(alphabet)
    count = max(1, int((capacity - 40) / per_char))
    payload = (alphabet * (count // len(alphabet) + 1))[:count]
    found, theirs, ours = library_codewords(payload)

    assert found == version
    assert ours == theirs


@settings(max_examples=100, deadline=None)
@given(payload=st.text(min_size=1, max_size=300))
def test_codewords_equal_the_library_for_mixed_segments(payload: str):
    # Any text: qrcode splits digits, alphanumerics and bytes into segments of each mode.
    _, theirs, ours = library_codewords(payload + "0123456789012" + payload.upper())

    assert ours == theirs


@pytest.mark.slow
@settings(max_examples=60, deadline=None)
@given(payload=st.text(min_size=1, max_size=400))
def test_matrix_equals_the_library_default_path_for_any_text(payload: str):
    modules, _, _ = library_symbol(payload)

    assert np.array_equal(qr_matrix(payload), modules)


@pytest.mark.parametrize("payload", [TYPICAL, CHINESE, LONG_512, "A"])
def test_penalty_of_each_mask_equals_library_lost_point(payload: str):
    code = qrcode.QRCode(error_correction=constants.ERROR_CORRECT_M)
    code.add_data(payload)
    code.make(fit=True)
    candidates, expected = [], []
    for mask in range(8):
        code.makeImpl(True, mask)  # the symbol best_mask_pattern scores
        candidates.append(np.array(code.modules, dtype=np.bool_))
        expected.append(util.lost_point(code.modules))

    assert penalties(np.stack(candidates)).tolist() == expected


@settings(max_examples=150, deadline=None)
@given(
    symbol=st.integers(min_value=11, max_value=45).flatmap(
        lambda n: arrays(np.bool_, (n, n), elements=st.booleans())
    )
)
def test_penalty_equals_library_lost_point_on_any_matrix(symbol: np.ndarray):
    assert penalties(symbol[np.newaxis]).tolist() == [util.lost_point(symbol.tolist())]


@pytest.mark.parametrize(
    "payload", SAMPLES, ids=["typical", "chinese", "512", "A", "digits", "url"]
)
def test_png_pixels_equal_the_library_default_image(payload: str):
    # Pixel-identical to qrcode.make at the same module size: it scans exactly as well.
    library = qrcode.make(payload, box_size=8, border=4).get_image()

    ours = Image.open(io.BytesIO(render_png(payload, scale=8, border=4)))

    assert ours.size == library.size
    assert np.array_equal(np.array(ours.convert("L")), np.array(library.convert("L")))


@pytest.mark.parametrize(("scale", "border"), [(8, 4), (3, 4), (5, 6)])
def test_png_has_the_quiet_zone_and_the_matrix(scale: int, border: int):
    matrix = qr_matrix(TYPICAL)
    side = (matrix.shape[0] + 2 * border) * scale

    png = render_png(TYPICAL, scale=scale, border=border)
    image = Image.open(io.BytesIO(png))
    pixels = np.array(image.convert("L"))

    assert image.format == "PNG" and image.size == (side, side)
    quiet = border * scale
    inside = pixels[quiet:-quiet, quiet:-quiet]
    assert (pixels[:quiet] == WHITE).all() and (pixels[-quiet:] == WHITE).all()
    assert (pixels[:, :quiet] == WHITE).all() and (pixels[:, -quiet:] == WHITE).all()
    # The top-left finder pattern's dark outer ring starts right after the quiet zone.
    assert (inside[0, : 7 * scale] == BLACK).all() and (inside[: 7 * scale, 0] == BLACK).all()
    assert np.array_equal(png_modules(png, scale=scale, border=border), matrix)
    assert decode(image).text == TYPICAL


@pytest.mark.parametrize(("scale", "border"), [(8, 4), (1, 0), (3, 1)])
def test_png_is_a_well_formed_one_bit_greyscale_png(scale: int, border: int):
    # Written without Pillow's encoder: the signature, IHDR first, every chunk's CRC-32 and
    # IEND last checked by Pillow's verify(), then the decoded deflate stream by a full load.
    png = render_png(TYPICAL, scale=scale, border=border)
    side = (qr_matrix(TYPICAL).shape[0] + 2 * border) * scale

    assert png.startswith(b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIHDR")
    assert png.endswith(b"\x00\x00\x00\x00IEND\xaeB`\x82")
    Image.open(io.BytesIO(png)).verify()
    image = Image.open(io.BytesIO(png))
    image.load()
    assert (image.format, image.mode, image.size) == ("PNG", "1", (side, side))
    assert png[24:29] == bytes([1, 0, 0, 0, 0])  # bit depth 1, greyscale, no interlace


@pytest.mark.parametrize("payload", [TYPICAL, CHINESE, LONG_512])
def test_svg_is_one_path_of_the_same_modules_and_decodes(payload: str):
    matrix = qr_matrix(payload)
    side = matrix.shape[0] + 8

    root, modules = svg_modules(render_svg(payload))

    assert root.attrib["viewBox"] == f"0 0 {side} {side}"
    assert root.attrib["shape-rendering"] == "crispEdges"
    (background,) = root.iter("{http://www.w3.org/2000/svg}rect")
    assert background.attrib["fill"] == "#fff"
    assert np.array_equal(modules, np.pad(matrix, 4))
    assert np.array_equal(modules[4:-4, 4:-4], png_modules(render_png(payload), scale=8, border=4))
    raster = Image.fromarray(np.where(modules, BLACK, WHITE).astype(np.uint8))
    raster = raster.resize((side * 4, side * 4), Image.Resampling.NEAREST)
    assert decode(raster).text == payload


def test_svg_border_sets_the_view_box():
    side = qr_matrix(TYPICAL).shape[0]

    root, modules = svg_modules(render_svg(TYPICAL, border=2))

    assert root.attrib["viewBox"] == f"0 0 {side + 4} {side + 4}"
    assert not modules[:2].any() and not modules[:, :2].any() and modules[2, 2]


def test_empty_payload_is_refused():
    with pytest.raises(InvalidQrPayload, match="empty"):
        render_png("")


def test_payload_too_long_for_any_version_is_refused():
    with pytest.raises(InvalidQrPayload, match="too long"):
        render_svg("x" * 2332)


@pytest.mark.parametrize(("scale", "border"), [(0, 4), (8, -1)])
def test_bad_scale_or_border_is_refused(scale: int, border: int):
    with pytest.raises(InvalidInput):
        render_png(TYPICAL, scale=scale, border=border)
