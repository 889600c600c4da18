"""The raw device log for support: every byte to and from a device, timestamped, with direction
and the decoded message beside it, card data masked, in size-capped rotating files.

A :class:`DeviceLog` is a transport's tap (:attr:`drivers.transport.Transport.tap`): it gets each
chunk as it is written or read, gathers chunks into the protocol's messages, and writes one JSON
line per message::

    {"t": 1718000000.123, "dir": "out", "hex": "10 02 06 01 …", "what": "Authorisation",
     "fields": {"amount_minor": 2345, …}}

========================  ===================================================================
protocol                  one message is
========================  ===================================================================
``zvt-serial``            a frame ``10 02 … 10 03 CRC`` or a lone ACK 06 / NAK 15
``zvt-tcp``               an APDU (its length from the header)
``pn532``                 a frame ``[55…] 00 00 FF … 00`` (wake-up bytes kept with it)
========================  ===================================================================

Bytes that never complete a message are written as they are (``"what": "incomplete"``) when
the other side starts talking. Card data is masked in ``hex`` (ZVT card-data BMPs and
passwords, then any Luhn-valid digit run) and in ``fields`` (:func:`drivers.card_data.mask_text`).
Files are ``<directory>/<kind>.log`` with ``.1`` … ``.N`` behind it, each at most ``max_bytes``.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from drivers.capture import plain
from drivers.card_data import mask_text, sensitive_zvt_bytes
from drivers.errors import DecodeError

PROTOCOLS = ("zvt-serial", "zvt-tcp", "pn532")
DLE, STX, ETX = 0x10, 0x02, 0x03


def device_directory(root: Path, store: str, till: str) -> Path:
    """Where one till's device logs live: ``root/<store>/<till>`` with safe names."""
    return root / _safe(store) / _safe(till)


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("._") or "_"


class DeviceLog:
    """One device's log file set. Thread-safe: an abort may write from another thread."""

    def __init__(
        self,
        path: Path,
        protocol: str,
        *,
        max_bytes: int = 1_048_576,
        backups: int = 3,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol must be one of {', '.join(PROTOCOLS)}, not {protocol!r}")
        self.path = path
        self.protocol = protocol
        self.max_bytes = max_bytes
        self.backups = backups
        self.clock = clock
        self._lock = threading.Lock()
        self._pending: dict[str, tuple[float, bytearray]] = {}

    # -- the tap --------------------------------------------------------------------------

    def __call__(self, direction: str, data: bytes) -> None:
        """Record ``data`` written (``"out"``) to or read (``"in"``) from the device."""
        if not data:
            return
        with self._lock:
            other = "in" if direction == "out" else "out"
            self._flush(other)
            stamp, buffer = self._pending.setdefault(direction, (self.clock(), bytearray()))
            buffer += data
            while buffer:
                size = _message_size(self.protocol, bytes(buffer))
                if size is None:
                    break
                unit = bytes(buffer[:size])
                del buffer[:size]
                self._write(stamp, direction, unit, complete=True)
                stamp = self.clock()
            if buffer:
                self._pending[direction] = (stamp, buffer)
            else:
                self._pending.pop(direction, None)

    def flush(self) -> None:
        with self._lock:
            for direction in list(self._pending):
                self._flush(direction)

    def _flush(self, direction: str) -> None:
        pending = self._pending.pop(direction, None)
        if pending and pending[1]:
            self._write(pending[0], direction, bytes(pending[1]), complete=False)

    # -- entries --------------------------------------------------------------------------

    def _write(self, stamp: float, direction: str, unit: bytes, *, complete: bool) -> None:
        entry: dict[str, Any] = {"t": round(stamp, 3), "dir": direction}
        hidden: set[int] = set()
        if complete:
            what, fields, hidden = _describe(self.protocol, unit)
        else:
            what, fields = "incomplete", {}
        entry["hex"] = mask_text(
            " ".join("**" if i in hidden else f"{b:02X}" for i, b in enumerate(unit))
        )
        entry["what"] = what
        if fields:
            entry["fields"] = json.loads(mask_text(json.dumps(fields, default=plain)))
        self._append(json.dumps(entry, ensure_ascii=False) + "\n")

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            size = 0
        if size and size + len(line.encode()) > self.max_bytes:
            self._rotate()
        # Support logs are for the merchant's staff only: created 0600, like the database.
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(line)

    def _rotate(self) -> None:
        for n in range(self.backups, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            newer = self.path.with_name(f"{self.path.name}.{n - 1}") if n > 1 else self.path
            if n == self.backups and older.exists():
                older.unlink()
            if newer.exists():
                os.replace(newer, older)
        if self.backups == 0:
            self.path.unlink(missing_ok=True)


# -- message boundaries -------------------------------------------------------------------------


def _message_size(protocol: str, buffer: bytes) -> int | None:
    """The size of the message at the start of ``buffer``, or None until it is complete."""
    if protocol == "zvt-tcp":
        from drivers.zvt.apdu import header_size

        sizes = header_size(buffer)
        if sizes is None or len(buffer) < sum(sizes):
            return None
        return sum(sizes)
    if protocol == "zvt-serial":
        return _zvt_frame_size(buffer)
    return _pn532_frame_size(buffer)


def _zvt_frame_size(buffer: bytes) -> int | None:
    if buffer[0] != DLE:
        return 1  # ACK 06, NAK 15, or a stray byte: one message each
    if len(buffer) < 2:
        return None
    if buffer[1] != STX:
        return 1
    pos = 2
    while pos + 1 < len(buffer):
        if buffer[pos] == DLE:
            if buffer[pos + 1] == ETX:
                return pos + 4 if len(buffer) >= pos + 4 else None
            pos += 2  # DLE DLE (a doubled 10), or a broken pair kept in the frame
        else:
            pos += 1
    return None


def _pn532_frame_size(buffer: bytes) -> int | None:
    start = buffer.find(b"\x00\xff")
    if start < 0:
        return len(buffer) if len(buffer) > 300 else None
    head = buffer[start + 2 : start + 4]
    if len(head) < 2:
        return None
    if head in (b"\x00\xff", b"\xff\x00"):  # ACK, NACK
        end = start + 5
    elif head == b"\xff\xff":
        extended = buffer[start + 4 : start + 7]
        if len(extended) < 3:
            return None
        end = start + 7 + extended[0] * 256 + extended[1] + 2
    else:
        end = start + 4 + head[0] + 2
    return end if len(buffer) >= end else None


def _describe(protocol: str, unit: bytes) -> tuple[str, dict[str, Any], set[int]]:
    """(name, decoded fields, indexes of bytes to mask) of one complete message."""
    try:
        if protocol == "pn532":
            return _describe_pn532(unit)
        return _describe_zvt(unit, framed=protocol == "zvt-serial")
    except DecodeError as exc:
        return "undecodable", {"error": str(exc)}, set()


def _describe_zvt(unit: bytes, *, framed: bool) -> tuple[str, dict[str, Any], set[int]]:
    from drivers.zvt.cli import describe

    if framed and unit in (b"\x06", b"\x15"):
        return ("ACK" if unit == b"\x06" else "NAK"), {}, set()
    fields = describe(unit)
    name = str(fields.pop("name", "APDU"))
    for key in ("class", "instr", "length", "framed"):
        fields.pop(key, None)
    positions = _apdu_positions(unit) if framed else list(range(len(unit)))
    apdu = bytes(unit[i] for i in positions)
    hidden = {positions[i] for i in sensitive_zvt_bytes(apdu)}
    if framed:  # a doubled DLE inside a hidden field hides both of its bytes
        hidden |= {i + 1 for i in hidden if unit[i] == DLE and i + 1 < len(unit)}
    return name, fields, hidden


def _apdu_positions(frame: bytes) -> list[int]:
    """For each APDU byte of a ZVT frame, its index in the frame (DLE doubling undone)."""
    positions, pos = [], 2
    while pos < len(frame) - 3:
        if frame[pos] == DLE and frame[pos + 1] == ETX:
            break
        positions.append(pos)
        pos += 2 if frame[pos] == DLE else 1
    return positions


def _describe_pn532(unit: bytes) -> tuple[str, dict[str, Any], set[int]]:
    from drivers.pn532 import frames
    from drivers.pn532.cli import describe

    fields = describe(frames.decode(unit.lstrip(b"\x55")))
    name = str(fields.pop("name", fields.get("kind", "frame")))
    return name, fields, set()


# -- reading -----------------------------------------------------------------------------------


def log_files(directory: Path) -> Iterator[tuple[str, list[Path]]]:
    """(device kind, its files oldest first) for each device logged in ``directory``."""
    if not directory.is_dir():
        return
    for current in sorted(directory.glob("*.log")):
        rotated = sorted(
            directory.glob(f"{current.name}.*"),
            key=lambda p: int(p.suffix[1:]) if p.suffix[1:].isdigit() else 0,
            reverse=True,
        )
        yield current.stem, [*rotated, current]


def read_entries(directory: Path, since: float) -> list[dict[str, Any]]:
    """Entries of every device in ``directory`` at or after ``since`` (epoch seconds), by
    time; each gets ``device`` (the kind). Lines that are not JSON are skipped."""
    out: list[dict[str, Any]] = []
    for kind, files in log_files(directory):
        for path in files:
            try:
                lines = path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:  # rotated away while we read
                continue
            for line in lines:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and float(entry.get("t", 0)) >= since:
                    out.append({**entry, "device": kind})
    out.sort(key=lambda e: float(e["t"]))
    return out


def format_entry(entry: dict[str, Any], *, timezone: Any = None) -> str:
    """One line for people: time, device, arrow, hex, then the decoded message."""
    from datetime import datetime

    stamp = datetime.fromtimestamp(float(entry["t"]), tz=timezone)
    arrow = "→" if entry.get("dir") == "out" else "←"
    fields = entry.get("fields")
    detail = f" {json.dumps(fields, ensure_ascii=False)}" if fields else ""
    return (
        f"{stamp:%Y-%m-%d %H:%M:%S}.{stamp.microsecond // 1000:03d} {entry.get('device', '')} "
        f"{arrow} {entry.get('hex', '')}  {entry.get('what', '')}{detail}"
    )
