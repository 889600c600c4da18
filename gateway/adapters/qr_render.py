"""Render EMV payment QR codes to PNG and SVG, fast enough to draw one per payment.

The qrcode library still chooses the mode segmentation and the smallest version at error
correction level M, so what we print is exactly what ``qrcode.make`` would print. We replace the
three slow parts of its default path:

* the codewords (``util.create_data``: a bit buffer filled one bit at a time, Reed-Solomon by
  dividing lists of Python objects); here the bit stream is one integer and each division step
  one XOR with a precomputed product, with the same codewords (tests compare them);

* the mask search (``QRCode.best_mask_pattern``), which places the data eight times and scores
  each with ``util.lost_point`` in pure Python; here the eight masked symbols are one numpy array
  and the ISO/IEC 18004:2015 §7.8.3 penalty rules are scored for all of them at once;
* the image path (one ``ImageDraw.rectangle`` per dark module, then Pillow's PNG encoder); here
  the module matrix becomes the PNG's scanlines with numpy, deflated by zlib.

qrcode's scoring reads ISO/IEC 18004:2015 §7.8.3 in its own way, and we reproduce it on purpose,
so the chosen mask, and hence every module, equals the library's: it scores each candidate with
the format and version information areas (§7.9, §7.10) and the dark module left light, and for
feature 3 it counts a 1:1:3:1:1 pattern only when its four light modules lie inside the symbol,
not when the quiet zone supplies them. The standard lets an encoder use any of the eight masks
(§7.8.2); the penalty only steers away from patterns that are hard to scan, and a symbol
identical to the library's scans exactly as well.

Per-version geometry (function patterns, placement order, mask patterns) is cached: it depends on
the version only, never on the payload, as in qrcode's own ``precomputed_qr_blanks``.
"""

from __future__ import annotations

import bisect
import struct
import zlib
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import qrcode
from numpy.typing import NDArray
from qrcode import constants, exceptions, util

from gateway.errors import InvalidInput, InvalidQrPayload

__all__ = ["qr_matrix", "render_png", "render_svg"]

Matrix = NDArray[np.bool_]

ERROR_CORRECTION = constants.ERROR_CORRECT_M
# zlib level for the PNG. Measured on typical payloads at scale 8 (``bench.qr --png-levels``):
# level 1 gives ~1.3 KB in ~0.6 ms for the image path, level 6 ~0.95 KB in ~0.75 ms, level 9
# ~0.87 KB in ~1.8 ms. A few hundred bytes on the till's network cost less than the time.
PNG_COMPRESS_LEVEL = 1

# §7.8.3 Table 11 penalty weights.
N1, N2, N3, N4 = 3, 3, 40, 10
# §7.8.3 feature 3: 1:1:3:1:1 finder-like pattern with 4 light modules after or before it,
# read as 11-bit numbers (first module = most significant bit).
FINDER_LIKE = (0b10111010000, 0b00001011101)


@dataclass(frozen=True)
class _Geometry:
    """Everything about one QR version that does not depend on the data."""

    size: int
    placement: NDArray[np.intp]  # flat indices of the data modules, in §7.7.3 placement order
    masks: Matrix  # (8, n, n): mask pattern k on the data modules only (§7.8.2 Table 10)
    scored_frame: Matrix  # function patterns as qrcode scores them: format/version areas light
    frames: Matrix  # (8, n, n): function patterns with the format information of mask k


def qr_matrix(payload: str) -> Matrix:
    """Encode ``payload`` and return its module matrix (True = dark), without the quiet zone.

    Level M, the smallest version that fits, qrcode's own mode segmentation; identical, module for
    module, to ``qrcode.QRCode(error_correction=M)`` with ``make(fit=True)``.
    """
    version, codewords = _encode(payload)
    geometry = _geometry(version)
    n = geometry.size
    bits = np.unpackbits(np.frombuffer(bytes(codewords), dtype=np.uint8))
    unmasked = np.zeros(n * n, dtype=np.bool_)
    # Remainder bits after the last codeword stay 0 before masking, as qrcode leaves them.
    unmasked[geometry.placement[: bits.size]] = bits.astype(np.bool_)
    masked = unmasked.reshape(n, n) ^ geometry.masks
    best = int(np.argmin(penalties(masked | geometry.scored_frame)))
    return masked[best] | geometry.frames[best]


def render_png(payload: str, *, scale: int = 8, border: int = 4) -> bytes:
    """Render ``payload`` as a black-on-white 1-bit PNG, ``scale`` pixels per module.

    Written directly (PNG §11, §12): a 1-bit greyscale image (1 = white, as Pillow's mode "1"
    saves one), each scanline with filter type 0, deflated at ``PNG_COMPRESS_LEVEL``. Building
    a Pillow image, scaling it and running Pillow's encoder cost a third of the render.
    """
    if scale < 1:
        raise InvalidInput(f"QR scale must be at least 1 pixel per module, got {scale}")
    light = _with_quiet_zone(payload, border, light=True)
    side = light.shape[0] * scale
    # One scanline per module row (bits most significant first, padded to whole bytes, after
    # its filter-type byte 0), repeated ``scale`` times.
    lines = np.packbits(np.repeat(light, scale, axis=1), axis=1)
    lines = np.pad(lines, ((0, 0), (1, 0)))
    raw = np.repeat(lines, scale, axis=0).tobytes()
    header = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)  # 1 bit, greyscale, no interlace
    return b"".join(
        (
            PNG_SIGNATURE,
            _png_chunk(b"IHDR", header),
            _png_chunk(b"IDAT", zlib.compress(raw, PNG_COMPRESS_LEVEL)),
            _png_chunk(b"IEND", b""),
        )
    )


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    """A PNG chunk: length, type, data, and the CRC-32 of type and data (PNG §5.3)."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def render_svg(payload: str, *, border: int = 4) -> bytes:
    """Render ``payload`` as a compact SVG: a white square and one path of dark modules.

    The viewBox is in modules, so the caller sizes the image with CSS; ``crispEdges`` keeps the
    module edges sharp at any scale. Each horizontal run of dark modules is one closed rectangle
    ``M x y h w v1 h -w z`` in the path.
    """
    dark = _with_quiet_zone(payload, border, light=False)
    side = dark.shape[0]
    edges = np.diff(dark.astype(np.int8), axis=1, prepend=0, append=0)
    run_rows, run_starts = np.nonzero(edges == 1)
    _, run_ends = np.nonzero(edges == -1)  # row-major order pairs each start with its end
    widths = run_ends - run_starts
    path = "".join(
        f"M{x} {y}h{w}v1h-{w}z"
        for x, y, w in zip(run_starts.tolist(), run_rows.tolist(), widths.tolist(), strict=True)
    )
    svg = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {side} {side}" '
        'shape-rendering="crispEdges">'
        f'<rect width="{side}" height="{side}" fill="#fff"/>'
        f'<path fill="#000" d="{path}"/></svg>\n'
    )
    return svg.encode("utf-8")


def penalties(symbols: Matrix) -> NDArray[np.int64]:
    """Score each of a stack of square symbols (k, n, n) by the §7.8.3 penalty rules N1..N4.

    Counts exactly what qrcode's ``util.lost_point`` counts, vectorised over the stack.
    """
    k, n, _ = symbols.shape
    # Rows and columns are scored alike: stack the columns under the rows, as rows.
    lines = np.concatenate([symbols, symbols.transpose(0, 2, 1)], axis=1)

    # Feature 1 (§7.8.3, N1): a run of 5 + i same-coloured modules in a row or column scores
    # N1 + i. A run of length L >= 5 holds L - 4 windows of 5 equal modules, one of them at the
    # run's start, so its score N1 + L - 5 = (windows) + (N1 - 1) * (windows that start a run).
    change = lines[:, :, 1:] != lines[:, :, :-1]
    window5 = ~(change[:, :, :-3] | change[:, :, 1:-2] | change[:, :, 2:-1] | change[:, :, 3:])
    run_start = np.ones_like(window5)
    run_start[:, :, 1:] = change[:, :, : n - 5]
    score = window5.sum(axis=(1, 2)) + (N1 - 1) * (window5 & run_start).sum(axis=(1, 2))

    # Feature 2 (N2): every 2x2 block of one colour, overlapping blocks counted separately.
    top_left = symbols[:, :-1, :-1]
    block = (
        (top_left == symbols[:, 1:, :-1])
        & (top_left == symbols[:, :-1, 1:])
        & (top_left == symbols[:, 1:, 1:])
    )
    score += N2 * block.sum(axis=(1, 2))

    # Feature 3 (N3): 1011101 with four light modules after or before it, inside the symbol
    # (qrcode does not count the quiet zone as those light modules).
    windows = np.zeros((k, 2 * n, n - 10), dtype=np.int16)
    for offset in range(11):
        windows <<= 1
        windows |= lines[:, :, offset : offset + n - 10]
    finder_like = (windows == FINDER_LIKE[0]) | (windows == FINDER_LIKE[1])
    score += N3 * finder_like.sum(axis=(1, 2))

    # Feature 4 (N4): N4 points for every full 5 % the dark share departs from 50 %. The float
    # arithmetic is qrcode's, so a share exactly on a 5 % step rounds the same way.
    for index, dark in enumerate(symbols.sum(axis=(1, 2)).tolist()):
        percent = float(dark) / (n**2)
        score[index] += int(abs(percent * 100 - 50) / 5) * N4
    return score


def _encode(payload: str) -> tuple[int, list[int]]:
    """Encode ``payload`` into the final codeword sequence; return (version, codewords)."""
    if not payload:
        raise InvalidQrPayload("nothing to render: the QR payload is empty")
    # What QRCode.add_data does with its default ``optimize=20``: qrcode's mode segmentation.
    data_list = list(util.optimal_data_chunks(payload, minimum=20))
    try:
        version = _best_fit(data_list)
    except exceptions.DataOverflowError:
        size = len(payload.encode("utf-8"))
        raise InvalidQrPayload(
            f"the QR payload is too long ({size} bytes) for a QR code at error correction level "
            "M, which holds at most 2331 bytes (3391 characters if only 0-9, A-Z, space and "
            "$%*+-./: are used); shorten the payload"
        ) from None
    return version, _codewords(version, data_list)


def _best_fit(data_list: list[util.QRData]) -> int:
    """The smallest version at level M that holds ``data_list``: ``QRCode.best_fit``, with the
    bit count worked out per segment instead of written into a bit buffer first."""
    start = 1
    while True:
        sizes = util.mode_sizes_for_version(start)
        needed = sum(4 + sizes[data.mode] + _data_bits(data) for data in data_list)
        version = bisect.bisect_left(util.BIT_LIMIT_TABLE[ERROR_CORRECTION], needed, start)
        if version > 40:
            raise exceptions.DataOverflowError()
        # A longer character count from this version on: count again from there (as qrcode).
        if util.mode_sizes_for_version(version) is sizes:
            return version
        start = version


def _data_bits(data: util.QRData) -> int:
    """How many bits ``data`` takes after its mode and character count (§7.4.3 - §7.4.5)."""
    count = len(data.data)
    if data.mode == util.MODE_NUMBER:
        return 10 * (count // 3) + (0, 4, 7)[count % 3]
    if data.mode == util.MODE_ALPHA_NUM:
        return 11 * (count // 2) + 6 * (count % 2)
    return 8 * count  # byte mode (qrcode's segmentation never picks Kanji)


def _codewords(version: int, data_list: list[util.QRData]) -> list[int]:
    """The data and error correction codewords of ``data_list``, interleaved (§7.4 - §7.6).

    The same codewords as qrcode's ``util.create_data``, which builds the bit stream one bit at
    a time and divides polynomials as lists of Python objects (about 1 ms a payload, a third of
    a PNG's time); here the bit stream is one integer and the Reed-Solomon remainder a
    shift-register over GF(256) log tables.
    """
    bits = 0
    length = 0
    for data in data_list:
        count_bits = util.length_in_bits(data.mode, version)
        bits = (bits << 4 | data.mode) << count_bits | len(data)
        length += 4 + count_bits
        raw: bytes = data.data
        if data.mode == util.MODE_8BIT_BYTE:
            bits = bits << 8 * len(raw) | int.from_bytes(raw, "big")
            length += 8 * len(raw)
        elif data.mode == util.MODE_NUMBER:
            for i in range(0, len(raw), 3):
                chunk = raw[i : i + 3]
                width = util.NUMBER_LENGTH[len(chunk)]
                bits = bits << width | int(chunk)
                length += width
        elif data.mode == util.MODE_ALPHA_NUM:
            for i in range(0, len(raw), 2):
                pair = raw[i : i + 2]
                if len(pair) == 2:
                    bits = bits << 11 | _ALPHA_NUM[pair[0]] * 45 + _ALPHA_NUM[pair[1]]
                    length += 11
                else:
                    bits = bits << 6 | _ALPHA_NUM[pair[0]]
                    length += 6
        else:  # Kanji: qrcode's own mode segmentation never picks it; leave it to the library
            return list(util.create_data(version, ERROR_CORRECTION, data_list))
    blocks = _rs_blocks(version)
    limit = 8 * sum(data_count for data_count, _ in blocks)
    if length > limit:
        raise exceptions.DataOverflowError(f"Data size ({length}) > size available ({limit})")
    # Terminator (up to four 0 bits), then 0 bits to a whole codeword, then the pad codewords.
    pad = min(limit - length, 4)
    pad += -(length + pad) % 8
    stream = (bits << pad).to_bytes((length + pad) // 8, "big")
    fill = limit // 8 - len(stream)
    stream += bytes((util.PAD0, util.PAD1) * (fill // 2 + 1))[:fill]

    data_blocks: list[bytes] = []
    ec_blocks: list[list[int]] = []
    offset = 0
    for data_count, ec_count in blocks:
        block = stream[offset : offset + data_count]
        offset += data_count
        data_blocks.append(block)
        ec_blocks.append(_rs_remainder(block, ec_count))
    out = [b[i] for i in range(max(map(len, data_blocks))) for b in data_blocks if i < len(b)]
    out += [e[i] for i in range(max(map(len, ec_blocks))) for e in ec_blocks if i < len(e)]
    return out


_ALPHA_NUM = {char: index for index, char in enumerate(util.ALPHA_NUM)}
# GF(256) with the QR code's polynomial x^8 + x^4 + x^3 + x^2 + 1 (§7.5.2).
_EXP = [0] * 512
_LOG = [0] * 256
_value = 1
for _power in range(255):
    _EXP[_power] = _value
    _LOG[_value] = _power
    _value <<= 1
    if _value & 0x100:
        _value ^= 0x11D
for _power in range(255, 512):
    _EXP[_power] = _EXP[_power - 255]


@lru_cache(maxsize=40)
def _rs_blocks(version: int) -> tuple[tuple[int, int], ...]:
    """(data codewords, error correction codewords) of each block of ``version`` at level M."""
    return tuple(
        (block.data_count, block.total_count - block.data_count)
        for block in qrcode.base.rs_blocks(version, ERROR_CORRECTION)
    )


@lru_cache(maxsize=40)
def _generator_products(ec_count: int) -> tuple[int, ...]:
    """For each codeword value f, f times the generator polynomial of ``ec_count`` error
    correction codewords (§7.5.2) without its leading term, as one big-endian integer of
    ``ec_count`` bytes: one division step of :func:`_rs_remainder` is then one XOR."""
    poly = [1]
    for i in range(ec_count):  # multiply by (x - a^i); in GF(2^8) minus is plus
        shifted = [*poly, 0]
        for j in range(1, len(shifted)):
            if poly[j - 1]:
                shifted[j] ^= _EXP[_LOG[poly[j - 1]] + i]
        poly = shifted
    logs = [_LOG[c] for c in poly[1:]]
    products = [0]
    for factor in range(1, 256):
        log = _LOG[factor]
        products.append(int.from_bytes(bytes(_EXP[g + log] for g in logs), "big"))
    return tuple(products)


def _rs_remainder(block: bytes, ec_count: int) -> list[int]:
    """The error correction codewords of ``block``: the remainder of block(x) x^ec_count divided
    by the generator polynomial, by long division (a shift register held in one integer)."""
    products = _generator_products(ec_count)
    top = 8 * (ec_count - 1)
    mask = (1 << 8 * ec_count) - 1
    remainder = 0
    for codeword in block:
        factor = codeword ^ (remainder >> top)
        remainder = ((remainder << 8) & mask) ^ products[factor]
    return list(remainder.to_bytes(ec_count, "big"))


def _with_quiet_zone(payload: str, border: int, *, light: bool) -> Matrix:
    """Return the module matrix with ``border`` light quiet-zone modules around it."""
    if border < 0:
        raise InvalidInput(f"QR quiet zone must be 0 modules or more, got {border}")
    matrix = qr_matrix(payload)
    return np.pad(~matrix if light else matrix, border, constant_values=light)


@lru_cache(maxsize=40)
def _geometry(version: int) -> _Geometry:
    """Lay out one version with qrcode's own function-pattern code, so positions match it."""
    layout = qrcode.QRCode(version=version, error_correction=ERROR_CORRECTION)
    n = layout.modules_count = version * 4 + 17
    layout.modules = [[None] * n for _ in range(n)]
    layout.setup_position_probe_pattern(0, 0)
    layout.setup_position_probe_pattern(n - 7, 0)
    layout.setup_position_probe_pattern(0, n - 7)
    layout.setup_position_adjust_pattern()
    layout.setup_timing_pattern()
    blank = [row[:] for row in layout.modules]

    frames = []
    for mask in (None, *range(8)):
        layout.modules = [row[:] for row in blank]
        # test=True leaves format (§7.9) and version (§7.10) information light: the symbol qrcode
        # scores. Otherwise they encode level M with this mask, and the dark module is set.
        layout.setup_type_info(mask is None, mask or 0)
        if version >= 7:
            layout.setup_type_number(mask is None)
        frames.append([[bool(module) for module in row] for row in layout.modules])
    is_data = np.array([[module is None for module in row] for row in layout.modules])
    functions = np.array(frames, dtype=np.bool_)
    geometry = _Geometry(
        size=n,
        placement=_placement_order(is_data),
        masks=_mask_patterns(n) & is_data,
        scored_frame=functions[0],
        frames=functions[1:],
    )
    for shared in (geometry.placement, geometry.masks, geometry.scored_frame, geometry.frames):
        shared.flags.writeable = False  # shared by every request (and thread) using this version
    return geometry


def _placement_order(is_data: Matrix) -> NDArray[np.intp]:
    """Flat indices of the data modules in the order the codeword bits fill them (§7.7.3).

    Two-module-wide columns from the right, upwards then downwards in turn, skipping the
    vertical timing pattern in column 6; the right module of each pair first.
    """
    n = is_data.shape[0]
    order: list[int] = []
    upwards = True
    right = n - 1
    while right > 0:
        if right == 6:
            right -= 1
        rows = range(n - 1, -1, -1) if upwards else range(n)
        for row in rows:
            for col in (right, right - 1):
                if is_data[row, col]:
                    order.append(row * n + col)
        upwards = not upwards
        right -= 2
    return np.array(order, dtype=np.intp)


def _mask_patterns(n: int) -> Matrix:
    """The eight data mask patterns of §7.8.2 Table 10 over an n x n symbol (i = row, j = col)."""
    i, j = np.indices((n, n))
    return np.stack(
        [
            (i + j) % 2 == 0,
            i % 2 == 0,
            j % 3 == 0,
            (i + j) % 3 == 0,
            (i // 2 + j // 3) % 2 == 0,
            (i * j) % 2 + (i * j) % 3 == 0,
            ((i * j) % 2 + (i * j) % 3) % 2 == 0,
            ((i * j) % 3 + (i + j) % 2) % 2 == 0,
        ]
    )
