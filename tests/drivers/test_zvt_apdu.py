"""APDU, BMP and TLV codecs against published ZVT byte strings.

Sources (each vector names its own):
- [SPEC] PA00P015 13.08 "ECR-Interface ZVT-Protocol: Commands, Bitmaps, Error Messages" and
  PA00P016_04 "Transport-Protocol, Application-Protocol" (Verband der Terminalhersteller),
  as published e.g. in github.com/bezahl-online/zvt ``doc/``.
- [PORTALUM] github.com/Portalum/Portalum.Zvt ``src/Portalum.Zvt.UnitTest/`` (captures from
  real terminals: StatusInformationParserTest.cs, ApduHelperTest.cs, PrintLineTest.cs,
  PrintTextBlockTest.cs, IntermediateStatusInformationParserTest.cs, ZvtClientTest.cs).
- [ECRTERM] github.com/wirelane/ecrterm ``ecrterm/tests/`` (test_parsing.py, test_apdu.py,
  test_parsing_abort.py; test_parsing_completion.py at 1290d8d8ad7a2b956895d7d382fc08eed4dadbb5,
  test_parsing_open_reservation_responses.py at 6d5f7b1fa87ce60e2ba9de4895f129ee3ba56cf3).
- [BEZAHL] github.com/bezahl-online/zvt at a6c3f0737a84c3a4ef88d2ba2e85031dbd354d14,
  ``command/testdata/*.hex``: raw APDUs captured from a terminal in the field.
- [PORTALUM@ed877cb] Portalum.Zvt at ed877cb180a626316b4cbd3c91481b48bcd33b31,
  ``src/Portalum.Zvt.UnitTest/ZvtClientTest.cs`` and ``BmpParserTest.cs``.
"""

from __future__ import annotations

import json
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.errors import DecodeError
from drivers.zvt import messages
from drivers.zvt.apdu import (
    Apdu,
    Undecoded,
    bcd_encode,
    decode_apdu,
    decode_bmps,
    encode_apdu,
    encode_bmp,
    header_size,
    mask_pan,
    var_length,
)
from drivers.zvt.codes import result_message, status_message
from drivers.zvt.messages import decode_message, print_lines


def fields(hex_text: str) -> dict[str, object]:
    return decode_message(decode_apdu(bytes.fromhex(hex_text.replace("-", " "))))


# [PORTALUM] StatusInformationParserTest.Parse_PaymentGood1_Successful (a Debit Mastercard)
PAYMENT_GOOD = (
    "04 0F 77 27 00 04 00 00 00 00 20 40 0B 00 04 70 0C 22 39 53 0D 10 06 0E 25 12 17 00 01 19 70"
    " 22 F0 F8 EE EE EE EE EE EE 47 71 29 28 00 48 69 2A 31 30 30 34 36 31 37 36 33 20 20 20 20"
    " 20 20 3B 36 31 31 38 30 34 00 00 3C F0 F1 F4 47 45 4E 2E 4E 52 2E 3A 36 31 31 38 30 34 49"
    " 09 78 87 04 70 88 00 04 70 8A 2E 8B F1 F7 44 65 62 69 74 20 4D 61 73 74 65 72 63 61 72 64 00"
)
# [ECRTERM] test_parsing.py PACKET_LIST[1]: a 04 0F whose BMP 22 carries an unmasked number
UNMASKED_PAN = (
    "04 0F 37 27 00 04 00 00 00 00 40 00 49 09 78 0C 09 38 48 0D 04 25 22 F1 F1 59 66 66 66 66"
    " D2 00 21 22 01 00 17 00 01 87 01 75 0B 61 39 95 19 40 29 60 09 99 14 0E 05 12 8A 02"
)
# [PORTALUM] StatusInformationParserTest.Parse_TlvInfos1_Successful
TLV_INFOS = (
    "04-0F-65-27-00-0C-23-13-55-0D-10-29-0E-99-99-22-F0-F8-EE-EE-EE-EE-EE-EE-47-71-A0-01-29-00-"
    "00-00-06-87-00-08-0B-00-00-00-8A-06-8B-F1-F1-4D-41-53-54-45-52-43-41-52-44-00-06-2E-2F-08-"
    "1F-12-01-02-1F-10-01-00-60-1B-43-07-A0-00-00-00-04-10-10-44-10-44-65-62-69-74-20-4D-61-73-"
    "74-65-72-63-61-72-64-1F-2B-04-10-01-50-08"
)
# [PORTALUM] PrintTextBlockTest (customer receipt; extended length FF 8E 02 = 654 bytes)
TEXT_BLOCK = (
    "06D3FF8E020682028A1F07010225820282071820204C6569687374656C6C756E6720766F6E20686F62657807"
    "16202020202066817220504F5254414C554D20476D6248071220202020202020204865727220546573743107"
    "1520202020205A5654205443502F49502C2044484350071B2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D"
    "2D2D2D2D2D2D2D071B31392E31302E3230323120202020202020202031333A33303A3034071B303030303031"
    "332020202030303034202020202020303030303031071320202020202020204B554E44454E42454C4547071B"
    "2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D2D07125465726D696E616C3A204148303030"
    "303036071142656C65672320203A204830303430303107124C3A2A2A2A2A2A2A2A2A2A2A2A2A303030300713"
    "4149443A20413030303030303030343130313007114B617274653A204D41535445524341524407184170702E"
    "20203A204465626974204D61737465726361726407132020202020202020436F6E746163746C65737307044B"
    "415546070120070553554D4D4507122020202020202020204555523A20312C3030070120071B547261636523"
    "3A202020202020202020202020313030303430303107012007095265666572656E7A3A070120071A20417574"
    "6F726973696572756E6773636F64653A33363736353507112020202020202020202852432030303129071420"
    "20202047656E65686D6967742033363736353507102020202020202030303130303430303107012007192041"
    "563A202B30342E303720284A756E203131203230323129071B54493A20452044543A20302F302F204F463A20"
    "302F302F2043473A070F2020202020202020202020312F302F070120070120070120070120070120090181"
)


def test_status_information_of_an_approved_payment() -> None:
    status = fields(PAYMENT_GOOD)
    assert status["result_code"] == 0
    assert status["amount_minor"] == 2040
    assert status["currency"] == "978"
    assert status["trace_number"] == 470
    assert status["receipt_number"] == 470
    assert status["turnover_number"] == 470
    assert status["terminal_id"] == "28004869"
    assert status["masked_pan"] == "************4771"
    assert status["card_name"] == "Debit Mastercard"
    assert status["additional_text"] == "GEN.NR.:611804"
    assert status["aid"] == "611804"
    assert status["time"] == "22:39:53"
    assert status["date"] == "10-06"
    assert status["expiry_date"] == "2512"
    assert status["card_sequence_number"] == 1
    assert status["payment_type"] == 0x70
    assert status["card_type"] == 0x2E


def test_an_unmasked_card_number_is_masked_before_it_leaves_the_codec() -> None:
    status = fields(UNMASKED_PAN)
    assert status["masked_pan"] == "******6666"  # ten digits: only the last four stay
    assert "5966666666" not in json.dumps(status)
    assert status["amount_minor"] == 4000
    assert status["receipt_number"] == 175
    assert status["trace_number"] == 613995
    assert status["terminal_id"] == "60099914"


@pytest.mark.parametrize(
    ("digits", "masked"),
    [
        ("6799123456780019", "679912******0019"),
        ("4111111111111111", "411111******1111"),
        ("6799****0019", "****" + "****" + "0019"),
    ],
)
def test_mask_pan_keeps_at_most_first_six_and_last_four(digits: str, masked: str) -> None:
    assert mask_pan(digits) == masked


def test_status_information_with_a_tlv_container() -> None:
    status = fields(TLV_INFOS)
    assert status["card_name"] == "MASTERCARD"
    assert status["terminal_id"] == "00000006"
    assert status["result_code_as"] == 1
    tlv = status["tlv"]
    assert isinstance(tlv, dict)
    assert tlv["payment_type"] == {"card_technology": 2, "cardholder_authentication": 0}
    assert tlv["application"]["application_id"] == "A0000000041010"
    assert tlv["application"]["application_preferred_name"] == "Debit Mastercard"
    assert tlv["trace_number_long"] == 10015008


def test_status_information_abort_by_customer() -> None:
    # [PORTALUM] StatusInformationParserTest.Parse_AbortByKey_Successful
    status = fields(
        "04 0F 1E 27 6C 29 28 00 48 69 3C F0 F1 F9 41 62 62 72 75 63 68 20 64 75 72 63 68 20"
        " 4B 75 6E 64 65"
    )
    assert status["result_code"] == 0x6C
    assert status["result_message"] == "abort via timeout or abort-key"
    assert status["additional_text"] == "Abbruch durch Kunde"
    assert status["terminal_id"] == "28004869"


def test_abort_from_the_terminal_with_extended_error() -> None:
    # [ECRTERM] test_parsing_abort.py test_abort_by_external_command
    abort = fields(
        "061e2e6c062b1f1605ff000014411f1720416262727563682064757263682065787465726e6573204b6f"
        "6d6d616e646f21"
    )
    assert abort["result_code"] == 108
    assert abort["tlv"] == {
        "extended_error_code": "FF00001441",
        "extended_error_text": "Abbruch durch externes Kommando!",
    }


def test_completion_after_status_enquiry_carries_the_software_version() -> None:
    # [ECRTERM] test_parsing.py test_version_completion (APDU inside the frame)
    completion = fields("06 0F 0B F0 F0 F7 32 2E 31 34 2E 31 35 00")
    assert completion == {
        "software_version": "2.14.15",
        "terminal_status": 0,
        "terminal_status_text": "PT ready",
    }


def test_intermediate_status_with_display_text() -> None:
    # [ECRTERM] test_parsing.py PACKET_LIST[5]
    status = fields(
        "04 FF 1E 0A 01 06 1A 24 18 07 16 42 69 74 74 65 20 4B 61 72 74 65 20 65 69 6E 73 74"
        " 65 63 6B 65 6E"
    )
    assert status["status"] == 0x0A
    assert status["status_text"] == "Insert card"  # [SPEC] Table 17; [PORTALUM] 0x0A test
    assert status["timeout_minutes"] == 1
    assert status["tlv"] == {"display_texts": {"text_lines": "Bitte Karte einstecken"}}


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (0x0A, "Insert card"),
        (0x0E, "Please wait..."),
        (0x17, "Please wait..."),
        (0x01, "Please watch PIN-Pad"),
        (0x0B, "Please remove card!"),
        (0x4A, "Terminal status 4A"),
    ],
)
def test_intermediate_status_sentences_from_table_17(code: int, sentence: str) -> None:
    assert status_message(code) == sentence  # [SPEC] §3.7 Table 17


@pytest.mark.parametrize(
    ("code", "sentence"),
    [
        (0x6C, "abort via timeout or abort-key"),  # [SPEC] chapter 10
        (0xFF, "system error (other/unknown error), see TLV tags 1F16 and 1F17"),
        (0x64, "card not readable (LRC-/parity-error)"),
        (0x05, "declined by the card issuer or network (host code 05: do not honour)"),
    ],
)
def test_result_codes(code: int, sentence: str) -> None:
    assert result_message(code) == sentence


def test_print_line_in_cp437() -> None:
    # [ECRTERM] test_parsing.py test_text_encoding_default: 84 94 81 E1 are ä ö ü ß in CP437
    assert fields("06d10d005465737420842094208120e1") == {"attribute": 0, "text": "Test ä ö ü ß"}
    # [PORTALUM] PrintLineTest: centred title line
    line = fields("06-D1-14-40-2A-2A-20-4B-41-53-53-45-4E-53-43-48-4E-49-54-54-20-2A-2A")
    assert line == {"attribute": 0x40, "text": "** KASSENSCHNITT **"}


def test_print_line_with_receipt_type_tlv() -> None:
    # [PORTALUM] PrintLineTest.ProcessData_LineReceivedCardCompleteWithTlv_Successful
    line = fields("06-D1-0F-40-52-49-45-44-47-20-35-30-06-04-1F-07-01-01")
    assert line == {"attribute": 0x40, "text": "RIEDG 50", "tlv": {"receipt_type": 1}}


def test_print_text_block_with_extended_length() -> None:
    raw = bytes.fromhex(TEXT_BLOCK)
    assert header_size(raw) == (5, 654)
    lines = print_lines(decode_apdu(raw))
    texts = [text for _, text in lines]
    assert texts[0] == "  Leihstellung von hobex"
    assert "        KUNDENBELEG" in texts
    assert lines[-1] == (0x81, "")  # tag 09: last line of the receipt ([SPEC] §3.6)


def test_extended_length_is_low_byte_first() -> None:
    # [SPEC] PA00P016_04 §5.2.4; [PORTALUM] ApduHelperTest ExtendedLengthField1/2
    assert decode_apdu(bytes.fromhex("04 0F FF 01 00 6C")) == Apdu(0x04, 0x0F, b"\x6c")
    assert header_size(bytes.fromhex("04 0F FF 00 01 6C")) == (5, 256)
    assert header_size(bytes.fromhex("04 0F FF FF FF")) == (5, 65535)
    assert encode_apdu(Apdu(0x06, 0xD3, bytes(300)))[:5] == bytes.fromhex("06 D3 FF 2C 01")
    assert encode_apdu(Apdu(0x06, 0xD3, bytes(254)))[:3] == bytes.fromhex("06 D3 FE")


def test_password_is_three_bytes_bcd() -> None:
    assert bcd_encode("123456", 3) == bytes.fromhex("12 34 56")  # [SPEC] §1.2


def test_llvar_and_lllvar_lengths() -> None:
    # [SPEC] PA00P016_04 §5.2.8: "F0 F3 01 23 45 (F0 F3 means 3 following bytes)"
    assert encode_bmp(0x22, bytes.fromhex("012345")) == bytes.fromhex("22 F0 F3 01 23 45")
    # "F0 F0 F3 01 23 45 (F0 F0 F3 means 3 following bytes)"
    assert encode_bmp(0x3C, b"\x01\x23\x45") == bytes.fromhex("3C F0 F0 F3 01 23 45")
    # "F1 F2 01 23 45 67 89 01 23 45 67 89 01 23": 12 bytes follow
    twelve = bytes.fromhex("22 F1 F2 01 23 45 67 89 01 23 45 67 89 01 23")
    assert decode_bmps(twelve) == {"masked_pan": "012345" + "*" * 14 + "0123"}


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # [SPEC] §2.16.1 "06 50 03 <password>"
        (messages.end_of_day("000000"), "06 50 03 00 00 00"),
        # [SPEC] §2.24 "06 02 00"; [ECRTERM] test_apdu.py test_serialize_simple
        (messages.log_off(), "06 02 00"),
        # [ECRTERM] test_apdu.py test_parse_fixed_with_optional: 06 00 06 98 76 54 41 09 78
        (messages.registration("987654", "978", 0x41), "06 00 06 98 76 54 41 09 78"),
        # [PORTALUM] ZvtClientTest: PaymentAsync(10) sends 06 01 07 04 00 00 00 00 10 00;
        # with the currency BMP 49 09 78 ([SPEC] §2.2.1) the length becomes 0A
        (messages.authorisation(1000), "06 01 0A 04 00 00 00 00 10 00 49 09 78"),
        # [SPEC] §2.9 "06 30 xx <password> 87<receipt-no>"
        (messages.reversal("000000", 42), "06 30 06 00 00 00 87 00 42"),
        # [SPEC] §2.20.1 "06 20 03 <password> [03<service-byte>]"
        (messages.repeat_receipt("000000"), "06 20 05 00 00 00 03 01"),
        (messages.abort(), "06 B0 00"),  # [SPEC] §2.23
        (messages.diagnosis(), "06 70 00"),  # [SPEC] §2.17.1
        (messages.refund("000000", 250), "06 31 0D 00 00 00 04 00 00 00 00 02 50 49 09 78"),
    ],
)
def test_commands_encode_as_the_spec_shows(command: Apdu, expected: str) -> None:
    assert command.encode() == bytes.fromhex(expected)


def test_commands_from_captures_decode() -> None:
    # [ECRTERM] test_parsing.py PACKET_LIST[4]: authorisation with max-status-infos and type
    auth = fields("06 01 0E 02 01 04 00 00 00 00 10 00 19 44 49 09 78")
    assert auth == {
        "max_status_infos": 1,
        "amount_minor": 1000,
        "payment_type": 0x44,
        "currency": "978",
    }
    # [ECRTERM] test_apdu.py test_parse_fixed_no_optional: password never shown
    assert fields("06000498765441") == {"password": "******", "config_byte": 0x41}
    # [ECRTERM] test_parsing.py PACKET_LIST[2]: registration with a TLV container whose
    # tag 10 02 looks like DLE STX (see the framing tests)
    registration = fields(
        "06 00 63 00 00 00 FE 09 78 03 00 06 59 10 02 16 02 12 01 40 1A 02 10 00 26 28 0A 02 04"
        " 0F 0A 02 06 0F 0A 02 06 1E 0A 02 04 FF 0A 02 06 D8 0A 02 06 DB 0A 02 06 D9 0A 02 06 DA"
        " 0A 02 06 DD 0A 02 06 D3 27 03 14 01 FF 28 10 15 02 44 45 15 02 45 4E 15 02 46 52 15 02"
        " 49 54 40 02 C0 00 1F 04 02 F1 00 1F 05 01 00"
    )
    assert registration["config_byte"] == 0xFE
    assert registration["currency"] == "978"
    assert registration["service_byte"] == 0
    assert registration["tlv"]["printer_line_width"] == 0x40
    assert registration["tlv"]["permitted_zvt_commands"]["zvt_command"][0] == "040F"
    assert registration["tlv"]["languages"]["language_code"] == ["DE", "EN", "FR", "IT"]


@pytest.mark.parametrize(
    ("hex_text", "problem"),
    [
        ("04 0F", "truncated APDU"),
        ("04 0F 05 27 00", "says 5 data bytes but 2 follow"),
        ("04 0F 03 04 00 00", "BMP 04 (amount_minor) needs 6 byte(s), 2 left"),
        ("04 0F 03 22 F1 01", "bad length"),
        ("04 0F 07 04 00 00 00 00 AB CD", "is not packed BCD"),
    ],
)
def test_bad_bytes_raise_decode_error(hex_text: str, problem: str) -> None:
    with pytest.raises(DecodeError, match=re.escape(problem)):
        fields(hex_text)


@given(st.integers(0x00, 0xFF), st.integers(0x00, 0xFF), st.binary(max_size=700))
def test_apdu_round_trip(cls: int, instr: int, data: bytes) -> None:
    apdu = Apdu(cls, instr, data)
    assert decode_apdu(encode_apdu(apdu)) == apdu


@given(st.integers(0, 999_999_999_999))
def test_amount_round_trip(amount: int) -> None:
    assert decode_bmps(messages.authorisation(amount).data)["amount_minor"] == amount


# -- what real terminals send beyond the published table ----------------------------------------


def test_abort_without_a_result_code() -> None:
    # [PORTALUM@ed877cb] ZvtClientTest.EndOfDayAsync_CommandCompletionReceivedWithAbortReceived1
    assert fields("06 1E 00") == {
        "result_code": None,
        "result_message": "aborted without a result code",
    }


def test_abort_with_receipt_numbers_after_the_result_code() -> None:
    # [ECRTERM] test_open_reservations_response_no_receipt_numbers: 87 FF FF = no receipt
    none = fields("06 1E 04 B8 87 FF FF")
    assert none["result_code"] == 0xB8
    assert none["receipt_number"] is None
    # [ECRTERM] test_open_reservations_response_receipt
    assert fields("06 1E 04 B8 87 01 23")["receipt_number"] == 123


def test_abort_whose_tlv_container_is_cut_keeps_what_came() -> None:
    # [ECRTERM] test_open_reservations_response_receipt_and_tlv. Its APDU length byte (11) is
    # one more than the 16 bytes that follow, corrected to 10 here; the TLV lengths are as
    # given: the container announces 11 hex bytes and 10 follow, its object 23 announces 9
    # and 8 follow. The receipt number decodes; the cut container stays raw and says why.
    abort = fields("06 1E 10 B8 87 01 23 06 11 23 09 08 02 45 67 08 02 78 90")
    assert abort["receipt_number"] == 123
    assert abort["tlv"] == {}
    undecoded = abort["undecoded"]
    assert isinstance(undecoded, Undecoded)
    assert undecoded.offset == 6
    assert undecoded.hex == "2309080245670802789" + "0"
    assert "announces 17 byte(s), 10 follow" in undecoded.reason


def test_tlv_container_cut_mid_object_keeps_the_whole_objects() -> None:
    # [ECRTERM] test_parsing_abort.py capture, cut inside its second object (1F17, the
    # error text) as a dropped line leaves it; the APDU length byte counts what is left.
    whole = bytes.fromhex(
        "061e2e6c062b1f1605ff000014411f1720416262727563682064757263682065787465726e6573204b6f"
        "6d6d616e646f21"
    )
    data = whole[3:30]
    abort = decode_message(decode_apdu(bytes([0x06, 0x1E, len(data)]) + data))
    assert abort["result_code"] == 0x6C
    assert abort["tlv"] == {"extended_error_code": "FF00001441"}
    assert abort["undecoded"].offset == 11
    assert abort["undecoded"].hex.startswith("1F1720")


def test_completion_with_a_vendor_bmp_keeps_it_raw() -> None:
    # [BEZAHL] command/testdata/1619070661833PT.hex: 06 0F 01 DC
    completion = fields("06 0F 01 DC")
    assert completion == {
        "undecoded": Undecoded(
            0,
            "DC",
            "BMP DC is not in the published table (PA00P015 chapter 13), so its length is unknown",
        )
    }


def test_known_fields_before_a_vendor_bmp_still_decode() -> None:
    # [BEZAHL] command/testdata/1620218414428PT.hex (a Completion with 19, 29, 49) followed
    # by the vendor byte of 1619070661833PT.hex
    completion = fields("06 0F 0B 19 00 29 29 00 10 06 49 09 78 DC")
    assert completion["terminal_id"] == "29001006"
    assert completion["currency"] == "978"
    assert completion["undecoded"].offset == 10
    assert completion["undecoded"].hex == "DC"


def test_completion_with_no_bmps_after_a_status_enquiry() -> None:
    # [PORTALUM@ed877cb] ZvtClientTest (EndOfDayAsync_…, PaymentAsync_…): 06 0F 00
    assert fields("06 0F 00") == {}


def test_completion_with_software_version_and_a_vendor_tlv() -> None:
    # [ECRTERM] test_parsing_completion.py test_completion: a real terminal's answer to
    # Status-Enquiry, with tags E4 and 34 (constructed, outside §9.4.1) in its TLV container
    completion = fields(
        "060f89f0f4f04745522d4150502d76322e302e393b635230322e30312e30312d30302e30392d322d"
        "323b4343323600065b1f44045250"
        "0245e4431f400a6356454e4420626f782b1f41284745522d4150502d76322e302e393b635230322e"
        "30312e30312d30302e30392d322d"
        "323b434332361f420411e930ec1f430100340d1f0e04202306221f0f03085556"
    )
    assert completion["software_version"] == "GER-APP-v2.0.9;cR02.01.01-00.09-2-2;CC26"
    assert completion["terminal_status_text"] == "PT ready"
    assert completion["tlv"]["tag_E4"]["serial_number"] == "11E930EC"
    assert completion["tlv"]["tag_E4"]["device_name"] == "cVEND box+"
    assert "undecoded" not in completion


def test_initialisation_with_bmps_outside_the_table() -> None:
    # decom (C++ device library) test/prot_zvt test1, cmd1_req: 06 93 03 12 34 56
    assert fields("06 93 03 12 34 56") == {"password": "******"}
    # [SPEC] 2.18 allows BMPs after the password; one outside chapter 13 (here the vendor
    # byte DC of [BEZAHL] 1619070661833PT.hex) stays raw
    init = fields("06 93 05 12 34 56 DC 01")
    assert init["password"] == "******"
    assert init["undecoded"] == Undecoded(3, "DC01", init["undecoded"].reason)


def test_card_name_ends_in_nul() -> None:
    # [PORTALUM] StatusInformationParserTest.Parse_PaymentGood1: 8B F1 F7 "Debit Mastercard" 00
    assert decode_bmps(bytes.fromhex("8B F1 F7 4465626974204D617374657263617264 00")) == {
        "card_name": "Debit Mastercard"
    }


@pytest.mark.parametrize(
    ("head", "digits", "size"),
    [
        ("F0 F1 F9", 3, 19),  # [PORTALUM@ed877cb] BmpParserTest GetDataLengthLLL 1
        ("F1 F8 F9", 3, 189),  # GetDataLengthLLL 2
        ("F1 F8", 2, 18),  # GetDataLengthLL 1
        ("F1 F0", 2, 10),  # GetDataLengthLL 2
    ],
)
def test_llvar_and_lllvar_length_vectors(head: str, digits: int, size: int) -> None:
    assert var_length(bytes.fromhex(head), 0, digits, "field") == size


def test_intermediate_status_with_something_other_than_tlv_keeps_it() -> None:
    # [BEZAHL] command/testdata/data081621025.hex: 04 FF 01 0E (status only)
    assert fields("04 FF 01 0E") == {"status": 0x0E, "status_text": "Please wait..."}
    odd = fields("04 FF 03 0E 01 DC")
    assert odd["timeout_minutes"] == 1
    assert odd["undecoded"].hex == "DC"
