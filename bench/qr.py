"""Benchmark of the QR payment path: payload encode, module matrix, PNG and SVG render.

Each figure is timed on fresh payloads (a new payment reference per call), because every payment
gets a new code: nothing may be served from a cache. Our renderers are timed beside qrcode's
default path in the same run, so the ratio holds on whatever machine runs it.

Run from the repository root: ``.venv/bin/python -m bench.qr`` (``--quick`` for a smoke run).
"""

from __future__ import annotations

import argparse
import io
import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import qrcode
from qrcode.image.svg import SvgPathImage

from gateway.adapters import qr_render
from gateway.adapters.qr_render import qr_matrix, render_png, render_svg

PNG_TARGET_NS = 3_000_000  # the target: PNG render median <= 3 ms
# The typical dynamic payload of the tests; {reference} is replaced per call.
PAYLOAD_TEMPLATE = (
    "00020101021226360014IO.KASSA.DEMO0114KASSA0000000015204541153039785406123.455802DE"
    "5912Kassa Demo 16006Berlin62310525P-2026-{reference}ABCDEFGHJ0703T0163040000"
)


@dataclass(frozen=True)
class Row:
    """One line of the result table; times in nanoseconds, None where there is no figure."""

    figure: str
    median_ns: int | None
    p99_ns: int | None
    baseline_median_ns: int | None = None
    note: str = ""


_references = itertools.count(1)


def fresh_reference() -> str:
    """A payment reference never used before in this run (8 digits, as in the template)."""
    return f"{next(_references):08d}"


def payment_tree(reference: str) -> dict[str, str | dict[str, str]]:
    """The typical payload as an EMV data-object tree, for ``gateway.domain.emv_qr.encode``."""
    return {
        "00": "01",
        "01": "12",
        "26": {"00": "IO.KASSA.DEMO", "01": "KASSA000000001"},
        "52": "5411",
        "53": "978",
        "54": "123.45",
        "58": "DE",
        "59": "Kassa Demo 1",
        "60": "Berlin",
        "62": {"05": f"P-2026-{reference}ABCDEFGHJ", "07": "T01"},
    }


def fresh_payload() -> str:
    """A typical payload with a new reference (CRC not valid: rendering takes any string)."""
    return PAYLOAD_TEMPLATE.format(reference=fresh_reference())


def percentile(samples: Sequence[int], fraction: float) -> int:
    """Nearest-rank percentile of ``samples``."""
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(
    cases: dict[str, Callable[[], Callable[[], object]]], iterations: int, warmup: int
) -> dict[str, list[int]]:
    """Time each case ``iterations`` times, round-robin so drift on the machine hits all alike.

    A case is a factory: it prepares one call (a fresh payload) outside the timed region and
    returns the call to time.
    """
    timings: dict[str, list[int]] = {name: [] for name in cases}
    for round_number in range(warmup + iterations):
        for name, prepare in cases.items():
            call = prepare()
            start = time.perf_counter_ns()
            call()
            elapsed = time.perf_counter_ns() - start
            if round_number >= warmup:
                timings[name].append(elapsed)
    return timings


def _library_png(payload: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(payload).save(out)
    return out.getvalue()


def _library_svg(payload: str) -> bytes:
    out = io.BytesIO()
    qrcode.make(payload, image_factory=SvgPathImage).save(out)
    return out.getvalue()


def _library_matrix(payload: str) -> object:
    code = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M)
    code.add_data(payload)
    code.make(fit=True)
    return code.modules


def _timed(function: Callable[[str], object]) -> Callable[[], Callable[[], object]]:
    """A case calling ``function`` on a fresh payload."""

    def prepare() -> Callable[[], object]:
        payload = fresh_payload()
        return lambda: function(payload)

    return prepare


def bench_encode(args: argparse.Namespace) -> list[Row]:
    """Payload encode: ``gateway.domain.emv_qr.encode`` of a payment tree (no library baseline)."""
    try:
        from gateway.domain.emv_qr import encode
    except ImportError as error:
        return [Row("payload encode (emv_qr.encode)", None, None, note=f"skipped: {error}")]

    def prepare() -> Callable[[], object]:
        tree = payment_tree(fresh_reference())
        return lambda: encode(tree)

    samples = measure({"encode": prepare}, args.iterations, args.warmup)["encode"]
    return [
        Row("payload encode (emv_qr.encode)", percentile(samples, 0.5), percentile(samples, 0.99))
    ]


def bench_render(args: argparse.Namespace) -> list[Row]:
    """Matrix, PNG and SVG render, ours beside qrcode's default path on the same kind of payload."""
    samples = measure(
        {
            "matrix": _timed(qr_matrix),
            "matrix baseline": _timed(_library_matrix),
            "png": _timed(lambda payload: render_png(payload)),
            "png baseline": _timed(_library_png),
            "svg": _timed(lambda payload: render_svg(payload)),
            "svg baseline": _timed(_library_svg),
        },
        args.iterations,
        args.warmup,
    )

    def row(figure: str, name: str) -> Row:
        ours, baseline = samples[name], samples[f"{name} baseline"]
        return Row(figure, percentile(ours, 0.5), percentile(ours, 0.99), percentile(baseline, 0.5))

    return [
        row("QR matrix (qr_matrix)", "matrix"),
        row("PNG render (render_png, scale 8)", "png"),
        row("SVG render (render_svg)", "svg"),
    ]


def bench_png_levels(args: argparse.Namespace) -> list[Row]:
    """PNG render at each zlib level, with the mean PNG size, to justify PNG_COMPRESS_LEVEL."""
    rows = []
    chosen = qr_render.PNG_COMPRESS_LEVEL
    try:
        for level in (0, 1, 3, 6, 9):
            qr_render.PNG_COMPRESS_LEVEL = level  # read by render_png on every call
            samples = measure(
                {"png": _timed(lambda payload: render_png(payload))}, args.iterations, args.warmup
            )["png"]
            sizes = [len(render_png(fresh_payload())) for _ in range(min(args.iterations, 100))]
            mean_size = sum(sizes) / len(sizes)
            note = f"{mean_size:,.0f} bytes" + (" (chosen)" if level == chosen else "")
            rows.append(
                Row(
                    f"PNG render, zlib level {level}",
                    percentile(samples, 0.5),
                    percentile(samples, 0.99),
                    note=note,
                )
            )
    finally:
        qr_render.PNG_COMPRESS_LEVEL = chosen
    return rows


def bench_http(args: argparse.Namespace) -> list[Row]:
    """POST /payments + GET qr.png over real HTTP as `kassa serve` serves them, SQLite and
    PostgreSQL: the maximum rate beside a bare endpoint's for 1, 2 and 4 processes, then latency
    at half of it."""
    from bench import http_api

    quick = args.quick
    results = http_api.run(
        tuple(args.http_backends.split(",")),
        processes=(2,) if quick else tuple(int(n) for n in args.http_processes.split(",")),
        clients=args.http_clients,
        seconds=2.0 if quick else args.http_seconds,
        latency_seconds=3.0 if quick else args.http_seconds,
        repeats=1 if quick else args.http_repeats,
        stores=args.http_stores,
        tills_per_store=args.http_tills_per_store,
    )
    print(http_api.throughput_table(results, args.http_clients), end="\n\n")
    print("\n".join(http_api.targets(results)), end="\n\n")
    rows: list[Row] = http_api.describe(results)
    return rows


def format_table(rows: Sequence[Row]) -> str:
    """An aligned text table: figure | median | p99 | baseline median | ratio (| note)."""

    def ms(ns: int | None) -> str:
        return "—" if ns is None else f"{ns / 1e6:.3f} ms"

    with_notes = any(row.note for row in rows)
    header = ["figure", "median", "p99", "baseline median", "ratio (baseline/ours)"]
    lines = [[*header, "note"] if with_notes else header]
    for row in rows:
        ratio = (
            f"{row.baseline_median_ns / row.median_ns:.1f}×"
            if row.baseline_median_ns and row.median_ns
            else "—"
        )
        cells = [row.figure, ms(row.median_ns), ms(row.p99_ns), ms(row.baseline_median_ns), ratio]
        lines.append([*cells, row.note] if with_notes else cells)
    widths = [max(len(line[column]) for line in lines) for column in range(len(lines[0]))]
    rendered = [
        " | ".join(
            cell.rjust(width) if 0 < column < 5 else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench.qr", description="Benchmark the QR payment path.")
    parser.add_argument("--iterations", type=int, default=500, help="timed calls per figure")
    parser.add_argument("--warmup", type=int, default=20, help="untimed calls per figure first")
    parser.add_argument("--quick", action="store_true", help="smoke run: 30 calls, 3 warm-up")
    parser.add_argument("--http", action="store_true", help="also time the HTTP endpoints")
    parser.add_argument(
        "--http-seconds", type=float, default=5.0, help="duration of each HTTP load (s)"
    )
    parser.add_argument(
        "--http-clients", type=int, default=8, help="closed-loop clients for the maximum rate"
    )
    parser.add_argument(
        "--http-repeats",
        type=int,
        default=3,
        help="closed-loop runs of Kassa and of the bare endpoint, in turn (medians)",
    )
    parser.add_argument(
        "--http-processes", default="1,2,4", help="web process (worker) counts, comma-separated"
    )
    parser.add_argument("--http-backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument(
        "--http-stores",
        type=int,
        default=5000,
        help="festival stores the sales spread over (0: every sale at the demo's first till)",
    )
    parser.add_argument(
        "--http-tills-per-store", type=int, default=10, help="tills of each festival store"
    )
    parser.add_argument(
        "--png-levels", action="store_true", help="also time PNG render at each zlib level"
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.iterations, args.warmup = 30, 3
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Run the selected sections and print one table; exit 1 if the PNG target is missed."""
    args = parse_args(argv)
    rows = bench_encode(args) + bench_render(args)
    if args.png_levels:
        rows += bench_png_levels(args)
    if args.http:
        rows += bench_http(args)
    print(format_table(rows))
    print(
        f"\n{args.iterations} fresh payloads per figure (~{len(fresh_payload())} characters, "
        "level M), times from time.perf_counter_ns.\n"
        "Baselines: QR matrix = qrcode.QRCode(M).make(fit=True); "
        "PNG = qrcode.make(payload).save(PNG);\n"
        "SVG = qrcode.make(payload, image_factory=SvgPathImage).save()."
    )
    png = next(row for row in rows if row.figure.startswith("PNG render"))
    met = png.median_ns is not None and png.median_ns <= PNG_TARGET_NS
    print(f"Target PNG render median <= {PNG_TARGET_NS / 1e6:g} ms: {'met' if met else 'MISSED'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
