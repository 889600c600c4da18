"""Benchmark of the support commands' start-up: wall time of one ``kassa …`` run, end to end.

A support engineer pastes a capture into ``kassa zvt decode`` and waits for the whole process:
interpreter start, imports, the decode, exit. So each figure is the wall time of a fresh
process, timed beside two baselines in the same run: ``python -c pass`` (the interpreter alone)
and ``python -c "import click"`` (the least any click command can cost). Runs go round-robin, so
drift on a shared machine hits every figure alike.

Run from the repository root: ``.venv/bin/python -m bench.cli_startup`` (``--quick`` for a
smoke run).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

TARGET_S = 0.3  # the target: each decode command's median <= 0.3 s wall

# Published vectors, the same the tests use (see there for their sources).
ZVT_STATUS = (  # Portalum.Zvt StatusInformationParserTest Parse_PaymentGood1
    "04 0F 77 27 00 04 00 00 00 00 20 40 0B 00 04 70 0C 22 39 53 0D 10 06 0E 25 12 17 00 01 19 70"
    " 22 F0 F8 EE EE EE EE EE EE 47 71 29 28 00 48 69 2A 31 30 30 34 36 31 37 36 33 20 20 20 20"
    " 20 20 3B 36 31 31 38 30 34 00 00 3C F0 F1 F4 47 45 4E 2E 4E 52 2E 3A 36 31 31 38 30 34 49"
    " 09 78 87 04 70 88 00 04 70 8A 2E 8B F1 F7 44 65 62 69 74 20 4D 61 73 74 65 72 63 61 72 64 00"
)
# nfc-experiments README.md: InListPassiveTarget response, framed per UM0701-02 §6.2.1.1
PN532_TARGET = "00 00 FF 0C F4 D5 4B 01 01 00 04 08 04 92 4C 52 27 77 00"
PIX = (  # Banco Central do Brasil, Pix manual, BR Code example
    "00020126580014br.gov.bcb.pix0136123e4567-e12b-12d1-a456-4266554400005204000053039865802BR"
    "5913Fulano de Tal6008BRASILIA62070503***63041D3D"
)


@dataclass(frozen=True)
class Case:
    """One command line to time; ``stdin`` is fed to it, ``decode`` marks the target's scope."""

    figure: str
    argv: list[str]
    stdin: str | None = None
    decode: bool = False


def kassa_command() -> list[str]:
    """The installed console script next to this interpreter, else ``python -m`` the CLI."""
    script = Path(sys.executable).with_name("kassa")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "gateway.entrypoints.cli"]


def cases(workdir: Path) -> list[Case]:
    kassa = kassa_command()
    tree = json.dumps(
        {
            "00": "01",
            "26": {"00": "br.gov.bcb.pix", "01": "kassa@example.com"},
            "52": "0000",
            "53": "986",
            "58": "BR",
            "59": "KASSA",
            "60": "BRASILIA",
        }
    )
    return [
        Case("python -c pass (baseline)", [sys.executable, "-c", "pass"]),
        Case('python -c "import click" (baseline)', [sys.executable, "-c", "import click"]),
        Case("kassa zvt decode", [*kassa, "zvt", "decode", ZVT_STATUS], decode=True),
        Case("kassa pn532 decode", [*kassa, "pn532", "decode", PN532_TARGET], decode=True),
        Case("kassa qr decode", [*kassa, "qr", "decode", PIX], decode=True),
        Case("kassa qr decode --lenient", [*kassa, "qr", "decode", "--lenient", PIX], decode=True),
        Case("kassa qr encode", [*kassa, "qr", "encode"], stdin=tree),
        Case("kassa qr render (PNG)", [*kassa, "qr", "render", PIX, "-o", str(workdir / "q.png")]),
        Case("kassa simulate --help", [*kassa, "simulate", "--help"]),
    ]


def run_once(case: Case) -> int:
    """Wall nanoseconds of one run; a command that fails is a broken benchmark, not a figure."""
    start = time.perf_counter_ns()
    done = subprocess.run(
        case.argv,
        input=case.stdin,
        text=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter_ns() - start
    if done.returncode != 0:
        raise SystemExit(f"{case.figure} exited {done.returncode}: {done.stderr.strip()}")
    return elapsed


def measure(all_cases: Sequence[Case], runs: int, warmup: int) -> dict[str, list[int]]:
    """Time each case ``runs`` times, round-robin, after ``warmup`` untimed rounds."""
    timings: dict[str, list[int]] = {case.figure: [] for case in all_cases}
    for round_number in range(warmup + runs):
        for case in all_cases:
            elapsed = run_once(case)
            if round_number >= warmup:
                timings[case.figure].append(elapsed)
    return timings


def format_table(all_cases: Sequence[Case], timings: dict[str, list[int]]) -> str:
    """figure | median | min | × python -c pass | × import click, aligned."""
    bare = statistics.median(timings[all_cases[0].figure])
    click_only = statistics.median(timings[all_cases[1].figure])
    header = ["figure", "median", "min", "ratio to pass", "ratio to import click"]
    lines = [header]
    for case in all_cases:
        samples = timings[case.figure]
        median = statistics.median(samples)
        lines.append(
            [
                case.figure,
                f"{median / 1e9:.3f} s",
                f"{min(samples) / 1e9:.3f} s",
                f"{median / bare:.1f}×",
                f"{median / click_only:.1f}×",
            ]
        )
    widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
    rendered = [
        " | ".join(
            cell.rjust(width) if column else cell.ljust(width)
            for column, (cell, width) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    rendered.insert(1, "-+-".join("-" * width for width in widths))
    return "\n".join(rendered)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bench.cli_startup", description="Benchmark the kassa support commands' start-up."
    )
    parser.add_argument("--runs", type=int, default=15, help="timed runs per command")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--quick", action="store_true", help="smoke run: 3 runs, 1 warm-up")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.warmup = 3, 1
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Print the table; exit 1 if a decode command's median misses the target."""
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="kassa-bench-") as workdir:
        all_cases = cases(Path(workdir))
        timings = measure(all_cases, args.runs, args.warmup)
    print(format_table(all_cases, timings))
    print(
        f"\n{args.runs} runs per command after {args.warmup} warm-up round(s), round-robin; "
        "wall time of the whole process (subprocess.run, time.perf_counter_ns)."
    )
    missed = [
        case.figure
        for case in all_cases
        if case.decode and statistics.median(timings[case.figure]) > TARGET_S * 1e9
    ]
    verdict = "met" if not missed else "MISSED by " + ", ".join(missed)
    print(f"Target: each decode command's median <= {TARGET_S:g} s: {verdict}")
    return 0 if not missed else 1


if __name__ == "__main__":
    raise SystemExit(main())
