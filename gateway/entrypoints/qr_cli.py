"""`kassa qr …`: decode, encode and render EMV merchant-presented QR payloads.

Errors (a bad payload, bad JSON, an unknown file type) are :class:`~gateway.errors.KassaError`;
the ``kassa`` group turns them into one line on stderr and exit code 2.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TextIO

import click

from gateway.domain.emv_qr import decode, encode, inspect
from gateway.errors import InvalidInput, InvalidQrPayload


@click.group()
def qr() -> None:
    """Decode, encode and render EMV merchant-presented QR payloads."""


@qr.command("decode")
@click.argument("payload")
@click.option(
    "--lenient",
    is_flag=True,
    help="Show a payload that breaks EMVCo rules anyway: its data objects and every rule it "
    "breaks, as JSON; exit 1 if it breaks any.",
)
def decode_command(payload: str, lenient: bool) -> None:
    """Print PAYLOAD's data objects as JSON (ID → value, templates nested)."""
    if not lenient:
        click.echo(json.dumps(decode(payload), ensure_ascii=False, indent=2))
        return
    tree, problems = inspect(payload)
    out = {"conforms": not problems, "problems": problems, "tree": tree}
    click.echo(json.dumps(out, ensure_ascii=False, indent=2))
    if problems:
        raise SystemExit(1)


@qr.command("encode")
@click.argument("source", type=click.File("r", encoding="utf-8"), default="-")
def encode_command(source: TextIO) -> None:
    """Read the JSON `decode` prints (stdin, or SOURCE); print the payload with its CRC."""
    try:
        text = source.read()
    except UnicodeDecodeError as exc:
        raise InvalidQrPayload(
            f"input is not UTF-8: byte 0x{exc.object[exc.start]:02X} at byte {exc.start}"
        ) from None
    try:
        tree = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidQrPayload(
            f"input is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:  # json's decoder recurses once per [ or {
        raise InvalidQrPayload("input nests arrays or objects too deeply to be a QR tree") from None
    if not isinstance(tree, dict):
        raise InvalidQrPayload(
            f'expected a JSON object such as {{"00": "01", ...}}, got a {type(tree).__name__}'
        )
    click.echo(encode(tree))


@qr.command("render")
@click.argument("payload")
@click.option(
    "-o",
    "--output",
    required=True,
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    help="Where to write the code: a .png or .svg file.",
)
def render_command(payload: str, output: Path) -> None:
    """Validate PAYLOAD and write it as a QR code image to OUTPUT (.png or .svg)."""
    suffix = output.suffix.lower()
    if suffix not in (".png", ".svg"):
        raise InvalidInput(
            f"cannot render to {output.name!r}: the file name must end in .png or .svg"
        )
    decode(payload)
    from gateway.adapters import qr_render  # qrcode and Pillow load only when rendering

    image = qr_render.render_png(payload) if suffix == ".png" else qr_render.render_svg(payload)
    output.write_bytes(image)
    click.echo(str(output))
