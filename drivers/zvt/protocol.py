"""The cash register's side of a ZVT dialogue (PA00P016_04 §5, PA00P015 13.08 chapter 2).

1. The ECR sends a command and waits T3 for the terminal's ``80 00`` (or ``84 xx``).
2. The terminal is master now: it sends Intermediate Status (04 FF), Status-Information
   (04 0F), Print Line (06 D1) / Print Text-Block (06 D3); the ECR answers each with ``80 00``.
   T4 (180 s) runs between its messages and restarts on each; 04 FF may set a new T4.
3. Completion (06 0F) or Abort (06 1E) hands the master rights back; the ECR answers ``80 00``.

==================  ========  ==========================================  ===========
timeout             default   meaning                                     section
==================  ========  ==========================================  ===========
T1                  0.2 s     between two bytes of a frame                016 §3.4.1
T2                  5 s       for ACK/NAK to a frame                      016 §3.4.2
T3                  5 s       from a command to 80 00 / 84 xx             016 §5.2.5
T4                  180 s     between terminal messages until Completion  016 §5.2.6
==================  ========  ==========================================  ===========

An abort requested while the terminal is master is sent as 06 B0 between its messages
(chapter 2.23); the terminal then ends the dialogue with Abort 06 1E 6C.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from drivers.errors import DeviceTimeout, ProtocolError
from drivers.zvt import messages
from drivers.zvt.apdu import Apdu, decode_apdu

log = logging.getLogger(__name__)


class Link(Protocol):
    def send(self, apdu: bytes) -> None: ...

    def receive(self, timeout: float) -> bytes | None: ...

    def discard_input(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Timeouts:
    t3: float = 5.0
    t4: float = 180.0
    poll: float = 0.05  # how often an abort request is looked at while the terminal works


@dataclass
class Outcome:
    """What a dialogue produced: the terminal's answer and everything it sent until the end."""

    accepted: bool  # 80 00 (or 84 00) to the command
    result_code: int | None = None  # 84 xx, or Abort 06 1E xx
    status: dict[str, Any] | None = None  # the last Status-Information 04 0F
    completion: dict[str, Any] | None = None
    aborted: bool = False  # ended by Abort 06 1E
    receipt_lines: list[str] = field(default_factory=list)
    statuses: list[str] = field(default_factory=list)

    @property
    def receipt_text(self) -> str:
        return "\n".join(self.receipt_lines).strip("\n")


StatusCallback = Callable[[str], None]


class Dialogue:
    """Runs one command to its end over a link. Not thread-safe, except :meth:`request_abort`."""

    def __init__(
        self,
        link: Link,
        timeouts: Timeouts | None = None,
        on_status: StatusCallback | None = None,
    ) -> None:
        self.link = link
        self.timeouts = timeouts or Timeouts()
        self.on_status = on_status
        self._abort = threading.Event()

    def request_abort(self) -> None:
        self._abort.set()

    def run(self, command: Apdu, *, completes: bool = True) -> Outcome:
        """Send ``command``; when ``completes``, follow the terminal until Completion/Abort."""
        self._abort.clear()
        self.link.discard_input()
        self.link.send(command.encode())
        answer = self._receive(self.timeouts.t3, f"an answer to {command.name}")
        if answer.cls == 0x84 and answer.instr != 0x00:
            return Outcome(accepted=False, result_code=answer.instr)
        if answer.cls not in (0x80, 0x84):
            raise ProtocolError(f"expected 80 00 to {command.name}, got {answer.name}")
        outcome = Outcome(accepted=True)
        if completes:
            self._follow(outcome)
        return outcome

    def _receive(self, timeout: float, what: str) -> Apdu:
        raw = self.link.receive(timeout)
        if raw is None:
            raise DeviceTimeout(f"the card terminal sent no {what} within {timeout:g} s")
        return decode_apdu(raw)

    def _follow(self, outcome: Outcome) -> None:
        t4 = self.timeouts.t4
        deadline = time.monotonic() + t4
        abort_sent = False
        while True:
            if self._abort.is_set() and not abort_sent:
                self.link.send(messages.abort().encode())
                abort_sent = True
            raw = self.link.receive(min(self.timeouts.poll, max(deadline - time.monotonic(), 0)))
            if raw is None:
                if time.monotonic() >= deadline:
                    raise DeviceTimeout(
                        f"the card terminal went silent for {t4:g} s (T4) before completing"
                    )
                continue
            apdu = decode_apdu(raw)
            if apdu.cls in (0x80, 0x84):
                continue  # the terminal's answer to our 06 B0; answers are not answered
            t4 = self._handle(apdu, outcome) or t4
            deadline = time.monotonic() + t4
            if apdu.control in ((0x06, 0x0F), (0x06, 0x1E)):
                return

    def _handle(self, apdu: Apdu, outcome: Outcome) -> float | None:
        """Acknowledge and record one terminal message; returns a new T4 if it sets one."""
        handled = apdu.control in _HANDLED
        self.link.send((messages.ACKNOWLEDGE if handled else messages.negative(0x83)).encode())
        if not handled:
            log.warning("card terminal sent %s, which this driver does not handle", apdu.name)
            return None
        if apdu.control in ((0x06, 0xD1), (0x06, 0xD3)):
            _collect_receipt(messages.print_lines(apdu), outcome.receipt_lines)
            return None
        fields = messages.decode_message(apdu)
        if apdu.control == (0x04, 0xFF):
            outcome.statuses.append(fields["status_text"])
            if self.on_status is not None:
                self.on_status(fields["status_text"])
            minutes = fields.get("timeout_minutes")
            return minutes * 60.0 if minutes else None
        if apdu.control == (0x04, 0x0F):
            outcome.status = fields
        elif apdu.control == (0x06, 0x0F):
            outcome.completion = fields
        elif apdu.control == (0x06, 0x1E):
            outcome.aborted, outcome.result_code = True, fields.get("result_code")
        return None


_HANDLED = {(0x04, 0xFF), (0x04, 0x0F), (0x06, 0xD1), (0x06, 0xD3), (0x06, 0x0F), (0x06, 0x1E)}


def _collect_receipt(lines: list[tuple[int, str]], into: list[str]) -> None:
    """Print attributes (Table 16): FF n = n line feeds; 1xxx xxxx (≠ 80) ends a receipt."""
    for attribute, line in lines:
        if attribute == 0xFF:
            into.extend([""] * (ord(line[:1]) if line else 1))
            continue
        if line or not attribute & 0x80:
            into.append(line)
        if attribute & 0x80 and attribute != 0x80:
            into.append("")
