"""``kassa zvt decode HEX`` and ``kassa simulate zvt``.

``decode`` takes an APDU (``04 0F …``) or a whole serial frame (``10 02 … 10 03 CRC``, which is
unframed and its CRC checked first) and prints its fields as JSON. Bad input prints one line,
``kassa: <what is wrong>``, on stderr and exits 2.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from drivers.capture import print_decoded
from drivers.errors import DecodeError
from drivers.zvt.apdu import decode_apdu, header_size
from drivers.zvt.framing import DLE, STX, unframe
from drivers.zvt.messages import decode_message


@click.group("zvt")
def zvt() -> None:
    """ZVT card terminals (ECR–terminal protocol)."""


@zvt.command("decode")
@click.argument("hex_text", nargs=-1, required=True, metavar="HEX")
def decode_command(hex_text: tuple[str, ...]) -> None:
    """Decode one ZVT APDU or serial frame given in hex (spaces optional)."""
    print_decoded(describe, " ".join(hex_text))


def describe(raw: bytes) -> dict[str, Any]:
    framed = raw[:2] == bytes([DLE, STX])
    apdu_bytes = unframe(raw) if framed else raw
    apdu = decode_apdu(apdu_bytes)
    sizes = header_size(apdu_bytes)
    out: dict[str, Any] = {
        "class": f"{apdu.cls:02X}",
        "instr": f"{apdu.instr:02X}",
        "length": sizes[1] if sizes else len(apdu.data),
        "name": apdu.name,
        "framed": framed,
    }
    try:
        out.update(decode_message(apdu))
    except DecodeError as exc:
        raise DecodeError(f"{apdu.name} ({apdu.cls:02X} {apdu.instr:02X}): {exc}") from exc
    return out


@click.command("zvt")
@click.option("--baudrate", default=9600, show_default=True, help="Pace bytes as this line.")
@click.option("--pin-delay", default=1.0, show_default=True, help="Seconds the PIN entry takes.")
@click.option("--tcp", is_flag=True, help="Listen on TCP as a LAN terminal (ZVT over TCP/IP).")
@click.option("--port", type=int, default=0, help="With --tcp: the port (default: a free one).")
def zvt_simulate_command(baudrate: int, pin_delay: float, tcp: bool, port: int) -> None:
    """Simulate a ZVT card terminal on a pty, or with --tcp on 127.0.0.1; print the port to open
    (a pty path, or a socket:// URL) and run until Ctrl-C."""
    from drivers.simulators.base import serve_until_interrupted
    from drivers.simulators.zvt import ZvtSimulator, ZvtTcpSimulator

    if port and not tcp:
        raise click.UsageError("--port is the TCP port; give --tcp as well")
    simulator: ZvtSimulator | ZvtTcpSimulator
    if not tcp:
        simulator = ZvtSimulator(baudrate=baudrate)
    else:
        try:
            simulator = ZvtTcpSimulator(port)
        except OSError as exc:
            click.echo(f"kassa: cannot listen on 127.0.0.1:{port}: {exc.strerror}", err=True)
            sys.exit(2)
    simulator.pin_delay = pin_delay
    serve_until_interrupted(simulator)
