"""A ZVT payment terminal: the terminal's side of PA00P015/PA00P016.

:class:`ZvtSimulator` sits on a pty and speaks the RS-232 link (frames, CRC, ACK/NAK);
:class:`ZvtTcpSimulator` listens on a TCP port, as a terminal on a LAN does, and speaks ZVT over
TCP/IP (PA00P016 §4.1: the APDUs alone; the ``80 00`` acknowledgements of the dialogue remain).
Both answer the same commands the same way:

========================  ==================================================================
command                   what the simulator does
========================  ==================================================================
06 00 Registration        80 00, Completion with status byte, terminal id, currency
06 01 Authorisation       80 00; 04 FF "Insert card", "Please watch PIN-Pad", "Please
06 31 Refund              wait..."; 04 0F with a masked PAN; Print Text-Block; Completion
                          (or, declined, 06 1E with the result code)
06 30 Reversal            as above for a booked receipt number, else Abort B5
06 50 End-of-Day          80 00, 04 FF, 04 0F with the day's total, receipt, Completion
06 20 Repeat Receipt      80 00, the last 04 0F again, its receipt, Completion
06 70 Diagnosis           80 00, 04 FF, Completion
06 02 Log-Off, 06 B0      80 00
05 01 Status-Enquiry      80 00, Completion with software version and "PT ready"
========================  ==================================================================

Currency: the terminal takes :attr:`currency` (ISO 4217 numeric, "978" unless set); a payment
asking for another (BMP 49) ends in Abort 06 1E 6F with the terminal's currency (§2.2.9), and
receipts print amounts in it. End-of-Day reports the open batch (BMP 04, BMP 60 per card type)
and starts a new one; a reversal finds only receipts of the open batch.

Silence: ``silent_at`` makes the terminal stop talking and listening at a step of the next
payment (before its 80 00, or after "card", "pin", "online", before or after the
Status-Information); the card holder goes on, so from "card" on it books the payment alone.
``silent = True`` silences it now; :meth:`speak` ends either.

Knobs: ``decline_next`` (a result code for the next payment), ``card_delay``/``pin_delay``/
``online_delay``, ``nak_storm`` (NAK the next N good frames), ``ack_timeout`` (its T2/T3),
``garbage_before``/``drop_probability``/``response_delay`` (line faults), :meth:`unplug`.
Over TCP only ``response_delay`` applies (``nak_storm``, ``garbage_before`` and
``drop_probability`` are refused), and :meth:`unplug` drops the connection: the terminal
finishes the transaction alone and then accepts the ECR's next connection.
The terminal keeps a :attr:`journal` of booked transactions. Like the spec says a terminal
books once the ECR acknowledged the Status-Information (§2.2.8); with ``book_without_ack``
(the default here) it books even when the ECR has gone away, so that Repeat Receipt is the only
way for the ECR to learn the truth — the case the till's crash recovery must handle.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from drivers.errors import DeviceError
from drivers.simulators.base import Device, PtyDevice, TcpDevice
from drivers.zvt.apdu import Apdu, bcd_encode, bcd_int, decode_apdu, encode_apdu, encode_bmp
from drivers.zvt.framing import LinkTimings, SerialLink, TcpLink
from drivers.zvt.tlv import encode_tlv
from drivers.zvt.totals import encode_individual_totals

MASKED_PAN = bytes.fromhex("6799EEEEEEEE0019")  # shown as 6799********0019
CARD_NAME = b"Girocard\x00"
MASKED_RECEIPT_CARD = "Karte 6799********0019"
GIROCARD_AID = bytes.fromhex("A0000003591010")
INSERT_CARD, WATCH_PIN_PAD, PLEASE_WAIT = 0x0A, 0x01, 0x0E
ABORTED = 0x6C
WRONG_CURRENCY = 0x6F
# What the simulated receipts print (ISO 4217 numeric code: alphabetic code, decimals).
CURRENCIES = {"978": ("EUR", 2), "392": ("JPY", 0), "840": ("USD", 2), "756": ("CHF", 2)}


@dataclass(frozen=True, slots=True)
class Booking:
    kind: str  # "authorisation", "refund", "reversal"
    amount_minor: int
    trace_number: int
    receipt_number: int
    status_apdu: bytes  # the 04 0F the terminal sent (and repeats on 06 20)


class _Lost(Exception):
    """The ECR stopped acknowledging (finish alone, as a real terminal would), or the
    device was asked to stop."""


class _TerminalLink(SerialLink):
    def __init__(self, device: ZvtSimulator) -> None:
        super().__init__(
            device.read_until_stopped,
            device.send,
            LinkTimings(t2=device.ack_timeout),
            device.drain_input,
        )
        self.device = device

    def accept(self, apdu: bytes) -> bool:
        if self.device.nak_storm > 0:
            self.device.nak_storm -= 1
            return False
        return True


class _Terminal(Device):
    """What the terminal does, whichever line it is on; a subclass picks the line and link."""

    def _init_terminal(self, terminal_id: str) -> None:
        self.terminal_id = terminal_id
        # The terminal's clock shows the store's local time (no zone on the wire); None: this
        # machine's local time.
        self.clock_zone: str | None = None
        self.decline_next: int | None = None
        self.card_delay = 0.05
        self.pin_delay = 0.1
        self.online_delay = 0.05
        # BMP 22 as sent: masked (E nibbles) like a well-configured terminal, or a whole
        # number like a misconfigured one, to test that nothing downstream keeps it.
        self.card_number = MASKED_PAN
        self.ack_timeout = 5.0
        self.book_without_ack = True
        self.journal: list[Booking] = []
        self.received: list[Apdu] = []
        self.phase = "idle"  # idle, card, pin, online, status
        self._trace = 0
        self._receipt = 0
        self._reversed: set[int] = set()
        self._batch_start = 0  # the journal's first booking since the last End-of-Day
        self.batches_closed = 0
        self.currency = "978"  # the currency the terminal takes (ISO 4217 numeric)
        # The card line of its receipts: masked, as terminals should print it; a test may make
        # it print a whole card number, as some do.
        self.receipt_card = MASKED_RECEIPT_CARD
        self.registered_currency: str | None = None  # as the ECR's Registration said
        self._last_status: bytes | None = None
        self._last_receipt: list[str] = []
        self._link: SerialLink | TcpLink | None = None
        # Going silent: at a step of the next payment ("command" before 80 00, "card", "pin",
        # "online" after that status, "status" before the Status-Information, "completion"
        # after it, booked), or now with ``silent = True``; :meth:`speak` ends it.
        self.silent_at: str | None = None
        self.silent = False
        self._deaf_since_silence = False
        self._quiet = threading.Event()  # the loop has seen ``silent`` and reads nothing
        self._heard = threading.Event()  # the loop has dropped what came while it was deaf
        self._serving = False  # the loop runs (over TCP: while a client is connected)
        self._backlog: list[bytes] = []
        self._abort_requested = False

    def _open_link(self) -> SerialLink | TcpLink:  # pragma: no cover - subclasses implement it
        raise NotImplementedError

    def fall_silent(self, timeout: float = 60.0) -> None:
        """Silent now, and only once the loop has seen it: a command it was already reading
        (a thread a loaded machine had not run yet) is answered before, never after."""
        self._quiet.clear()
        self.silent = True
        if not self._quiet.wait(timeout):
            raise TimeoutError(f"the simulated terminal did not fall silent within {timeout} s")

    def speak(self, timeout: float = 60.0) -> None:
        """Answer again, as after a cable plugged back in; what the ECR sent meanwhile is lost.

        Returns once the loop has dropped it (while it serves a line), so what is sent after
        is heard: a frame sent at once was dropped with the rest, and its sender waited T2
        (5 s) to send it again."""
        self._heard.clear()
        self._deaf_since_silence = True
        self.silent = False
        if self._serving and not self._heard.wait(timeout):
            raise TimeoutError(f"the simulated terminal did not listen again within {timeout} s")

    def _goes_silent(self, step: str) -> bool:
        if self.silent_at != step:
            return False
        self.silent_at, self.silent = None, True
        return True

    def read_until_stopped(self, size: int, timeout: float) -> bytes:
        """What the link reads: :meth:`recv` in short waits that end once the device is asked
        to stop. A frame nobody acknowledges is resent for 3 × T2 (§3.5), which kept the
        thread (and so stop()) busy for seconds after stop() was asked."""
        if self.stopping:
            raise _Lost
        return self.recv(size, min(timeout, self.STOP_POLL))

    STOP_POLL = 0.05  # seconds a read waits before it looks at stop() again

    def drain_input(self) -> None:
        """Drop what the ECR has sent and nobody read yet."""
        try:
            while self.recv(4096, 0):
                pass
        except DeviceError:
            pass

    # -- the loop --------------------------------------------------------------------------

    def serve(self) -> None:
        self._serving = True
        try:
            self._serve()
        finally:
            self._serving = False
            self._heard.set()  # nobody waits for a loop that has ended

    def _serve(self) -> None:
        link = self._link = self._open_link()
        self._backlog.clear()  # an earlier connection's commands are not this one's
        while not self.stopping:
            if self.silent:  # reads nothing, answers nothing
                self._quiet.set()
                self._stop.wait(0.05)
                continue
            if self._deaf_since_silence:
                link.discard_input()  # what the ECR sent meanwhile was never heard
                self._backlog.clear()
                self._deaf_since_silence = False
                self._heard.set()
            link.timings = LinkTimings(t2=self.ack_timeout)
            try:
                raw = self._backlog.pop(0) if self._backlog else link.receive(0.1)
            except _Lost:  # stop() was asked while it read
                break
            if raw is None:
                continue
            self._abort_requested = False
            try:
                apdu = decode_apdu(raw)
            except DeviceError:
                continue
            self.received.append(apdu)
            try:
                self._dispatch(apdu)
            except (_Lost, DeviceError):
                pass
            self.phase = "idle"

    def _dispatch(self, apdu: Apdu) -> None:
        handler = {
            (0x06, 0x00): self._registration,
            (0x06, 0x01): lambda a: self._payment(a, "authorisation"),
            (0x06, 0x31): lambda a: self._payment(a, "refund"),
            (0x06, 0x30): self._reversal,
            (0x06, 0x50): self._end_of_day,
            (0x06, 0x20): self._repeat_receipt,
            (0x06, 0x70): self._diagnosis,
            (0x05, 0x01): self._status_enquiry,
        }.get(apdu.control)
        if handler is not None:
            handler(apdu)
        elif apdu.control in ((0x06, 0x02), (0x06, 0xB0)):
            self._answer(Apdu(0x80, 0x00))
        else:
            self._answer(Apdu(0x84, 0x83))  # function not possible

    # -- sending as master -----------------------------------------------------------------

    def _answer(self, apdu: Apdu) -> None:
        assert self._link is not None
        try:
            self._link.send(encode_apdu(apdu))
        except DeviceError as exc:
            raise _Lost from exc

    def _tell(self, apdu: Apdu) -> None:
        """Send a message as master and wait for the ECR's 80 00."""
        self._answer(apdu)
        assert self._link is not None
        deadline = time.monotonic() + self.ack_timeout
        while not self.stopping and (left := deadline - time.monotonic()) > 0:
            raw = self._receive(min(left, 0.1))
            if raw is not None and raw[:1] in (b"\x80", b"\x84"):
                return
            if raw is not None:
                self._while_master(raw)
        raise _Lost

    def _receive(self, timeout: float) -> bytes | None:
        """The ECR's next APDU; a connection that went away (TCP) means the ECR is lost."""
        assert self._link is not None
        try:
            return self._link.receive(timeout)
        except DeviceError as exc:
            raise _Lost from exc

    def _while_master(self, raw: bytes) -> None:
        """A command from the ECR while the terminal is master: only Abort is taken now."""
        if raw[:2] == b"\x06\xb0":
            self._abort_requested = True
            self._answer(Apdu(0x80, 0x00))
        else:
            self._backlog.append(raw)

    def _status(self, code: int) -> None:
        self._tell(Apdu(0x04, 0xFF, bytes([code])))

    def _wait(self, seconds: float) -> bool:
        """Sleep while the card holder acts; True if the ECR sent Abort 06 B0 meanwhile."""
        deadline = time.monotonic() + seconds
        while not self._abort_requested and (left := deadline - time.monotonic()) > 0:
            if self.stopping:
                raise _Lost
            try:
                raw = self._receive(min(left, 0.05))
            except _Lost:  # the ECR's connection dropped: the card holder goes on without it
                self._stop.wait(max(deadline - time.monotonic(), 0.0))
                return False
            if raw is not None:
                self._while_master(raw)
        return self._abort_requested

    def _finish(self, lines: list[str], code: int = 0) -> None:
        self._tell(_text_block(lines))
        if code:
            self._tell(Apdu(0x06, 0x1E, bytes([code])))
        else:
            self._tell(Apdu(0x06, 0x0F, encode_bmp(0x29, bytes.fromhex(self.terminal_id))))

    # -- commands --------------------------------------------------------------------------

    def _registration(self, apdu: Apdu) -> None:
        self._answer(Apdu(0x80, 0x00))
        data = encode_bmp(0x19, b"\x00") + encode_bmp(0x29, bytes.fromhex(self.terminal_id))
        if len(apdu.data) >= 6:
            self.registered_currency = apdu.data[4:6].hex()[1:]
        data += encode_bmp(0x49, bcd_encode(self.currency, 2))  # the one it takes
        self._tell(Apdu(0x06, 0x0F, data))

    def _payment(self, apdu: Apdu, kind: str) -> None:
        fields = apdu.data[3:] if kind == "refund" else apdu.data
        amount = bcd_int(fields[1:7]) if fields[:1] == b"\x04" else 0
        if self._goes_silent("command"):
            return  # never answered, never booked
        self._answer(Apdu(0x80, 0x00))
        asked = fields[8:10].hex() if fields[7:8] == b"\x49" else self.currency
        if asked.lstrip("0") != self.currency.lstrip("0"):  # 2.2.9: 6F and the terminal's own
            self._tell(Apdu(0x06, 0x1E, bytes([WRONG_CURRENCY]) + bcd_encode(self.currency, 2)))
            return
        lost = False
        for phase, code, delay in (
            ("card", INSERT_CARD, self.card_delay),
            ("pin", WATCH_PIN_PAD, self.pin_delay),
            ("online", PLEASE_WAIT, self.online_delay),
        ):
            self.phase = phase
            try:
                if not lost:
                    self._status(code)
            except _Lost:
                lost = True
            lost = self._goes_silent(phase) or lost  # the card holder goes on alone
            if lost:
                self._stop.wait(delay)
            elif self._wait(delay):
                self._tell(Apdu(0x06, 0x1E, bytes([ABORTED])))
                return
        self.phase = "status"
        self._conclude(kind, amount, self._goes_silent("status") or lost)

    def _conclude(self, kind: str, amount: int, lost: bool) -> None:
        code, self.decline_next = self.decline_next or 0, None
        trace, receipt = self._next_numbers(booked=code == 0)
        status = self._status_information(code, amount, trace, receipt)
        lines = _receipt_lines(kind, self._amount_text(amount), trace, receipt, code)
        lines = [line.replace(MASKED_RECEIPT_CARD, self.receipt_card) for line in lines]
        try:
            if lost:
                raise _Lost
            self._tell(Apdu(0x04, 0x0F, status))
        except _Lost:
            if code == 0 and self.book_without_ack:
                self._book(kind, amount, trace, receipt, status, lines)
            raise
        if code == 0:
            self._book(kind, amount, trace, receipt, status, lines)
        if self._goes_silent("completion"):
            raise _Lost
        self._finish(lines, code)

    def _next_numbers(self, booked: bool) -> tuple[int, int]:
        self._trace += 1
        if booked:
            self._receipt += 1
        return self._trace, self._receipt

    def _book(
        self, kind: str, amount: int, trace: int, receipt: int, status: bytes, lines: list[str]
    ) -> None:
        apdu = encode_apdu(Apdu(0x04, 0x0F, status))
        self.journal.append(Booking(kind, amount, trace, receipt, apdu))
        self._last_status, self._last_receipt = apdu, lines

    def _status_information(self, code: int, amount: int, trace: int, receipt: int) -> bytes:
        now = dt.datetime.now(ZoneInfo(self.clock_zone)) if self.clock_zone else dt.datetime.now()
        data = encode_bmp(0x27, bytes([code])) + encode_bmp(0x04, bcd_encode(amount, 6))
        data += encode_bmp(0x0B, bcd_encode(trace, 3))
        data += encode_bmp(0x0C, bytes.fromhex(now.strftime("%H%M%S")))
        data += encode_bmp(0x0D, bytes.fromhex(now.strftime("%m%d")))
        data += encode_bmp(0x29, bytes.fromhex(self.terminal_id))
        data += encode_bmp(0x49, bcd_encode(self.currency, 2))
        if code:
            return data + encode_bmp(0x3C, b"Abgelehnt")
        data += encode_bmp(0x22, self.card_number) + encode_bmp(0x87, bcd_encode(receipt, 2))
        data += encode_bmp(0x3B, f"{trace:06d}".encode() + b"\x00\x00")
        data += encode_bmp(0x8A, b"\x05") + encode_bmp(0x8B, CARD_NAME)
        data += encode_bmp(
            0x06, encode_tlv(0x60, encode_tlv(0x43, bytes.fromhex("A0000003591010")))
        )
        return data

    def _reversal(self, apdu: Apdu) -> None:
        receipt = bcd_int(apdu.data[4:6]) if apdu.data[3:4] == b"\x87" else -1
        batch = self.journal[self._batch_start :]  # after End-of-Day, only a refund (06 31)
        original = next((b for b in batch if b.receipt_number == receipt), None)
        self._answer(Apdu(0x80, 0x00))
        if original is None or receipt in self._reversed or original.kind != "authorisation":
            code = 0xB4 if receipt in self._reversed else 0xB5
            self._tell(Apdu(0x06, 0x1E, bytes([code])))
            return
        self._reversed.add(receipt)
        self._status(PLEASE_WAIT)
        self._conclude("reversal", original.amount_minor, lost=False)

    def _end_of_day(self, apdu: Apdu) -> None:
        """Close the open batch: its total (charges less refunds) and count, per card type."""
        self._answer(Apdu(0x80, 0x00))
        self._status(PLEASE_WAIT)
        batch = self.journal[self._batch_start :]
        charges = [b for b in self.open_batch() if b.kind == "authorisation"]
        refunded = sum(b.amount_minor for b in batch if b.kind == "refund")
        total = sum(b.amount_minor for b in charges) - refunded
        receipts = [b.receipt_number for b in batch] or [0]
        self._trace += 1
        data = encode_bmp(0x27, b"\x00") + encode_bmp(0x04, bcd_encode(max(total, 0), 6))
        data += encode_bmp(0x0B, bcd_encode(self._trace, 3))
        totals = {"girocard": (len(charges), sum(b.amount_minor for b in charges))}
        data += encode_bmp(0x60, encode_individual_totals(min(receipts), max(receipts), totals))
        self._tell(Apdu(0x04, 0x0F, data))
        self._batch_start = len(self.journal)
        self.batches_closed += 1
        self._finish(
            [
                "Kassenschnitt",
                f"Anzahl {len(charges)}",
                f"Summe {self._amount_text(total)}",
                "Kassenschnitt erfolgreich",
            ]
        )

    def book_without_ecr(self, amount_minor: int) -> Booking:
        """An approved authorisation booked as if at the terminal alone (benchmarks, tests)."""
        trace, receipt = self._next_numbers(booked=True)
        status = self._status_information(0, amount_minor, trace, receipt)
        lines = _receipt_lines("authorisation", self._amount_text(amount_minor), trace, receipt, 0)
        self._book("authorisation", amount_minor, trace, receipt, status, lines)
        return self.journal[-1]

    def _amount_text(self, amount_minor: int) -> str:
        code, decimals = CURRENCIES.get(self.currency, (self.currency, 2))
        return f"{code} {amount_minor / 10**decimals:.{decimals}f}"

    def open_batch(self) -> list[Booking]:
        """The bookings since the last End-of-Day, without reversed authorisations."""
        return [
            b
            for b in self.journal[self._batch_start :]
            if b.kind != "reversal" and b.receipt_number not in self._reversed
        ]

    def _repeat_receipt(self, apdu: Apdu) -> None:
        self._answer(Apdu(0x80, 0x00))
        if self._last_status is None:
            self._tell(Apdu(0x06, 0x0F))
            return
        last = decode_apdu(self._last_status)
        self._tell(last)
        self._finish(["Belegwiederholung", *self._last_receipt])

    def _diagnosis(self, apdu: Apdu) -> None:
        self._answer(Apdu(0x80, 0x00))
        self._status(PLEASE_WAIT)
        self._tell(Apdu(0x06, 0x0F, encode_bmp(0x29, bytes.fromhex(self.terminal_id))))

    def _status_enquiry(self, apdu: Apdu) -> None:
        self._answer(Apdu(0x80, 0x00))
        version = b"KASSA-SIM 1.0"
        self._tell(
            Apdu(
                0x06,
                0x0F,
                bytes.fromhex(f"F0F{len(version) // 10}F{len(version) % 10}") + version + b"\x00",
            )
        )


class ZvtSimulator(_Terminal, PtyDevice):
    """A terminal on a pty, RS-232 framed (PA00P016 §3); a driver opens :attr:`port`."""

    def __init__(
        self, baudrate: int | None = 9600, seed: int = 0, *, terminal_id: str = "29001234"
    ) -> None:
        super().__init__(baudrate, seed)
        self._init_terminal(terminal_id)
        self.nak_storm = 0

    def _open_link(self) -> SerialLink:
        return _TerminalLink(self)


class ZvtTcpSimulator(_Terminal, TcpDevice):
    """A terminal on its LAN port: plain APDUs over TCP (PA00P016 §4.1), one ECR at a time.

    ``listen_port`` 0 picks a free port (real terminals use 20007); :attr:`port` is the
    pyserial URL ``socket://127.0.0.1:<port>`` for :class:`drivers.transport.Transport`.
    """

    def __init__(
        self,
        listen_port: int = 0,
        seed: int = 0,
        *,
        host: str = "127.0.0.1",
        terminal_id: str = "29001234",
    ) -> None:
        super().__init__(seed, host=host, listen_port=listen_port)
        self._init_terminal(terminal_id)

    def _open_link(self) -> TcpLink:
        return TcpLink(self.recv, self.send, LinkTimings(t2=self.ack_timeout), self.drain_input)

    @property
    def nak_storm(self) -> int:
        return 0

    @nak_storm.setter
    def nak_storm(self, value: int) -> None:
        if value:
            raise ValueError("nak_storm: ZVT over TCP has no ACK/NAK to refuse (PA00P016 §4.1)")


def _text_block(lines: list[str]) -> Apdu:
    """Print Text-Block 06 D3: TLV 25 with 07 text lines and 09 81 after the last (§3.6)."""
    content = b"".join(encode_tlv(0x07, line.encode("cp437")) for line in lines)
    content += encode_tlv(0x09, b"\x81")
    return Apdu(0x06, 0xD3, encode_bmp(0x06, encode_tlv(0x25, content)))


def _receipt_lines(kind: str, amount: str, trace: int, receipt: int, code: int) -> list[str]:
    title = {"authorisation": "Zahlung", "refund": "Gutschrift", "reversal": "Storno"}[kind]
    lines = [f"** {title} **", f"Betrag {amount}", f"Trace-Nr. {trace:06d}"]
    if code:
        return [*lines, "Zahlung abgelehnt"]
    return [*lines, f"Beleg-Nr. {receipt:04d}", MASKED_RECEIPT_CARD, "Zahlung erfolgt"]
