"""NfcReader against the PN532 simulator over a real pty, plus response parsing vectors.

Sources, cited next to each vector:
- UM0701-02: NXP PN532 User Manual Rev. 02 (§7.3.5 InListPassiveTarget response layout).
- nfcpy: github.com/nfcpy/nfcpy, ``tests/base_clf_pn53x.py``.
- nfc-experiments: github.com/AndreMiras/nfc-experiments, ``README.md`` (list_targets.py run).
- nfcTest: github.com/vfrc2/nfcTest, ``nfc-reader/Untitled-1.md`` (libnfc nfc-list output).
- NFCopy: github.com/salmg/NFCopy, ``NFCopy85/NFCopy85.pde`` (``ppse[]``, after TgSetData 8E).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from drivers.errors import (
    DecodeError,
    DeviceDisconnected,
    DeviceError,
    DeviceTimeout,
    ProtocolError,
)
from drivers.pn532 import NfcReader, emv
from drivers.pn532.reader import Target, parse_targets, tag_kind
from drivers.simulators.pn532 import (
    CLASSIC_1K,
    NTAG215,
    PAYMENT_CARD,
    PHONE,
    Pn532Simulator,
    SimulatedTag,
)
from drivers.transport import Transport

# How long a poll may wait for a tag that is in the field: a ceiling for a loaded machine (the
# poll returns as soon as the tag answers), not a speed the reader must meet.
TAG_PRESENT = 30.0


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


@pytest.fixture
def sim() -> Iterator[Pn532Simulator]:
    simulator = Pn532Simulator()
    simulator.start()
    yield simulator
    simulator.stop()


@pytest.fixture
def reader(sim: Pn532Simulator) -> Iterator[NfcReader]:
    transport = Transport(sim.port, baudrate=115200).open()
    yield NfcReader(transport)
    transport.close()


# -- parsing published InListPassiveTarget responses -----------------------------------------


def test_classic_target_nfc_experiments() -> None:
    # nfc-experiments README.md: "response: D5 4B 01 01 00 04 08 04 92 4C 52 27"
    (target,) = parse_targets(hx("01 01 00 04 08 04 92 4C 52 27"))
    assert target == Target(1, hx("00 04"), 0x08, hx("92 4C 52 27"))
    assert target.kind == "mifare_classic"


def test_ultralight_target_nfcpy() -> None:
    # nfcpy base_clf_pn53x.py TestDevice.test_sense_tta_target_is_tt2:
    # RSP('4B 0101004400070416c6c2d73881')
    (target,) = parse_targets(hx("0101004400070416c6c2d73881"))
    assert (target.sens_res, target.sel_res) == (hx("00 44"), 0x00)
    assert target.uid == hx("04 16 C6 C2 D7 38 81")
    assert target.kind == "mifare_ultralight/ntag"


def test_nfc_dep_target_nfcpy_is_not_iso_dep() -> None:
    # nfcpy base_clf_pn53x.py TestDevice.test_sense_tta_target_is_dep: SEL_RES 40 (NFC-DEP only)
    (target,) = parse_targets(hx("0101004440070416c6c2d73881"))
    assert target.sel_res == 0x40 and target.ats == b"" and target.kind == "unknown"


def test_iso_dep_target_with_ats() -> None:
    # nfcTest Untitled-1.md, an Android phone by libnfc: ATQA 03 08, UID 01 02 03 04, SAK 20,
    # ATS 78 80 70 00; the PN532 puts the ATS after NFCID1 with its length byte TL (UM0701-02
    # §7.3.5), so TL = 05.
    (target,) = parse_targets(hx("01 01 0308 20 04 01020304 05 78807000"))
    assert target.ats == hx("05 78 80 70 00") and target.kind == "iso_dep"


@pytest.mark.parametrize(
    "params", ["", "01 01 0044", "01 01 0044 00 07 0416c6", "01 01 0004 20 04 01020304 09 78"]
)
def test_truncated_target_data_is_a_decode_error(params: str) -> None:
    with pytest.raises(DecodeError):
        parse_targets(hx(params))


@pytest.mark.parametrize(
    ("sens_res", "sel_res", "kind"),
    [("0004", 0x08, "mifare_classic"), ("0002", 0x18, "mifare_classic"),
     ("0044", 0x00, "mifare_ultralight/ntag"), ("0004", 0x20, "iso_dep"),
     ("0004", 0x28, "iso_dep"), ("0044", 0x04, "unknown")],
)  # fmt: skip
def test_tag_kind_by_sak_and_atqa(sens_res: str, sel_res: int, kind: str) -> None:
    assert tag_kind(hx(sens_res), sel_res) == kind  # NXP AN10833, table 4


def test_ppse_fci_nfcopy() -> None:
    # NFCopy NFCopy85.pde ppse[] after the TgSetData code 8E: a Visa PPSE answer, no label
    fci = hx(
        "6F 23 84 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 A5 11 BF 0C 0E 61 0C"
        " 4F 07 A0 00 00 00 03 10 10 87 01 01 90 00"
    )
    assert emv.ppse_applications(fci) == (("A0000000031010", ""),)


def test_ppse_not_found_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="6A 82"):
        emv.ppse_applications(hx("6A 82"))


def test_select_ppse_apdu() -> None:
    assert emv.SELECT_PPSE == hx("00 A4 04 00 0E 32 50 41 59 2E 53 59 53 2E 44 44 46 30 31 00")


# -- the reader against the simulator -------------------------------------------------------


def test_wake_up_sam_configuration_and_firmware(sim: Pn532Simulator, reader: NfcReader) -> None:
    assert reader.begin() == (0x32, 0x01, 0x06, 0x07)
    assert sim.wake_ups == 2
    # nfcpy test_clf_pn532.py TestChipset.test_sam_configuration: CMD('14 01 00 00')
    assert sim.commands == [(0x14, hx("01 00 00")), (0x02, b"")]


@pytest.mark.parametrize("tag", [NTAG215, CLASSIC_1K, PAYMENT_CARD, PHONE], ids=lambda t: t.name)
def test_list_passive_target_each_tag(
    sim: Pn532Simulator, reader: NfcReader, tag: SimulatedTag
) -> None:
    sim.present(tag)
    target = reader.list_passive_target(timeout=TAG_PRESENT)
    assert target == Target(1, tag.sens_res, tag.sel_res, tag.uid, tag.ats)
    assert sim.commands == [(0x4A, hx("01 00"))]  # MaxTg 1, BrTy 00 (106 kbps type A)


def test_simulated_classic_speaks_the_published_bytes() -> None:
    # nfc-experiments README.md: D5 4B 01 | 01 00 04 08 04 92 4C 52 27
    assert Pn532Simulator.target_data(CLASSIC_1K) == hx("01 00 04 08 04 92 4C 52 27")


@pytest.mark.parametrize(
    ("tag", "kind", "uid_length"),
    [(NTAG215, "mifare_ultralight/ntag", 7), (CLASSIC_1K, "mifare_classic", 4)],
)
def test_poll_memory_tags_sends_no_apdu(
    sim: Pn532Simulator, reader: NfcReader, tag: SimulatedTag, kind: str, uid_length: int
) -> None:
    sim.present(tag)
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None
    assert (event.kind, len(event.uid), event.applications) == (kind, uid_length, ())
    assert sim.apdus == []
    assert [code for code, _ in sim.commands] == [0x4A, 0x52]  # list, then InRelease


def test_poll_payment_card_reads_labels_and_nothing_else(
    sim: Pn532Simulator, reader: NfcReader
) -> None:
    sim.present(PAYMENT_CARD)
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None and event.kind == "iso_dep"
    assert event.applications == (
        ("A0000000031010", "VISA DEBIT"),
        ("A0000003591010028001", "GIROCARD"),
    )
    assert event.ats == PAYMENT_CARD.ats and event.sel_res == 0x20
    # SELECT PPSE, then SELECT of Kassa's loyalty application, which a bank card lacks (6A 82)
    assert sim.apdus == [emv.SELECT_PPSE, emv.select_by_aid(emv.LOYALTY_AID)]
    assert event.member_id is None
    instructions = {(apdu[0], apdu[1]) for apdu in sim.apdus}
    assert (0x00, 0xB2) not in instructions  # READ RECORD
    assert (0x80, 0xA8) not in instructions  # GET PROCESSING OPTIONS


def test_simulated_card_refuses_anything_but_ppse(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.present(PAYMENT_CARD)
    target = reader.list_passive_target(timeout=TAG_PRESENT)
    assert target is not None
    assert reader.exchange(target.tg, hx("00 A4 04 00 07 A0000000031010 00")) == hx("6A 82")


def test_no_tag_returns_none_within_the_timeout(sim: Pn532Simulator, reader: NfcReader) -> None:
    started = time.monotonic()
    assert reader.poll(timeout=0.2) is None
    assert time.monotonic() - started < 10  # gave up rather than waited on (generous: load)
    sim.present(CLASSIC_1K)  # the aborted command left nothing behind
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None and event.uid == CLASSIC_1K.uid


def test_tag_arriving_while_waiting(sim: Pn532Simulator, reader: NfcReader) -> None:
    threading.Timer(0.1, sim.present, args=(NTAG215,)).start()
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None and event.uid == NTAG215.uid


def test_nack_then_resend(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.nack_next = True
    assert reader.firmware_version().ic == 0x32
    assert sim.commands == [(0x02, b""), (0x02, b"")]


def test_garbage_before_frames_is_skipped(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.garbage_before = hx("DE AD 55 00 BE EF")
    sim.present(PAYMENT_CARD)
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None and event.applications[0] == ("A0000000031010", "VISA DEBIT")


def test_response_delay_within_limits(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.response_delay = 0.03
    assert reader.firmware_version().rev == 6


def test_dropped_bytes_time_out_after_retries(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.drop_probability = 1.0
    with pytest.raises(DeviceTimeout, match="did not acknowledge GetFirmwareVersion"):
        reader.firmware_version()
    assert sim.commands == [(0x02, b"")] * (reader.link.retries + 1)
    sim.drop_probability = 0.0
    assert reader.firmware_version().ver == 1


def test_each_resend_waits_longer_for_a_slow_line(sim: Pn532Simulator) -> None:
    """Every reply comes 0.7 s late: three equal 0.2 s waits (0.6 s) would give up, but the
    third wait of 0.2 s, 0.4 s, 0.8 s (0.6 s to 1.4 s) hears the first command's late ACK."""
    from drivers.pn532.protocol import Link

    sim.response_delay = 0.7
    with Transport(sim.port, baudrate=115200) as line:
        link = Link(line, ack_timeout=0.2)
        assert link.command(0x02, timeout=5.0) == bytes([0x32, 0x01, 0x06, 0x07])
    assert sim.commands[0] == (0x02, b"")


def test_a_network_line_waits_longer_for_the_first_ack() -> None:
    from drivers.pn532.protocol import LOCAL_ACK_TIMEOUT, NETWORK_ACK_TIMEOUT, Link

    assert NETWORK_ACK_TIMEOUT > LOCAL_ACK_TIMEOUT
    for url in ("socket://127.0.0.1:9", "rfc2217://127.0.0.1:9"):
        assert Link(Transport(url)).ack_timeout == NETWORK_ACK_TIMEOUT
    assert Link(Transport("/dev/ttyUSB0")).ack_timeout == LOCAL_ACK_TIMEOUT


def test_reader_recovers_from_a_lossy_line(sim: Pn532Simulator, reader: NfcReader) -> None:
    sim.drop_probability = 0.03
    outcomes = []
    for _ in range(15):
        try:
            outcomes.append(reader.firmware_version())
        except DeviceError as exc:
            outcomes.append(exc)
    assert any(isinstance(o, tuple) for o in outcomes)
    sim.drop_probability = 0.0
    assert reader.firmware_version() == (0x32, 1, 6, 7)


def test_status_error_is_a_protocol_error_with_the_sentence(
    sim: Pn532Simulator, reader: NfcReader
) -> None:
    sim.present(PAYMENT_CARD)
    target = reader.list_passive_target(timeout=TAG_PRESENT)
    assert target is not None
    sim.error_next = 0x01
    with pytest.raises(ProtocolError, match=r"0x01: Time out, the target has not answered\."):
        reader.exchange(target.tg, emv.SELECT_PPSE)


def test_error_status_during_poll_leaves_no_applications(
    sim: Pn532Simulator, reader: NfcReader
) -> None:
    sim.present(PAYMENT_CARD)
    sim.error_next = 0x13
    event = reader.poll(timeout=TAG_PRESENT)
    assert event is not None and event.kind == "iso_dep" and event.applications == ()


def test_error_frame_is_a_protocol_error(reader: NfcReader) -> None:
    with pytest.raises(ProtocolError, match="error frame"):
        reader.link.command(0x04)  # GetGeneralStatus: the simulator answers the error frame


def test_unplug_raises_device_disconnected(sim: Pn532Simulator, reader: NfcReader) -> None:
    assert reader.firmware_version().ic == 0x32
    sim.unplug()
    with pytest.raises(DeviceDisconnected):
        for _ in range(3):
            reader.firmware_version()
