"""Bytes as support engineers paste them from captures, for the ``kassa … decode`` commands."""

from __future__ import annotations

import dataclasses
import json
import string
import sys
from collections.abc import Callable
from typing import Any

import click

from drivers.errors import DecodeError, DeviceError


def parse_hex(text: str) -> bytes:
    """Hex digits with any spaces, colons or dashes between them, and an optional 0x."""
    digits = "".join(text.split()).replace(":", "").replace("-", "")
    if digits.lower().startswith("0x"):
        digits = digits[2:]
    bad = next((c for c in digits if c not in string.hexdigits), None)
    if bad is not None:
        raise DecodeError(f"not hex: {bad!r} in the input is not hexadecimal")
    if len(digits) % 2:
        raise DecodeError(f"odd number of hex digits ({len(digits)}): a byte is two digits")
    if not digits:
        raise DecodeError("no bytes given")
    return bytes.fromhex(digits)


def plain(value: object) -> Any:
    """JSON for the typed values decoders return (:class:`drivers.zvt.apdu.Undecoded`)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, bytes):
        return value.hex().upper()
    raise TypeError(f"{type(value).__name__} is not JSON")


def print_decoded(describe: Callable[[bytes], dict[str, Any]], text: str) -> None:
    """Print ``describe(bytes)`` as JSON; a bad capture is one line on stderr and exit code 2."""
    try:
        click.echo(json.dumps(describe(parse_hex(text)), indent=2, default=plain))
    except DeviceError as exc:
        click.echo(f"kassa: {exc}", err=True)
        sys.exit(2)
