"""The NFC reader at the till: a PN532 that finds a tag and says what it is.

=======================  ========================  ===========================================
Method                   PN532 command             What it gives
=======================  ========================  ===========================================
``wake_up``              HSU wake-up preamble      the chip out of power-down
``sam_configuration``    SAMConfiguration (14)     normal mode, no SAM (needed after wake-up)
``firmware_version``     GetFirmwareVersion (02)   IC, version, revision, supported protocols
``list_passive_target``  InListPassiveTarget (4A)  one 106 kbps type A target, or None
``exchange``             InDataExchange (40)       a target's answer to one APDU or command
``release``              InRelease (52)            the target let go
``poll``                 all of the above          a :class:`TagEvent`
=======================  ========================  ===========================================

Only ISO/IEC 14443 type A at 106 kbps (BrTy 00) is polled: MIFARE Classic, Ultralight/NTAG,
payment cards and phones. For ISO-DEP targets :meth:`NfcReader.poll` sends SELECT PPSE (to
name the payment applications) and SELECT of Kassa's loyalty application (for a member id),
nothing else.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import NamedTuple

from drivers.errors import DecodeError, ProtocolError
from drivers.pn532 import emv
from drivers.pn532.frames import ERR
from drivers.pn532.protocol import Link, NoResponse
from drivers.transport import Transport

log = logging.getLogger(__name__)

BRTY_106_TYPE_A = 0x00
SAK_ISO_DEP = 0x20  # SEL_RES bit 6: ISO/IEC 14443-4 compliant (ISO/IEC 14443-3 §6.5.3.4)
RANDOM_UID0 = 0x08  # a single-size NFCID1 starting 08 is a random ID (ISO/IEC 14443-3 §6.4.4)
#: SEL_RES of the MIFARE Classic family (NXP AN10833, table 4): Mini, 1K, 2K, 4K, 1K Infineon.
SAK_CLASSIC = frozenset({0x09, 0x08, 0x19, 0x18, 0x88})


class FirmwareVersion(NamedTuple):
    """GetFirmwareVersion (UM0701-02 §7.2.2): a PN532 says IC 0x32."""

    ic: int
    ver: int
    rev: int
    support: int  # bit 0 ISO/IEC 14443 type A, bit 1 type B, bit 2 ISO 18092


@dataclass(frozen=True, slots=True)
class Target:
    """One target of an InListPassiveTarget response at 106 kbps type A (UM0701-02 §7.3.5)."""

    tg: int
    sens_res: bytes  # ATQA, as the PN532 sends it
    sel_res: int  # SAK
    uid: bytes  # NFCID1
    ats: bytes = b""  # with its length byte TL, only for ISO-DEP targets

    @property
    def kind(self) -> str:
        return tag_kind(self.sens_res, self.sel_res)


@dataclass(frozen=True, slots=True)
class TagEvent:
    """A tag presented at the till, with only what is safe to keep."""

    uid: bytes
    kind: str  # "mifare_classic", "mifare_ultralight/ntag", "iso_dep" or "unknown"
    sens_res: bytes
    sel_res: int
    ats: bytes = b""
    applications: tuple[tuple[str, str], ...] = ()  # (AID hex, label), ISO-DEP only
    member_id: str | None = None  # from Kassa's loyalty application, ISO-DEP only

    @property
    def random_uid(self) -> bool:
        """The UID changes at every tap (phones, most bank cards): it never names anyone."""
        return uid_is_random(self.uid)


def uid_is_random(uid: bytes) -> bool:
    """A 4-byte NFCID1 whose first byte is 08 is generated afresh for each anticollision."""
    return len(uid) == 4 and uid[0] == RANDOM_UID0


def tag_kind(sens_res: bytes, sel_res: int) -> str:
    """What a type A tag is, by SAK (then ATQA), following NXP AN10833."""
    if sel_res & SAK_ISO_DEP:
        return "iso_dep"
    if sel_res in SAK_CLASSIC:
        return "mifare_classic"
    if sel_res == 0x00 and sens_res[-1:] == b"\x44":
        return "mifare_ultralight/ntag"
    return "unknown"


def parse_targets(params: bytes) -> list[Target]:
    """The targets of an InListPassiveTarget response (the bytes after D5 4B), type A only."""
    if not params:
        raise DecodeError("InListPassiveTarget response without NbTg")
    count, position, targets = params[0], 1, []
    for _ in range(count):
        target, position = _parse_target(params, position)
        targets.append(target)
    if position != len(params):
        raise DecodeError(f"{len(params) - position} byte(s) left after {count} target(s)")
    return targets


def _parse_target(params: bytes, position: int) -> tuple[Target, int]:
    if position + 5 > len(params):
        raise DecodeError("InListPassiveTarget target data is truncated")
    tg, sens_res, sel_res = (
        params[position],
        params[position + 1 : position + 3],
        params[position + 3],
    )
    uid_length = params[position + 4]
    position += 5
    uid = params[position : position + uid_length]
    position += uid_length
    if len(uid) != uid_length:
        raise DecodeError(f"NFCID1 announced {uid_length} bytes, got {len(uid)}")
    ats = b""
    if sel_res & SAK_ISO_DEP and position < len(params):
        ats = params[position : position + params[position]]  # TL counts itself
        if len(ats) != params[position] or not ats:
            raise DecodeError(f"ATS announced {params[position]} bytes, got {len(ats)}")
        position += len(ats)
    return Target(tg, bytes(sens_res), sel_res, bytes(uid), bytes(ats)), position


def status_error(status: int) -> str | None:
    """The sentence for a status byte's error code (bits 0–5), or None for success."""
    code = status & 0x3F
    if code == 0:
        return None
    return f"PN532 error 0x{code:02X}: {ERR.get(code, 'unknown error code')}"


class NfcReader:
    """A PN532 NFC reader on a serial line (HSU at 115200 baud by default)."""

    def __init__(self, transport: Transport, *, link: Link | None = None) -> None:
        self.transport = transport
        self.link = link or Link(transport)

    def wake_up(self) -> None:
        self.link.wake_up()

    def sam_configuration(self, mode: int = 1, timeout: int = 0, irq: bool = False) -> None:
        """SAMConfiguration (UM0701-02 §7.2.10); mode 1 is normal mode (no SAM)."""
        self.link.command(0x14, bytes([mode, timeout, int(irq)]))

    def firmware_version(self) -> FirmwareVersion:
        params = self.link.command(0x02)
        if len(params) != 4:
            raise ProtocolError(f"GetFirmwareVersion answered {len(params)} bytes, expected 4")
        return FirmwareVersion(*params)

    def begin(self) -> FirmwareVersion:
        """Wake the chip, configure it for reading and return its firmware version."""
        self.wake_up()
        self.sam_configuration()
        return self.firmware_version()

    def list_passive_target(self, timeout: float = 1.0) -> Target | None:
        """The one type A target in the field, or None when none came within ``timeout``."""
        try:
            params = self.link.command(0x4A, bytes([1, BRTY_106_TYPE_A]), timeout=timeout)
        except NoResponse:
            return None  # no tag came: the command was aborted with an ACK
        targets = parse_targets(params)
        return targets[0] if targets else None

    def exchange(self, tg: int, data: bytes, timeout: float = 1.0) -> bytes:
        """Send ``data`` (an APDU for ISO-DEP) to target ``tg``; return the target's answer."""
        params = self.link.command(0x40, bytes([tg]) + data, timeout=timeout)
        if not params:
            raise ProtocolError("InDataExchange response without a status byte")
        problem = status_error(params[0])
        if problem:
            raise ProtocolError(problem)
        return params[1:]

    def release(self, tg: int) -> None:
        params = self.link.command(0x52, bytes([tg]))
        problem = status_error(params[0]) if params else "InRelease without a status byte"
        if problem:
            raise ProtocolError(problem)

    def poll(self, timeout: float = 1.0) -> TagEvent | None:
        """Wait up to ``timeout`` seconds for a tag; describe it, then release it."""
        target = self.list_passive_target(timeout)
        if target is None:
            return None
        applications: tuple[tuple[str, str], ...] = ()
        member_id = None
        if target.kind == "iso_dep":
            applications = self._payment_applications(target.tg)
            member_id = self._member_id(target.tg)
        try:
            self.release(target.tg)
        except ProtocolError as exc:  # the tag left the field already
            log.info("releasing target %d: %s", target.tg, exc)
        return TagEvent(
            target.uid,
            target.kind,
            target.sens_res,
            target.sel_res,
            target.ats,
            applications,
            member_id,
        )

    def _member_id(self, tg: int) -> str | None:
        try:
            return emv.loyalty_member_id(self.exchange(tg, emv.select_by_aid(emv.LOYALTY_AID)))
        except ProtocolError as exc:
            log.info("no loyalty application on target %d: %s", tg, exc)
            return None

    def _payment_applications(self, tg: int) -> tuple[tuple[str, str], ...]:
        try:
            return emv.ppse_applications(self.exchange(tg, emv.SELECT_PPSE))
        except ProtocolError as exc:  # DecodeError included: a status word, a bad FCI
            log.info("no payment applications from target %d: %s", tg, exc)
            return ()
