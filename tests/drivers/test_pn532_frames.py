"""PN532 frame codec against published byte vectors.

Sources, cited next to each vector:
- UM0701-02: NXP PN532 User Manual Rev. 02 (§6.2.1 frames, §7.2.2 GetFirmwareVersion).
- nfcpy: github.com/nfcpy/nfcpy, ``tests/base_clf_pn53x.py`` and ``tests/test_clf_pn532.py``
  (their ``CMD``/``RSP`` helpers frame ``D4``/``D5`` + hex exactly as §6.2.1.1 does).
- Embedded_Scrapyard: github.com/martin-eden/Embedded_Scrapyard,
  ``libraries/Adafruit-PN532/README.md`` ("Syntax error respone").
- dart_periphery: github.com/pezi/dart_periphery, ``lib/src/hardware/pn532/constants.dart``.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError
from drivers.pn532 import frames
from drivers.pn532.frames import CMD, ERR, Ack, ErrorFrame, InformationFrame, Nack


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


# -- normal information frames -------------------------------------------------------------


def test_standard_command_frame_nfcpy() -> None:
    # nfcpy tests/base_clf_pn53x.py, TestChipset.test_command_with_standard_frame: cmd
    assert frames.command(0x00, b"123") == hx("0000ff 05fb d4 00 313233 96 00")


def test_standard_response_frame_nfcpy() -> None:
    # nfcpy tests/base_clf_pn53x.py, TestChipset.test_command_with_standard_frame: rsp
    frame = frames.decode(hx("0000ff 05fb d5 01 343536 8b 00"))
    assert frame == InformationFrame(0xD5, 0x01, b"456")
    assert frame.command == 0x00 and frame.name == "Diagnose"


def test_get_firmware_version_um0701_7_2_2() -> None:
    # UM0701-02 §7.2.2: D4 02 → D5 03 32 01 06 07 (IC PN532, v1.6, support 07); framed per
    # §6.2.1.1. The response header 00 00 FF 06 FA D5 is dart_periphery's
    # pn532FirmwareVersions; the payload is nfcpy test_clf_pn532.py TestDevice.device
    # RSP('03 32010607').
    assert frames.command(0x02) == hx("00 00 FF 02 FE D4 02 2A 00")
    response = hx("00 00 FF 06 FA D5 03 32 01 06 07 E8 00")
    assert response.startswith(hx("00 00 FF 06 FA D5"))
    assert frames.response(0x03, hx("32 01 06 07")) == response
    assert frames.decode(response) == InformationFrame(0xD5, 0x03, hx("32 01 06 07"))


def test_sam_configuration_nfcpy() -> None:
    # nfcpy tests/test_clf_pn532.py, TestChipset.test_sam_configuration ("normal", 0, False):
    # CMD('14 01 00 00') answered by RSP('15').
    assert frames.command(0x14, hx("01 00 00")) == hx("0000ff 05 fb d4 14 01 00 00 17 00")
    assert frames.decode(frames.response(0x15)) == InformationFrame(0xD5, 0x15)


def test_in_list_passive_target_command_nfcpy() -> None:
    # nfcpy tests/test_clf_pn532.py, TestDevice.test_sense_tta_target_is_tt2: CMD('4A 0100')
    assert frames.command(0x4A, hx("01 00")) == hx("00 00 FF 04 FC D4 4A 01 00 E1 00")


# -- ACK, NACK, error ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("00 00 FF 00 FF 00", Ack()),  # UM0701-02 §6.2.1.3; nfcpy base_clf_pn53x.py ACK()
        ("00 00 FF FF 00 00", Nack()),  # UM0701-02 §6.2.1.4; nfcpy base_clf_pn53x.py NAK()
        # UM0701-02 §6.2.1.5; nfcpy base_clf_pn53x.py ERR(); Embedded_Scrapyard README
        ("00 00 FF 01 FF 7F 81 00", ErrorFrame()),
    ],
)
def test_sync_and_error_frames(raw: str, expected: frames.Frame) -> None:
    assert frames.decode(hx(raw)) == expected


def test_constants_are_the_manuals_frames() -> None:
    assert frames.ACK_BYTES == hx("00 00 FF 00 FF 00")
    assert frames.NACK_BYTES == hx("00 00 FF FF 00 00")
    assert frames.ERROR_BYTES == hx("00 00 FF 01 FF 7F 81 00")


def test_longer_preamble_and_postamble_are_accepted() -> None:
    # UM0701-02 §6.2.1.6: preamble and postamble may be any number of 00 bytes.
    assert frames.decode(hx("00 00 00 00 FF 00 FF 00 00 00")) == Ack()


# -- extended information frames -----------------------------------------------------------


def test_extended_command_frame_nfcpy() -> None:
    # nfcpy tests/base_clf_pn53x.py, TestChipset.test_command_with_extended_frame
    data = b"123" + bytes(256)
    assert frames.command(0x00, data) == hx("0000ffffff 0105fa d400") + data + hx("9600")
    rsp = hx("0000ffffff 0105fa d501") + b"456" + bytes(256) + hx("8b00")
    assert frames.decode(rsp) == InformationFrame(0xD5, 0x01, b"456" + bytes(256))


def test_short_data_in_an_extended_frame_round_trips() -> None:
    # UM0701-02 §6.2.1.2: the host may use the extended frame for short data too.
    raw = frames.command(0x02, extended=True)
    assert raw == hx("00 00 FF FF FF 00 02 FE D4 02 2A 00")
    assert frames.decode(raw) == InformationFrame(0xD4, 0x02)


def test_too_much_data_is_refused() -> None:
    with pytest.raises(ValueError, match="at most 264"):
        frames.command(0x40, bytes(264))


# -- bad bytes: one clear line each ---------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        # nfcpy base_clf_pn53x.py TestChipset.test_command_std_frame_length_check_error
        ("0000ff 04fb d5 01 343536 8b 00", "bad LCS"),
        # nfcpy base_clf_pn53x.py TestChipset.test_command_ext_frame_length_check_error (head)
        ("0000ffffff 0104fa d501 00", "bad LCS"),
        # nfcpy base_clf_pn53x.py TestChipset.test_command_with_rsp_data_check_error
        ("0000ff 05fb d5 01 343536 8a 00", "bad DCS"),
        # nfcpy base_clf_pn53x.py TestChipset.test_command_with_rsp_frame_id_error
        ("0000ff 05fb d6 01 343536 8a 00", "unknown TFI 0xD6"),
        # nfcpy base_clf_pn53x.py TestChipset.test_command_with_rsp_invalid_sof
        ("000000 05fb d5 01 343536 8b 00", "no start code"),
        # the standard response above, cut short and without its postamble
        ("0000ff 05fb d5 01 3435", "truncated"),
        ("0000ff 05fb d5 01 343536 8b 01", "missing postamble"),
        ("0000ff 05fb d5 01 343536 8b 00 17", "after the frame"),
    ],
)
def test_decode_errors_say_what_is_wrong(raw: str, message: str) -> None:
    with pytest.raises(DecodeError, match=message) as caught:
        frames.decode(hx(raw))
    assert "\n" not in str(caught.value)


def test_nfcpy_length_value_error_is_rejected() -> None:
    # nfcpy base_clf_pn53x.py TestChipset.test_command_std_frame_length_value_error
    with pytest.raises(DecodeError):
        frames.decode(hx("0000ff 05fb d5 01 3435 8b 00"))


# -- the chip's facts as data ---------------------------------------------------------------


def test_cmd_and_err_tables() -> None:
    assert CMD[0x4A] == "InListPassiveTarget" and CMD[0x40] == "InDataExchange"
    assert ERR[0x01].startswith("Time out, the target has not answered")  # UM0701-02 §7.1
    assert ERR[0x14] == "MIFARE: authentication error."
    assert all(sentence.endswith(".") for sentence in ERR.values())


# -- properties ----------------------------------------------------------------------------

tfis = st.sampled_from([frames.HOST_TO_PN532, frames.PN532_TO_HOST])
payloads = st.binary(min_size=1, max_size=frames.MAX_DATA)


@given(tfi=tfis, data=payloads, extended=st.booleans())
def test_encode_decode_round_trip(tfi: int, data: bytes, extended: bool) -> None:
    raw = frames.encode(tfi, data, extended=extended)
    assert frames.decode(raw) == InformationFrame(tfi, data[0], data[1:])
    assert sum(raw[3:5]) & 0xFF == 0 or raw[3:5] == b"\xff\xff"  # LEN + LCS ≡ 0


@given(
    tfi=tfis, data=payloads, extended=st.booleans(), where=st.floats(0, 1), flip=st.integers(1, 255)
)
def test_any_single_byte_corruption_is_detected(
    tfi: int, data: bytes, extended: bool, where: float, flip: int
) -> None:
    raw = bytearray(frames.encode(tfi, data, extended=extended))
    first = 5 if raw[3:5] == b"\xff\xff" else 3  # LEN (or LENM) … postamble
    index = first + int(where * (len(raw) - 1 - first))
    raw[index] ^= flip
    with pytest.raises(DecodeError):
        frames.decode(bytes(raw))
