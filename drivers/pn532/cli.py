"""``kassa pn532 decode HEX`` and ``kassa simulate pn532``: PN532 frames for people.

The lead registers :data:`pn532` on the ``kassa`` group and :data:`pn532_simulate_command`
on ``kassa simulate``.
"""

from __future__ import annotations

from typing import Any

import click

from drivers.capture import print_decoded
from drivers.errors import DecodeError
from drivers.pn532 import frames
from drivers.pn532.frames import Ack, ErrorFrame, Frame, InformationFrame, Nack
from drivers.pn532.reader import Target, parse_targets, status_error


@click.group("pn532")
def pn532() -> None:
    """PN532 NFC reader (HSU): decode frames."""


@pn532.command("decode")
@click.argument("hex_text", nargs=-1, required=True, metavar="HEX")
def decode_command(hex_text: tuple[str, ...]) -> None:
    """Decode one PN532 frame given in hex (spaces allowed) and print it as JSON."""
    print_decoded(lambda raw: describe(frames.decode(raw)), " ".join(hex_text))


def describe(frame: Frame) -> dict[str, Any]:
    """A JSON-ready description: ``kind`` and, for an information frame, its fields."""
    if isinstance(frame, Ack):
        return {"kind": "ack"}
    if isinstance(frame, Nack):
        return {"kind": "nack"}
    if isinstance(frame, ErrorFrame):
        return {"kind": "error", "meaning": "syntax error at application level (§6.2.1.5)"}
    return _describe_information(frame)


def _describe_information(frame: InformationFrame) -> dict[str, Any]:
    out: dict[str, Any] = {
        "kind": "info",
        "tfi": f"{frame.tfi:02X}",
        "command": frame.code,
        "name": frame.name,
        "data": frame.params.hex().upper(),
        "length": len(frame.params) + 2,  # LEN: TFI, code and data
    }
    try:
        out.update(_fields(frame))
    except DecodeError as exc:
        out["fields_error"] = str(exc)
    return out


def _fields(frame: InformationFrame) -> dict[str, Any]:
    params, response = frame.params, frame.tfi == frames.PN532_TO_HOST
    if response and frame.code == 0x03 and len(params) == 4:
        ic, ver, rev, support = params
        return {"firmware": {"ic": ic, "ver": ver, "rev": rev, "support": support}}
    if response and frame.code == 0x4B:
        return {"targets": [_target_json(target) for target in parse_targets(params)]}
    if response and frame.code in (0x41, 0x43, 0x45, 0x53) and params:
        return {"status": params[0], "error": status_error(params[0])}
    if not response and frame.code == 0x4A and len(params) >= 2:
        return {"max_tg": params[0], "brty": params[1]}
    if not response and frame.code == 0x14 and params:
        return {"mode": params[0]}
    if not response and frame.code in (0x40, 0x52) and params:
        return {"tg": params[0]}
    return {}


def _target_json(target: Target) -> dict[str, Any]:
    return {
        "tg": target.tg,
        "sens_res": target.sens_res.hex().upper(),
        "sel_res": target.sel_res,
        "uid": target.uid.hex().upper(),
        "ats": target.ats.hex().upper(),
        "kind": target.kind,
    }


@click.command("pn532")
@click.option(
    "--tag",
    type=click.Choice(["ntag", "classic", "payment", "phone"]),
    default=None,
    help="Put this tag in the field from the start.",
)
@click.option("--baudrate", default=115200, show_default=True, help="Pace bytes as this line.")
def pn532_simulate_command(tag: str | None, baudrate: int) -> None:
    """Simulate a PN532 reader on a pty; print its port path and run until Ctrl-C."""
    from drivers.simulators.base import serve_until_interrupted
    from drivers.simulators.pn532 import TAGS, Pn532Simulator

    simulator = Pn532Simulator(baudrate=baudrate)
    if tag:
        simulator.present(TAGS[tag])
    serve_until_interrupted(simulator)
