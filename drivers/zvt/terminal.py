"""A ZVT card terminal as the till sees it: charge, refund, reverse, close the day.

Declines come back as a :class:`CardResult` with ``approved=False`` and the terminal's
result code and sentence; a broken line or protocol raises a :class:`drivers.errors.DeviceError`.
After a crash or a lost line in the middle of a payment, :meth:`CardTerminal.repeat_last_receipt`
asks the terminal for the last transaction it booked (PA00P015 13.08 §2.20, §2.2.9: "If in
doubt the ECR can attempt to resynchronise using the command Repeat-Receipt").

====================  =======  =============================================
method                APDU     returns
====================  =======  =============================================
register()            06 00    the Completion fields; 84 xx raises Declined
charge(amount)        06 01    CardResult
refund(amount)        06 31    CardResult
reverse(receipt)      06 30    CardResult
end_of_day()          06 50    CardResult with totals (BatchTotals)
repeat_last_receipt   06 20    CardResult of the last booking, or None
abort()               06 B0    – (also from another thread during a charge)
log_off()             06 02    –
diagnosis()           06 70    the Completion fields
status_enquiry()      05 01    the Completion fields (software version, state)
probe(timeout)        05 01    the same, with short limits (an idle liveness check)
====================  =======  =============================================
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import threading
from dataclasses import dataclass, field
from typing import Any

from drivers.errors import DeviceDeclined
from drivers.transport import Transport
from drivers.zvt import messages
from drivers.zvt.apdu import Apdu
from drivers.zvt.codes import result_message
from drivers.zvt.framing import LinkTimings, SerialLink, TcpLink
from drivers.zvt.protocol import Dialogue, Outcome, StatusCallback, Timeouts
from drivers.zvt.totals import BatchTotals, batch_totals


@dataclass(frozen=True, slots=True)
class CardResult:
    approved: bool
    result_code: int
    message: str
    amount_minor: int | None = None
    currency: str = "978"
    trace_number: int | None = None
    receipt_number: int | None = None
    terminal_id: str | None = None
    card_name: str | None = None
    masked_pan: str | None = None
    aid: str | None = None  # BMP 3B, the authorisation attribute (approval code)
    timestamp: dt.datetime | None = None
    receipt_text: str = ""
    status: dict[str, Any] = field(default_factory=dict)
    totals: BatchTotals | None = None  # End-of-Day only: the closed batch's totals


def _timestamp(status: dict[str, Any]) -> dt.datetime | None:
    """BMP 0D (MMDD) and 0C (HHMMSS) carry no year: this year, unless that is in the future."""
    if "date" not in status or "time" not in status:
        return None
    now = dt.datetime.now()
    try:
        month, day = (int(x) for x in status["date"].split("-"))
        hour, minute, second = (int(x) for x in status["time"].split(":"))
        stamp = dt.datetime(now.year, month, day, hour, minute, second)
        if stamp - now > dt.timedelta(days=1):
            stamp = stamp.replace(year=now.year - 1)
    except ValueError:
        return None
    return stamp


def card_result(outcome: Outcome, currency: str) -> CardResult:
    status = outcome.status or {}
    if not outcome.accepted or outcome.aborted:
        code = outcome.result_code if outcome.result_code is not None else 0xFF
    else:
        code = status.get("result_code", 0)
    return CardResult(
        approved=outcome.accepted and not outcome.aborted and code == 0,
        result_code=code,
        message=result_message(code),
        amount_minor=status.get("amount_minor"),
        currency=status.get("currency", currency),
        trace_number=status.get("trace_number"),
        receipt_number=status.get("receipt_number"),
        terminal_id=status.get("terminal_id"),
        card_name=status.get("card_name"),
        masked_pan=status.get("masked_pan"),
        aid=status.get("aid"),
        timestamp=_timestamp(status),
        receipt_text=outcome.receipt_text,
        status=status,
    )


class CardTerminal:
    """One ZVT terminal on one line. One command at a time; :meth:`abort` may come from another
    thread while a command runs."""

    def __init__(
        self,
        transport: Transport,
        *,
        password: str = "000000",  # noqa: S107 - the terminals' factory default, per the brief
        currency: str = "978",
        on_status: StatusCallback | None = None,
        tcp: bool = False,
        timeouts: Timeouts | None = None,
        timings: LinkTimings | None = None,
        config_byte: int = messages.DEFAULT_CONFIG_BYTE,
    ) -> None:
        self.transport = transport
        self.password = password
        self.currency = currency
        self.config_byte = config_byte
        link_type = TcpLink if tcp else SerialLink
        self._link = link_type(self._read, self._write, timings, self._flush)
        self._dialogue = Dialogue(self._link, timeouts, on_status)
        self._busy = threading.Lock()

    @property
    def on_status(self) -> StatusCallback | None:
        """Called with each intermediate status text ("Insert card", …) while a command runs."""
        return self._dialogue.on_status

    @on_status.setter
    def on_status(self, callback: StatusCallback | None) -> None:
        self._dialogue.on_status = callback

    def _read(self, size: int, timeout: float) -> bytes:
        return self.transport.read(size, timeout)

    def _write(self, data: bytes) -> None:
        self.transport.write(data)

    def _flush(self) -> None:
        self.transport.discard_input()

    def _run(self, command: Apdu, *, completes: bool = True) -> Outcome:
        with self._busy:
            if not self.transport.is_open:
                self.transport.open()
            return self._dialogue.run(command, completes=completes)

    def _declined_unless_accepted(self, outcome: Outcome, what: str) -> None:
        if not outcome.accepted or outcome.aborted:
            code = outcome.result_code if outcome.result_code is not None else 0xFF
            raise DeviceDeclined(f"the card terminal refused {what}: {result_message(code)}", code)

    # -- administration --------------------------------------------------------------------

    def register(self) -> dict[str, Any]:
        command = messages.registration(self.password, self.currency, self.config_byte)
        outcome = self._run(command)
        self._declined_unless_accepted(outcome, "the registration")
        return outcome.completion or {}

    def log_off(self) -> None:
        outcome = self._run(messages.log_off(), completes=False)
        self._declined_unless_accepted(outcome, "the log-off")

    def diagnosis(self) -> dict[str, Any]:
        outcome = self._run(messages.diagnosis())
        self._declined_unless_accepted(outcome, "the diagnosis")
        return outcome.completion or {}

    def status_enquiry(self) -> dict[str, Any]:
        outcome = self._run(messages.status_enquiry(self.password))
        self._declined_unless_accepted(outcome, "the status enquiry")
        return outcome.completion or {}

    def probe(self, timeout: float = 2.0) -> dict[str, Any]:
        """Status Enquiry with short limits: is an idle terminal there and answering?"""
        with self._busy:
            if not self.transport.is_open:
                self.transport.open()
            usual = self._dialogue.timeouts
            self._dialogue.timeouts = Timeouts(t3=timeout, t4=timeout, poll=usual.poll)
            try:
                outcome = self._dialogue.run(messages.status_enquiry(self.password))
            finally:
                self._dialogue.timeouts = usual
        self._declined_unless_accepted(outcome, "the status enquiry")
        return outcome.completion or {}

    def abort(self) -> None:
        """Stop the running payment (sent between the terminal's messages), else send 06 B0."""
        if self._busy.acquire(blocking=False):
            try:
                self.transport.open()
                self._dialogue.run(messages.abort(), completes=False)
            finally:
                self._busy.release()
        else:
            self._dialogue.request_abort()

    # -- money -----------------------------------------------------------------------------

    def charge(self, amount_minor: int) -> CardResult:
        outcome = self._run(messages.authorisation(amount_minor, self.currency))
        return card_result(outcome, self.currency)

    def refund(self, amount_minor: int) -> CardResult:
        outcome = self._run(messages.refund(self.password, amount_minor, self.currency))
        return card_result(outcome, self.currency)

    def reverse(self, receipt_number: int) -> CardResult:
        outcome = self._run(messages.reversal(self.password, receipt_number))
        return card_result(outcome, self.currency)

    def end_of_day(self) -> CardResult:
        """Close the batch; ``totals`` says what the terminal booked in it (BMP 04, BMP 60)."""
        result = card_result(self._run(messages.end_of_day(self.password)), self.currency)
        return dataclasses.replace(result, totals=batch_totals(result.status))

    def repeat_last_receipt(self) -> CardResult | None:
        """The terminal's record of its last transaction, or None if it has none to repeat."""
        outcome = self._run(messages.repeat_receipt(self.password))
        if outcome.status is None:
            return None
        return card_result(outcome, self.currency)
