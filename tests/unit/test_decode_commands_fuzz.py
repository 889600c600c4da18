"""Every ``kassa … decode`` command answers any input with output or one line and exit code 2.

Hypothesis feeds random bytes, random text and mutations of the published vectors the driver
and codec tests already cite (see there for their sources) through the real ``kassa`` group, in
process. The contract (issue 12): exit 0 with JSON on stdout; or exit 2 with exactly one line,
``kassa: …``, on stderr; ``qr decode --lenient`` may also exit 1 (shown anyway, with every rule
it breaks). Never a traceback, never an exception escaping to click.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest
from click.testing import CliRunner, Result
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from drivers.pn532 import frames as pn532_frames
from drivers.zvt.apdu import Apdu, encode_apdu
from drivers.zvt.framing import frame as zvt_frame
from gateway.domain.emv_qr import crc16_ccitt_false, decode
from gateway.entrypoints.cli import main
from tests.drivers.test_zvt_apdu import PAYMENT_GOOD, TEXT_BLOCK, TLV_INFOS, UNMASKED_PAN
from tests.drivers.test_zvt_cli import FRAMED_COMPLETION
from tests.drivers.test_zvt_framing import COMPLETION_APDU, REGISTRATION_APDU
from tests.unit.test_emv_qr import NON_CONFORMING, PUBLISHED

ZVT_VECTORS = [
    bytes.fromhex(text.replace("-", " "))
    for text in (PAYMENT_GOOD, UNMASKED_PAN, TLV_INFOS, TEXT_BLOCK, FRAMED_COMPLETION)
] + [
    COMPLETION_APDU,
    REGISTRATION_APDU,
    # [ECRTERM] test_parsing.py PACKET_LIST[5]: intermediate status with display text
    bytes.fromhex(
        "04 FF 1E 0A 01 06 1A 24 18 07 16 42 69 74 74 65 20 4B 61 72 74 65 20 65 69 6E 73 74"
        " 65 63 6B 65 6E"
    ),
    # [ECRTERM] test_parsing_abort.py test_abort_by_external_command
    bytes.fromhex(
        "061e2e6c062b1f1605ff000014411f1720416262727563682064757263682065787465726e6573204b6f"
        "6d6d616e646f21"
    ),
    # [PORTALUM] PrintLineTest.ProcessData_LineReceivedCardCompleteWithTlv_Successful
    bytes.fromhex("06D10F4052494544472035300604 1F070101"),
]
PN532_VECTORS = [
    bytes.fromhex(text)
    for text in (
        "0000FF00FF00",  # UM0701-02 §6.2.1.3, ACK
        "0000FFFF0000",  # §6.2.1.4, NACK
        "0000FF01FF7F8100",  # §6.2.1.5, error frame
        "0000FF06FAD50332010607E800",  # §7.2.2, GetFirmwareVersion response
        "0000FF04FCD44A0100E100",  # nfcpy test_sense_tta_target_is_tt2
        "0000FF0CF4D54B0101000408 04924C5227 7700",  # nfc-experiments README.md
    )
]
QR_VECTORS = [vector.payload for vector in PUBLISHED.values()] + [
    payload for payload, _ in NON_CONFORMING.values()
]
# Messages whose fields the decoders take apart (messages.py, _DECODERS), and the acknowledgements.
ZVT_CONTROLS = [
    (0x04, 0x0F), (0x04, 0xFF), (0x06, 0xD1), (0x06, 0xD3), (0x06, 0x0F), (0x06, 0x1E),
    (0x06, 0x00), (0x06, 0x30), (0x06, 0x31), (0x06, 0x20), (0x06, 0x50), (0x80, 0x00),
    (0x84, 0x6C), (0x06, 0x01),
]  # fmt: skip
PN532_CODES = [0x03, 0x4B, 0x41, 0x43, 0x45, 0x53, 0x4A, 0x14, 0x40, 0x52, 0x02, 0x4B - 1]


def kassa(args: Sequence[str], stdin: str | bytes | None = None) -> Result:
    return CliRunner().invoke(main, list(args), input=stdin)


def assert_contract(result: Result, allowed: frozenset[int] = frozenset({0, 2})) -> None:
    """Exit 0 (or 1 where allowed) with JSON, or exit 2 with one line ``kassa: …``."""
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    assert result.exit_code in allowed, (result.exit_code, result.output)
    assert "Traceback" not in result.stderr
    if result.exit_code == 2:
        assert result.stdout == ""
        assert result.stderr.startswith("kassa: ")
        assert result.stderr.count("\n") == 1 and result.stderr.endswith("\n"), result.stderr
    else:
        json.loads(result.stdout)


# -- strategies ---------------------------------------------------------------------------------


@st.composite
def mutated(draw: st.DrawFn, vectors: Sequence[bytes]) -> bytes:
    """A published vector with a few bytes flipped, inserted, deleted or the tail cut off."""
    raw = bytearray(draw(st.sampled_from(vectors)))
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(raw)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "cut"]))
        if action == "insert" or not raw:
            raw[at:at] = draw(st.binary(min_size=1, max_size=3))
        elif action == "flip":
            raw[min(at, len(raw) - 1)] = draw(st.integers(0, 255))
        elif action == "delete":
            del raw[min(at, len(raw) - 1)]
        else:
            del raw[at:]
    return bytes(raw)


@st.composite
def zvt_apdu(draw: st.DrawFn) -> bytes:
    """A well-formed APDU of a message the driver decodes, with random (or mutated) data."""
    cls, instr = draw(st.sampled_from(ZVT_CONTROLS))
    data = draw(st.binary(max_size=80) | mutated([v[3:] for v in ZVT_VECTORS]))
    raw = encode_apdu(Apdu(cls, instr, data))
    return zvt_frame(raw) if draw(st.booleans()) else raw


@st.composite
def pn532_frame(draw: st.DrawFn) -> bytes:
    """A well-formed information frame (right LCS and DCS) with random parameters."""
    tfi = draw(st.sampled_from([pn532_frames.HOST_TO_PN532, pn532_frames.PN532_TO_HOST]))
    code = draw(st.sampled_from(PN532_CODES) | st.integers(0, 255))
    params = draw(st.binary(max_size=40))
    return pn532_frames.encode(tfi, bytes([code]) + params, extended=draw(st.booleans()))


def with_fresh_crc(payload: str) -> str:
    """``payload`` with its last four characters replaced by the CRC they should be."""
    body = payload[:-4]
    return body + f"{crc16_ccitt_false(body.encode('utf-8', 'surrogatepass')):04X}"


# What Python makes of command-line bytes that are not UTF-8: U+DC80-U+DCFF (surrogateescape).
NOT_UTF8 = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
CHARACTER = st.characters(codec="utf-8") | st.sampled_from("0123456789") | NOT_UTF8


@st.composite
def qr_payload(draw: st.DrawFn) -> str:
    """Random text, or a published payload mutated (and then often given a correct CRC)."""
    if draw(st.booleans()):
        return draw(st.text(CHARACTER, max_size=120))
    payload = list(draw(st.sampled_from(QR_VECTORS)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(payload) - 1))
        payload[at] = draw(CHARACTER)
    text = "".join(payload)
    return with_fresh_crc(text) if draw(st.booleans()) and len(text) > 4 else text


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(CHARACTER, max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def qr_tree_json(draw: st.DrawFn) -> str:
    """Random JSON, or a published payload's tree with one value replaced."""
    if draw(st.booleans()):
        return json.dumps(draw(JSON))
    tree: dict[str, object] = dict(decode(draw(st.sampled_from(list(PUBLISHED.values()))).payload))
    key = draw(st.sampled_from([*sorted(tree), "7", "100", "", "62"]))
    tree[key] = draw(JSON)
    return json.dumps(tree)  # ASCII only: lone surrogates travel as \\udcxx escapes


# Bytes for stdin: random, not UTF-8 at all, or nested deeper than json's decoder recurses.
QR_ENCODE_INPUT = (
    qr_tree_json()
    | st.text(max_size=60)
    | st.binary(max_size=60)
    | st.integers(900, 5000).map(lambda depth: "[" * depth + "]" * depth)
)


def hex_text(raw: bytes) -> str:
    return raw.hex(" ").upper()


ZVT_INPUT = st.binary(max_size=64) | mutated(ZVT_VECTORS) | zvt_apdu()
PN532_INPUT = st.binary(max_size=48) | mutated(PN532_VECTORS) | pn532_frame()
FUZZ = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])


# -- the contract -------------------------------------------------------------------------------


@FUZZ
@given(ZVT_INPUT)
def test_zvt_decode_any_bytes(raw: bytes) -> None:
    assert_contract(kassa(["zvt", "decode", "--", hex_text(raw) or "00"]))


@FUZZ
@given(PN532_INPUT)
def test_pn532_decode_any_bytes(raw: bytes) -> None:
    assert_contract(kassa(["pn532", "decode", "--", hex_text(raw) or "00"]))


@FUZZ
@given(st.text(alphabet="0123456789abcdefABCDEF :-xXg", max_size=40))
def test_decode_commands_any_hex_text(text: str) -> None:
    for command in ("zvt", "pn532"):
        assert_contract(kassa([command, "decode", "--", text or "0"]))


@FUZZ
@given(qr_payload(), st.booleans())
def test_qr_decode_any_text(payload: str, lenient: bool) -> None:
    flags = ["--lenient"] if lenient else []
    allowed = frozenset({0, 1, 2}) if lenient else frozenset({0, 2})
    assert_contract(kassa(["qr", "decode", *flags, "--", payload]), allowed)


@FUZZ
@given(QR_ENCODE_INPUT)
def test_qr_encode_any_input(source: str | bytes) -> None:
    result = kassa(["qr", "encode"], stdin=source)
    assert result.exit_code in (0, 2), (result.exit_code, result.output, repr(result.exception))
    if result.exit_code == 0:
        assert decode(result.stdout.rstrip("\n"))  # what encode prints always decodes
    else:
        assert_contract(result)


@pytest.mark.slow
@settings(FUZZ, max_examples=3000)
@given(ZVT_INPUT, PN532_INPUT, qr_payload(), st.booleans())
def test_every_decode_command_many_examples(
    zvt: bytes, pn532: bytes, payload: str, lenient: bool
) -> None:
    assert_contract(kassa(["zvt", "decode", "--", hex_text(zvt) or "00"]))
    assert_contract(kassa(["pn532", "decode", "--", hex_text(pn532) or "00"]))
    flags = ["--lenient"] if lenient else []
    allowed = frozenset({0, 1, 2}) if lenient else frozenset({0, 2})
    assert_contract(kassa(["qr", "decode", *flags, "--", payload]), allowed)


# -- what the fuzzer found, kept as plain examples ------------------------------------------------


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (["zvt", "decode", "04 FF 02 0A 1A"], None, "timeout byte 0x1A is not packed BCD"),
        (["zvt", "decode", "06 00 06 00 00 00 00 00 0A"], None, "currency code 0x00 0x0A"),
        (["zvt", "decode", "06 1E 03 6C 09 7A"], None, "currency code 0x09 0x7A is not packed"),
        (["zvt", "decode", "06 0F 04 F0 F0 F9 32"], None, "software version needs 9 byte(s)"),
        (["zvt", "decode", "04 0F 07 04 00 00 00 00 1A 00"], None, "BMP 04 (amount_minor): "),
        (["qr", "decode", "0002\udcff1"], None, "character 4 is a byte 0xFF that is not UTF-8"),
        (["qr", "encode"], '{"59": "\\ud800"}', "tag 59 (merchant name) is not valid text"),
        (["qr", "encode"], b'{"00": "\xff"}', "input is not UTF-8: byte 0xFF at byte 8"),
        (["qr", "encode"], "[" * 100_000, "nests arrays or objects too deeply"),
    ],
)
def test_what_the_fuzzer_found(args: list[str], stdin: str | bytes | None, message: str) -> None:
    result = kassa(args, stdin)
    assert_contract(result)
    assert result.exit_code == 2 and message in result.stderr


def test_tlv_nested_past_any_real_message_is_refused_not_a_recursion_error() -> None:
    inner = b""
    for _ in range(2000):  # constructed tag 21 inside itself, far past Python's recursion limit
        size = len(inner)
        length = bytes([size]) if size < 0x80 else b"\x82" + size.to_bytes(2, "big")
        inner = b"\x21" + length + inner
    data = b"\x06\x82" + len(inner).to_bytes(2, "big") + inner
    result = kassa(["zvt", "decode", encode_apdu(Apdu(0x06, 0xD3, data)).hex()])
    assert_contract(result)
    assert "nested deeper than 16 levels" in result.stderr
