"""EMVCo merchant-presented QR payloads (EMV QRCPS-MPM v1.1): decode, encode, build.

A payload is a flat run of data objects ``ID LL value`` (two-digit ID, two-digit length counted
in characters, then the value); some IDs are templates whose value is itself such a run. The
last object is always ``63 04 XXXX``, a CRC-16/CCITT-FALSE over everything before ``XXXX``.

=========  =======================================  ====================================
ID         name                                     handled as
=========  =======================================  ====================================
00         payload format indicator                 string, must be first and "01"
01         point of initiation method               "11" static / "12" dynamic
02-25      merchant account information (schemes)   string (Visa, Mastercard, UnionPay…)
26-51      merchant account information template    template, sub-ID 00 (GUI) required
52         merchant category code                   4 digits, mandatory
53         transaction currency                     3 digits (ISO 4217), mandatory
54         transaction amount                       digits with one optional ".", ≤ 13
55-57      tip or convenience fee                   string
58         country code                             2 letters (ISO 3166-1), mandatory
59         merchant name                            ≤ 25 characters, mandatory
60         merchant city                            ≤ 15 characters, mandatory
61         postal code                              string
62         additional data field template           template (05 reference, 07 terminal…)
63         CRC                                      4 upper-case hex digits, always last
64         merchant information language template   template, sub-ID 00 (language) required
65-79      reserved for future use                  string
80-99      unreserved templates                     template, sub-ID 00 (GUI) required
=========  =======================================  ====================================

Decision on the CRC's case: EMVCo's own example payload (CRC A13A) and every one of the
published payloads we collected (BR Code, PayNow, QRIS, DuitNow, VNPAY, PromptPay, VietQR…)
carry upper-case hex, and wallets compare the text, so a lower-case CRC is rejected.
Nothing else is forgiven either: no surrounding whitespace, no length 00, no missing tags.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from gateway.errors import InvalidMoney, InvalidQrPayload

if TYPE_CHECKING:
    from gateway.domain.money import Money

# ``gateway.domain.money`` (and the ISO 4217 table it loads) is imported by the functions that
# build or read a payment, not here: ``kassa qr decode`` needs neither and starts faster.

Tree = dict[str, str | dict[str, str]]
TreeInput = Mapping[str, str | Mapping[str, str]]

MAX_PAYLOAD = 512  # MPM "Payload": at most 512 characters in all
# ISO/IEC 18004: a version 40 symbol holds at most 7,089 numeric characters; nothing longer is
# a QR code's text, whatever rules it breaks.
MAX_QR_TEXT = 7089
MANDATORY = ("00", "52", "53", "58", "59", "60", "63")  # MPM data object table, presence "M"
TEMPLATE_IDS = frozenset([f"{n:02d}" for n in range(26, 52)] + ["62", "64"])
TEMPLATE_IDS |= frozenset(f"{n:02d}" for n in range(80, 100))
_SCHEMES = {
    2: "Visa",
    3: "Visa",
    4: "Mastercard",
    5: "Mastercard",
    9: "Discover",
    10: "Discover",
    11: "Amex",
    12: "Amex",
    13: "JCB",
    14: "JCB",
    15: "UnionPay",
    16: "UnionPay",
}

TAG_NAMES: dict[str, str] = {
    "00": "payload format indicator",
    "01": "point of initiation method",
    **{
        f"{n:02d}": f"merchant account information ({_SCHEMES.get(n, 'EMVCo reserved')})"
        for n in range(2, 26)
    },
    **{f"{n:02d}": "merchant account information template" for n in range(26, 52)},
    "52": "merchant category code",
    "53": "transaction currency",
    "54": "transaction amount",
    "55": "tip or convenience indicator",
    "56": "value of convenience fee fixed",
    "57": "value of convenience fee percentage",
    "58": "country code",
    "59": "merchant name",
    "60": "merchant city",
    "61": "postal code",
    "62": "additional data field template",
    "63": "CRC",
    "64": "merchant information language template",
    **{f"{n:02d}": "reserved for future use" for n in range(65, 80)},
    **{f"{n:02d}": "unreserved template" for n in range(80, 100)},
}

ADDITIONAL_DATA_NAMES: dict[str, str] = {  # MPM "Additional Data Field Template"
    "01": "bill number",
    "02": "mobile number",
    "03": "store label",
    "04": "loyalty number",
    "05": "reference label",
    "06": "customer label",
    "07": "terminal label",
    "08": "purpose of transaction",
    "09": "additional consumer data request",
    "10": "merchant tax ID",
    "11": "merchant channel",
}
LANGUAGE_NAMES: dict[str, str] = {  # MPM "Merchant Information—Language Template"
    "00": "language preference",
    "01": "merchant name (alternate language)",
    "02": "merchant city (alternate language)",
}

_AMOUNT = re.compile(r"[0-9]+(\.[0-9]*)?")  # MPM "Transaction Amount": "." is the only mark
_HEX4 = re.compile(r"[0-9A-F]{4}")
_GUI_NAME = "globally unique identifier"


def _label(tag: str, parent: str | None = None) -> str:
    if parent is None:
        return f"tag {tag} ({TAG_NAMES.get(tag, 'unknown')})"
    if parent == "62":
        name = ADDITIONAL_DATA_NAMES.get(tag, "payment system specific")
    elif parent == "64":
        name = LANGUAGE_NAMES.get(tag, "reserved for future use")
    else:
        name = _GUI_NAME if tag == "00" else "scheme-specific"
    return f"tag {parent}-{tag} ({name})"


def _is_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _unicode_problem(text: str) -> str | None:
    """Why ``text`` cannot be UTF-8 (a lone surrogate, as Python makes of a byte that was not
    UTF-8 on the command line), else None."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        code = ord(text[exc.start])
        if 0xDC80 <= code <= 0xDCFF:
            return f"character {exc.start} is a byte 0x{code - 0xDC00:02X} that is not UTF-8"
        return f"character {exc.start} is a lone surrogate U+{code:04X}"
    return None


def crc16_ccitt_false(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, xorout 0 (MPM "CRC").

    ``binascii.crc_hqx`` is that CRC (the XMODEM polynomial, unreflected) from the initial value
    given, in C: the bitwise loop in Python was a tenth of a payload's encode and check.
    """
    return binascii.crc_hqx(data, 0xFFFF)


# --- decoding -----------------------------------------------------------------------------------


def _data_objects(text: str, offset: int, parent: str | None) -> Iterator[tuple[str, str, int]]:
    """Yield ``(id, value, position)`` per data object in ``text`` (MPM "Data Object Format")."""
    pos = 0
    while pos < len(text):
        at = offset + pos
        if len(text) - pos < 4:
            where = f"inside tag {parent} " if parent else ""
            raise InvalidQrPayload(
                f"truncated: {where}only {len(text) - pos} characters remain at position {at},"
                " need a 2-digit ID and a 2-digit length"
            )
        tag, length = text[pos : pos + 2], text[pos + 2 : pos + 4]
        if not _is_digits(tag):
            where = f" inside tag {parent}" if parent else ""
            raise InvalidQrPayload(f"ID {tag!r} at position {at}{where} is not two digits")
        if not _is_digits(length):
            raise InvalidQrPayload(
                f"{_label(tag, parent)} has length {length!r} at position {at + 2},"
                " expected two digits"
            )
        if length == "00":
            raise InvalidQrPayload(
                f"{_label(tag, parent)} at position {at} has length 00; a data object carries"
                " 1 to 99 characters"
            )
        start, size = pos + 4, int(length)
        if len(text) - start < size:
            raise InvalidQrPayload(
                f"truncated: {_label(tag, parent)} declares length {size} but only"
                f" {len(text) - start} characters remain at position {offset + start}"
            )
        yield tag, text[start : start + size], at
        pos = start + size


Problems = list[str] | None  # None: raise at the first problem; a list: collect them all


def _problem(problems: Problems, message: str) -> None:
    if problems is None:
        raise InvalidQrPayload(message)
    problems.append(message)


def _parse_template(tag: str, value: str, offset: int, problems: Problems = None) -> dict[str, str]:
    fields: dict[str, str] = {}
    for sub, sub_value, at in _data_objects(value, offset, tag):
        if sub in fields:
            _problem(
                problems,
                f"{_label(sub, tag)} appears twice (second at position {at}); IDs are unique",
            )
            continue
        fields[sub] = sub_value
    if "00" not in fields and tag != "62":  # 00 is "M" in templates 26-51, 64 and 80-99
        need = "language preference" if tag == "64" else _GUI_NAME
        _problem(problems, f"{_label(tag)} lacks its sub-ID 00 ({need})")
    return fields


def _check_crc(
    payload: str, objects: list[tuple[str, str, int]], problems: Problems = None
) -> None:
    tags = [tag for tag, _, _ in objects]
    if "63" not in tags:
        return _problem(problems, "missing mandatory tag 63 (CRC); it must end the payload")
    if tags[-1] != "63":
        after = tags[tags.index("63") + 1]
        return _problem(
            problems, f"tag 63 (CRC) must be the last data object, but tag {after} follows"
        )
    value = objects[-1][1]
    if len(value) != 4:
        return _problem(problems, f"tag 63 (CRC) has length {len(value):02d}; it must be 04")
    computed = f"{crc16_ccitt_false(payload[:-4].encode('utf-8')):04X}"
    if not _HEX4.fullmatch(value):
        hint = " (lower-case hex is not accepted)" if value.upper() == computed else ""
        return _problem(problems, f"CRC {value!r} is not 4 upper-case hex digits{hint}")
    if value != computed:
        _problem(problems, f"CRC mismatch: payload says {value}, computed {computed}")
    return None


def decode(payload: str) -> Tree:
    """Parse and validate a payload into an ordered tree of ID → value (templates nested)."""
    return _decode(payload, None)


def inspect(payload: str) -> tuple[Tree, list[str]]:
    """The tree as far as the data-object structure allows, and every rule the payload breaks.

    For support staff looking at a wallet's non-conforming payload: ``decode`` refuses it at
    the first broken rule (payments are only ever built from conforming ones); ``inspect``
    still shows what is in it. A broken structure (truncated, a bad length) stays fatal.
    """
    problems: list[str] = []
    return _decode(payload, problems), problems


def _decode(payload: str, problems: Problems) -> Tree:
    if not isinstance(payload, str):
        raise InvalidQrPayload(f"a QR payload is text, not {type(payload).__name__}")
    if not payload:
        raise InvalidQrPayload("payload is empty")
    if payload != payload.strip():
        raise InvalidQrPayload("payload has leading or trailing whitespace; pass the exact text")
    if len(payload) > MAX_QR_TEXT:
        raise InvalidQrPayload(
            f"payload is {len(payload)} characters; no QR code holds more than {MAX_QR_TEXT}"
        )
    if len(payload) > MAX_PAYLOAD:
        # Real multi-scheme codes (SGQR) run past 1,000 characters: shown when lenient.
        _problem(
            problems,
            f"payload is {len(payload)} characters; an EMV QR payload holds at most {MAX_PAYLOAD}",
        )
    if problem := _unicode_problem(payload):
        raise InvalidQrPayload(f"payload is not valid text: {problem}")
    objects = list(_data_objects(payload, 0, None))
    _check_crc(payload, objects, problems)
    tree: Tree = {}
    for tag, value, at in objects:
        if tag in tree:
            _problem(
                problems,
                f"{_label(tag)} appears twice (second at position {at}); IDs are unique",
            )
            continue
        tree[tag] = _parse_template(tag, value, at + 4, problems) if tag in TEMPLATE_IDS else value
    _check_rules(tree, problems)
    return tree


def _check_rules(tree: Tree, problems: Problems = None) -> None:
    first = next(iter(tree))
    if first != "00":
        _problem(
            problems, f"payload must start with tag 00 (payload format indicator), not {first}"
        )
    if "00" in tree and tree["00"] != "01":
        _problem(problems, f"tag 00 (payload format indicator) is {tree['00']!r}, expected '01'")
    for tag in MANDATORY:
        if tag not in tree and tag != "63":  # a missing CRC is reported by _check_crc
            _problem(problems, f"missing mandatory {_label(tag)}")
    if not any(2 <= int(tag) <= 51 for tag in tree):
        _problem(
            problems, "no merchant account information: at least one of tags 02-51 is required"
        )
    for tag, check in _FIELD_CHECKS.items():
        value = tree.get(tag)
        if isinstance(value, str) and (problem := check(value)):
            _problem(problems, f"{_label(tag)} {value!r} {problem}")
    language = tree.get("64")
    code = language.get("00") if isinstance(language, dict) else None
    if code is not None and not re.fullmatch(r"[A-Za-z]{2}", code):
        _problem(
            problems, f"tag 64-00 (language preference) {code!r} is not a 2-letter ISO 639 code"
        )


def _amount_problem(value: str) -> str | None:
    if len(value) > 13:
        return "is longer than 13 characters"
    if not _AMOUNT.fullmatch(value):
        return "is not a valid amount (digits with an optional '.' decimal mark)"
    return None


_FIELD_CHECKS = {  # each returns what is wrong, or None (MPM data object table)
    "01": lambda v: None if v in ("11", "12") else "is neither '11' (static) nor '12' (dynamic)",
    "52": lambda v: None if len(v) == 4 and _is_digits(v) else "is not 4 digits",
    "53": lambda v: None if len(v) == 3 and _is_digits(v) else "is not a 3-digit ISO 4217 code",
    "54": _amount_problem,
    "58": lambda v: None if re.fullmatch(r"[A-Z]{2}", v) else "is not 2 upper-case letters",
    "59": lambda v: None if len(v) <= 25 else f"is {len(v)} characters; at most 25 are allowed",
    "60": lambda v: None if len(v) <= 15 else f"is {len(v)} characters; at most 15 are allowed",
}


# --- encoding -----------------------------------------------------------------------------------


def _data_object(tag: str, value: str, parent: str | None = None) -> str:
    if not isinstance(value, str):
        raise InvalidQrPayload(
            f"{_label(tag, parent)} must be a string, not {type(value).__name__}"
        )
    if not value:
        raise InvalidQrPayload(f"{_label(tag, parent)} is empty; leave it out instead")
    if len(value) > 99:
        raise InvalidQrPayload(
            f"{_label(tag, parent)} is {len(value)} characters; a data object holds at most 99"
        )
    if problem := _unicode_problem(value):
        raise InvalidQrPayload(f"{_label(tag, parent)} is not valid text: {problem}")
    return f"{tag}{len(value):02d}{value}"


def _check_id(tag: object, parent: str | None = None) -> str:
    if not isinstance(tag, str) or len(tag) != 2 or not _is_digits(tag):
        where = f" in tag {parent}" if parent else ""
        raise InvalidQrPayload(f"ID {tag!r}{where} is not two digits such as '59'")
    return tag


def _template_text(tag: str, value: Mapping[str, str]) -> str:
    if tag not in TEMPLATE_IDS:
        raise InvalidQrPayload(f"{_label(tag)} is not a template; give a string, not an object")
    return "".join(_data_object(_check_id(sub, tag), v, tag) for sub, v in value.items())


def encode(tree: TreeInput) -> str:
    """Serialise ``tree`` in its own order, append a fresh CRC (tag 63) and validate the result."""
    if not isinstance(tree, Mapping):
        raise InvalidQrPayload(f"a QR tree maps 2-digit IDs to values, not {type(tree).__name__}")
    parts = []
    for tag, value in tree.items():
        if _check_id(tag) == "63":
            continue  # always recomputed
        text = _template_text(tag, value) if isinstance(value, Mapping) else value
        parts.append(_data_object(tag, text))
    body = "".join(parts) + "6304"
    payload = body + f"{crc16_ccitt_false(body.encode('utf-8')):04X}"
    decode(payload)
    return payload


# --- merchant profile and payment payloads ------------------------------------------------------


def _printable_ascii(text: str) -> bool:
    return text.isascii() and text.isprintable()


@dataclass(frozen=True, slots=True)
class MerchantAccount:
    """One payment scheme: tag 02-25 with a ``value``, or template 26-51 with ``gui``/``fields``."""

    tag: str
    gui: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    value: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.fields, Mapping):  # accept {"01": "key"} as well as pairs
            object.__setattr__(self, "fields", tuple(self.fields.items()))
        if not (_is_digits(self.tag) and len(self.tag) == 2 and 2 <= int(self.tag) <= 51):
            raise InvalidQrPayload(f"merchant account tag {self.tag!r} is not one of 02-51")
        if int(self.tag) <= 25:
            if self.value is None or self.gui is not None or self.fields:
                raise InvalidQrPayload(
                    f"{_label(self.tag)} is a plain value: give value=, not gui= or fields="
                )
        elif self.gui is None or self.value is not None:
            raise InvalidQrPayload(f"{_label(self.tag)} is a template: give gui= and fields=")
        self.data_object()  # checks IDs and lengths

    def data_object(self) -> tuple[str, str | dict[str, str]]:
        """The ``(tag, value)`` pair this account contributes to a payload tree."""
        if self.value is not None:
            _data_object(self.tag, self.value)
            return self.tag, self.value
        subs = dict([("00", self.gui or ""), *self.fields])
        if len(subs) != len(self.fields) + 1:
            raise InvalidQrPayload(f"{_label(self.tag)} repeats a sub-ID (00 is the GUI)")
        _data_object(self.tag, _template_text(self.tag, subs))
        return self.tag, subs


@dataclass(frozen=True, slots=True)
class MerchantProfile:
    """Who is paid: what tags 02-51, 52, 58-61 and 64 say about the merchant."""

    name: str
    city: str
    country: str
    mcc: str
    accounts: tuple[MerchantAccount, ...]
    postal_code: str | None = None
    language: str | None = None
    local_name: str | None = None
    local_city: str | None = None

    def __post_init__(self) -> None:
        _check_ascii("merchant name", self.name, 25, "local_name")
        _check_ascii("merchant city", self.city, 15, "local_city")
        if not re.fullmatch(r"[A-Z]{2}", self.country):
            raise InvalidQrPayload(f"country {self.country!r} is not an ISO 3166 code like 'BR'")
        if not (len(self.mcc) == 4 and _is_digits(self.mcc)):
            raise InvalidQrPayload(f"merchant category code {self.mcc!r} is not 4 digits")
        if not self.accounts:
            raise InvalidQrPayload("a merchant profile needs at least one merchant account")
        tags = [account.tag for account in self.accounts]
        if len(set(tags)) != len(tags):
            raise InvalidQrPayload(f"merchant account tags repeat: {', '.join(tags)}")
        if self.postal_code is not None:
            _check_ascii("postal code", self.postal_code, 10, None)
        self._check_local()

    def _check_local(self) -> None:
        local = (self.language, self.local_name, self.local_city)
        if all(part is None for part in local):
            return
        if self.language is None or self.local_name is None:
            raise InvalidQrPayload("an alternate-language name needs both language and local_name")
        if not re.fullmatch(r"[A-Z]{2}", self.language):
            raise InvalidQrPayload(
                f"language {self.language!r} is not a 2-letter ISO 639 code such as 'ZH'"
            )
        for what, text, limit in (
            ("local_name", self.local_name, 25),
            ("local_city", self.local_city, 15),
        ):
            if text is not None and not 0 < len(text) <= limit:
                raise InvalidQrPayload(f"{what} {text!r} must be 1 to {limit} characters")


def _check_ascii(what: str, text: str, limit: int, local_field: str | None) -> None:
    if not isinstance(text, str) or not text:
        raise InvalidQrPayload(f"{what} is required")
    if not _printable_ascii(text):
        hint = (
            f"; put the local-script form in {local_field} (with language) and give an ASCII {what}"
            if local_field
            else ""
        )
        raise InvalidQrPayload(f"{what} {text!r} is not plain ASCII{hint}")
    if len(text) > limit:
        raise InvalidQrPayload(f"{what} {text!r} is {len(text)} characters; at most {limit} fit")


def _additional_field(what: str, text: str | None) -> str | None:
    if text is not None:
        _check_ascii(what, text, 25, None)  # MPM: additional data fields are ans, ≤ 25
    return text


def build_payment_payload(
    profile: MerchantProfile,
    amount: Money,
    *,
    reference: str,
    terminal_label: str | None = None,
    bill_number: str | None = None,
    expires_at: datetime | None = None,
    expiry_gui: str = "IO.KASSA",
) -> str:
    """A dynamic (01 = "12") payload asking for ``amount``, labelled with the payment reference.

    ``expires_at`` (timezone-aware) goes into unreserved template 80 as ``00`` = ``expiry_gui``
    and ``01`` = the UTC time ``YYYYMMDDHHMMSS``.
    """
    from gateway.domain.money import currency

    if amount.minor <= 0:
        raise InvalidQrPayload(f"a payment QR needs a positive amount, not {amount}")
    extra = {
        "01": _additional_field("bill number", bill_number),
        "05": _additional_field("reference", reference),
        "07": _additional_field("terminal label", terminal_label),
    }
    tree: dict[str, str | dict[str, str]] = {"00": "01", "01": "12"}
    tree.update(account.data_object() for account in profile.accounts)
    tree.update(
        {
            "52": profile.mcc,
            "53": currency(amount.currency).numeric,
            "54": amount.to_decimal_string(),
            "58": profile.country,
            "59": profile.name,
            "60": profile.city,
        }
    )
    if profile.postal_code:
        tree["61"] = profile.postal_code
    tree["62"] = {sub: text for sub, text in sorted(extra.items()) if text is not None}
    if profile.language and profile.local_name:
        local = {"00": profile.language, "01": profile.local_name}
        tree["64"] = local | ({"02": profile.local_city} if profile.local_city else {})
    if expires_at is not None:
        _check_ascii("expiry GUI", expiry_gui, 32, None)  # MPM "Unreserved Templates": GUI ≤ 32
        tree["80"] = {"00": expiry_gui, "01": _expiry_text(expires_at)}
    return encode(tree)


def _expiry_text(moment: datetime) -> str:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidQrPayload("expires_at must be timezone-aware (e.g. datetime.now(UTC))")
    return moment.astimezone(UTC).strftime("%Y%m%d%H%M%S")


@dataclass(frozen=True, slots=True)
class PaymentRequest:
    """What a wallet needs from a payload to show and pay it."""

    amount: Money | None
    currency: str
    reference_label: str | None
    bill_number: str | None
    terminal_label: str | None
    merchant_name: str
    merchant_city: str
    point_of_initiation: str | None  # "static", "dynamic" or None when tag 01 is absent
    expires_at: datetime | None


def payment_fields(payload: str | TreeInput, *, expiry_gui: str = "IO.KASSA") -> PaymentRequest:
    """Read the payment request out of a payload (or an already decoded tree)."""
    from gateway.domain.money import currency

    tree = decode(payload) if isinstance(payload, str) else decode(encode(payload))
    try:
        code = currency(str(tree["53"])).code
    except InvalidMoney:
        raise InvalidQrPayload(
            f"tag 53 (transaction currency) {tree['53']!r} is not ISO 4217"
        ) from None
    additional = tree.get("62")
    extra = additional if isinstance(additional, dict) else {}
    return PaymentRequest(
        amount=_amount(tree.get("54"), code),
        currency=code,
        reference_label=extra.get("05"),
        bill_number=extra.get("01"),
        terminal_label=extra.get("07"),
        merchant_name=str(tree["59"]),
        merchant_city=str(tree["60"]),
        point_of_initiation={"11": "static", "12": "dynamic"}.get(str(tree.get("01"))),
        expires_at=_expiry(tree, expiry_gui),
    )


def _amount(value: object, code: str) -> Money | None:
    from gateway.domain.money import Money

    if not isinstance(value, str):
        return None
    try:
        return Money.parse(value.rstrip("."), code)  # "98." is a valid tag 54 value
    except InvalidMoney as exc:
        raise InvalidQrPayload(
            f"tag 54 (transaction amount) {value!r} does not fit {code}: {exc}"
        ) from None


def _expiry(tree: Tree, gui: str) -> datetime | None:
    for tag in sorted(tag for tag in tree if int(tag) >= 80):
        template = tree[tag]
        if isinstance(template, dict) and template.get("00") == gui and "01" in template:
            try:
                moment = datetime.strptime(template["01"], "%Y%m%d%H%M%S")
            except ValueError:
                raise InvalidQrPayload(
                    f"tag {tag}-01 (expiry) {template['01']!r} is not YYYYMMDDHHMMSS"
                ) from None
            return moment.replace(tzinfo=UTC)
    return None
