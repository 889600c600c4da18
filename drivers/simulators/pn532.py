"""A PN532 on HSU, as a reader sees it: ACKs, answers and a tag you can put in its field.

It speaks the chip side of UM0701-02: every valid command frame is ACKed; GetFirmwareVersion,
SAMConfiguration, InListPassiveTarget (106 kbps type A), InDataExchange, InDeselect and
InRelease are answered; any other command gets the error frame. InListPassiveTarget waits, as
the chip does, until a tag is :meth:`Pn532Simulator.present`-ed or the host aborts with an ACK.
A NACK brings the last response again. Every command and APDU received is recorded.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from dataclasses import dataclass

from drivers.errors import DecodeError
from drivers.pn532 import emv, frames
from drivers.pn532.frames import Ack, Frame, InformationFrame, Nack
from drivers.simulators.base import PtyDevice

log = logging.getLogger(__name__)

FIRMWARE = bytes([0x32, 0x01, 0x06, 0x07])  # IC PN532, v1.6, ISO 14443 A+B and ISO 18092
WITH_STATUS = frozenset({0x40, 0x42, 0x44, 0x52})  # commands whose response starts with Status
STATUS_NOT_IN_CONTEXT = 0x27
STATUS_TIMEOUT = 0x01


@dataclass(frozen=True, slots=True)
class SimulatedTag:
    """A type A tag: what anticollision reveals, and the FCI it answers SELECT PPSE with."""

    name: str
    uid: bytes
    sens_res: bytes
    sel_res: int
    ats: bytes = b""
    ppse_fci: bytes | None = None  # ISO-DEP only; the response without SW1 SW2
    # A phone: a fresh random UID (08 xx xx xx) at every anticollision instead of ``uid``.
    random_uid: bool = False
    member_id: str | None = None  # Kassa's loyalty application answers with this id


def _tlv(tag: str, value: bytes) -> bytes:
    return bytes.fromhex(tag) + bytes([len(value)]) + value


def _directory_entry(aid: str, label: str, priority: int) -> bytes:
    return _tlv(
        "61",
        _tlv("4F", bytes.fromhex(aid)) + _tlv("50", label.encode()) + _tlv("87", bytes([priority])),
    )


def payment_fci(*applications: tuple[str, str]) -> bytes:
    """A PPSE FCI (EMV Book B §3.3): 6F{84 name, A5{BF0C{61{4F aid, 50 label, 87 prio}…}}}."""
    entries = b"".join(
        _directory_entry(aid, label, i) for i, (aid, label) in enumerate(applications, 1)
    )
    return _tlv("6F", _tlv("84", emv.PPSE_NAME) + _tlv("A5", _tlv("BF0C", entries)))


NTAG215 = SimulatedTag("ntag", bytes.fromhex("04A2249A8C5B80"), b"\x00\x44", 0x00)
CLASSIC_1K = SimulatedTag("classic", bytes.fromhex("924C5227"), b"\x00\x04", 0x08)
PAYMENT_CARD = SimulatedTag(
    "payment",
    bytes.fromhex("08B5E7A1"),  # random UID (first byte 08), as payment cards use
    b"\x00\x04",
    0x20,
    ats=bytes.fromhex("067577810280"),  # TL 06, T0 75, TA 77, TB 81, TC 02, historical 80
    # girocard's AID is A0 00 00 03 59 10 10 02 80 01 (Deutsche Kreditwirtschaft)
    ppse_fci=payment_fci(("A0000000031010", "VISA DEBIT"), ("A0000003591010028001", "GIROCARD")),
)
PHONE = SimulatedTag(
    "phone",
    bytes.fromhex("08D1E2F3"),
    b"\x00\x08",
    0x20,
    ats=bytes.fromhex("0578807002"),
    ppse_fci=payment_fci(("A0000000041010", "MASTERCARD")),
)
#: A phone in the customer's hand: a new random UID at each tap, a wallet card, no loyalty app.
RANDOM_PHONE = SimulatedTag(
    "random-phone",
    bytes.fromhex("08000000"),
    b"\x00\x04",
    0x20,
    ats=bytes.fromhex("0578807002"),
    ppse_fci=payment_fci(("A0000000041010", "MASTERCARD")),
    random_uid=True,
)
#: The same kind of phone with Kassa's loyalty card in its wallet: member id M-1042.
LOYALTY_PHONE = dataclasses.replace(RANDOM_PHONE, name="loyalty-phone", member_id="M-1042")
TAGS: dict[str, SimulatedTag] = {
    tag.name: tag for tag in (NTAG215, CLASSIC_1K, PAYMENT_CARD, PHONE, RANDOM_PHONE, LOYALTY_PHONE)
}


class Pn532Simulator(PtyDevice):
    """The PN532 side of the HSU link on a pty; knobs: ``nack_next``, ``error_next`` and faults."""

    def __init__(self, baudrate: int | None = 115200, seed: int = 0) -> None:
        super().__init__(baudrate=baudrate, seed=seed)
        self.nack_next = False  # answer the next command with a NACK instead of an ACK
        self.error_next: int | None = None  # status error code for the next status response
        self.commands: list[tuple[int, bytes]] = []  # (command code, params) received
        self.apdus: list[bytes] = []  # data sent to a target with InDataExchange
        self.wake_ups = 0  # 0x55 bytes seen outside frames
        self._lock = threading.Lock()
        self._tag: SimulatedTag | None = None
        self._active: SimulatedTag | None = None  # the tag listed as target 1
        self._waiting_for_tag = False
        self._last_response = b""

    # -- the field --------------------------------------------------------------------------

    def present(self, tag: SimulatedTag) -> None:
        with self._lock:
            self._tag = tag

    def remove(self) -> None:
        with self._lock:
            self._tag = None
            self._active = None

    # -- the loop ---------------------------------------------------------------------------

    def serve(self) -> None:
        while not self.stopping:
            self._answer_waiting_list()
            try:
                frame = self._next_frame()
            except DecodeError as exc:
                log.debug("ignoring a bad frame: %s", exc)  # the chip stays silent
                continue
            if frame is not None:
                self._handle(frame)

    def _next_frame(self) -> Frame | None:
        previous = -1
        while not self.stopping:
            byte = self.recv(1, 0.02)
            if not byte:
                return None
            if byte == b"\x55":
                self.wake_ups += 1
            if previous == 0x00 and byte[0] == 0xFF:
                return frames.read_after_start_code(self._read_exactly)
            previous = byte[0]
        return None

    def _read_exactly(self, size: int) -> bytes:
        data = self.recv_exactly(size, 0.2)
        if data is None:
            raise DecodeError("truncated frame from the host")
        return data

    def _handle(self, frame: Frame) -> None:
        if isinstance(frame, Ack):
            self._waiting_for_tag = False  # abort, UM0701-02 §6.2.1.3
        elif isinstance(frame, Nack):
            if self._last_response:
                self.send(self._last_response)
        elif isinstance(frame, InformationFrame) and frame.tfi == frames.HOST_TO_PN532:
            self._command(frame.code, frame.params)

    def _command(self, code: int, params: bytes) -> None:
        self.commands.append((code, params))
        if self.nack_next:
            self.nack_next = False
            self.send(frames.NACK_BYTES)
            return
        self.send(frames.ACK_BYTES)
        self._waiting_for_tag = False
        if code in WITH_STATUS and self.error_next is not None:
            status, self.error_next = self.error_next, None
            self._reply(code, bytes([status]))
            return
        answer = self._execute(code, params)
        if answer is not None:
            self._reply(code, answer)

    def _reply(self, code: int, params: bytes) -> None:
        self._last_response = frames.response(code + 1, params)
        self.send(self._last_response)

    # -- commands ---------------------------------------------------------------------------

    def _execute(self, code: int, params: bytes) -> bytes | None:
        if code == 0x02:
            return FIRMWARE
        if code == 0x14:
            return b""
        if code == 0x4A:
            return self._list_passive_target(params)
        if code == 0x40:
            return self._data_exchange(params)
        if code in (0x44, 0x52):
            with self._lock:
                self._active = None
            return b"\x00"
        self._last_response = frames.ERROR_BYTES
        self.send(frames.ERROR_BYTES)
        return None

    def _list_passive_target(self, params: bytes) -> bytes | None:
        if len(params) < 2 or params[1] != 0x00:
            return b"\x00"  # only type A tags here
        with self._lock:
            tag = self._tag
            self._active = tag
        if tag is None:
            self._waiting_for_tag = True
            return None
        return b"\x01" + self.target_data(self._as_seen(tag))

    def _answer_waiting_list(self) -> None:
        if not self._waiting_for_tag:
            return
        with self._lock:
            tag = self._tag
            self._active = tag
        if tag is not None:
            self._waiting_for_tag = False
            self._reply(0x4A, b"\x01" + self.target_data(self._as_seen(tag)))

    def _as_seen(self, tag: SimulatedTag) -> SimulatedTag:
        """The tag as this anticollision sees it: a phone draws a new random UID each time."""
        if not tag.random_uid:
            return tag
        uid = bytes([0x08]) + bytes(self.random.getrandbits(8) for _ in range(3))
        return dataclasses.replace(tag, uid=uid)

    @staticmethod
    def target_data(tag: SimulatedTag, tg: int = 1) -> bytes:
        """Tg, SENS_RES, SEL_RES, NFCIDLength, NFCID1, ATS (UM0701-02 §7.3.5, 106 kbps A)."""
        return bytes([tg]) + tag.sens_res + bytes([tag.sel_res, len(tag.uid)]) + tag.uid + tag.ats

    def _data_exchange(self, params: bytes) -> bytes:
        if not params or params[0] != 1:
            return bytes([STATUS_NOT_IN_CONTEXT])  # only target 1 is ever listed
        apdu = params[1:]
        self.apdus.append(apdu)
        with self._lock:
            tag = self._active if self._active is self._tag else None
        if tag is None:
            return bytes([STATUS_TIMEOUT])  # no target listed, or it left the field
        if tag.ppse_fci is not None:
            if apdu == emv.SELECT_PPSE:
                return b"\x00" + tag.ppse_fci + emv.SW_OK
            if apdu == emv.select_by_aid(emv.LOYALTY_AID) and tag.member_id is not None:
                fci = _tlv(
                    "6F",
                    _tlv("84", emv.LOYALTY_AID) + _tlv("A5", _tlv("C0", tag.member_id.encode())),
                )
                return b"\x00" + fci + emv.SW_OK
            return b"\x00\x6a\x82"  # SW 6A 82: file or application not found
        if tag.sel_res == 0x00 and apdu[:1] == b"\x30":  # Ultralight READ: 4 blank pages
            return b"\x00" + bytes(16)
        return bytes([STATUS_TIMEOUT])
