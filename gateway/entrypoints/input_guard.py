"""The one input guard at the web edge: what no Kassa view ever has to think about again.

Before any view runs, :func:`install`'s hook looks at everything a request carries and refuses,
with a 422 that names the field, what can never be valid anywhere in Kassa:

=====================================  ==========================================================
where                                  refused
=====================================  ==========================================================
path segments, query arguments        NUL and every other control character (C0, DEL, C1,
                                       U+2028/U+2029) and lone surrogates
headers                                C0 control characters other than tab, and DEL
form fields, JSON strings and keys     NUL, control characters other than tab, CR and LF, and
                                       lone surrogates (PostgreSQL cannot store them)
JSON bodies (API, bank callbacks)      nesting deeper than :data:`MAX_JSON_DEPTH`, integers
                                       beyond 64 bits, non-finite numbers (``1e999999``, NaN)
=====================================  ==========================================================

The body size is capped by Flask's ``MAX_CONTENT_LENGTH`` (413). Numbers and dates that views
read from text go through :func:`whole_number`, :func:`calendar_date` and :func:`calendar_month`,
which range-check them before they reach the database. The API and the bank get an RFC 9457
problem body; the cashier screen and the portal their HTML error page (the blueprints' own
``KassaError`` handlers). Log lines are escaped by :func:`escape_for_log`, installed as the log
record factory, so a ``%0A`` in a path never forges a line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import date
from typing import Any, cast

from flask import Flask, Request, g, request

from gateway.adapters import logging_setup
from gateway.errors import InvalidInput

MAX_JSON_DEPTH = 32
# JSON integers a database column can hold (BIGINT); anything larger is nonsense here.
MAX_JSON_INTEGER = 2**63 - 1
# Row ids in URLs (``<int:till_id>``) are INTEGER columns.
MAX_ROW_ID = 2**31 - 1
# Whole numbers typed into forms and URLs: enough digits for any count, price or page.
MAX_DIGITS = 18
# Dates Kassa deals in: anything else is a typo, and would overflow date arithmetic at the edges.
FIRST_DATE = date(1970, 1, 1)
LAST_DATE = date(2999, 12, 31)

# Single-line text (paths, query arguments, headers): no control character at all.
_LINE_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Multi-line text (form fields, JSON strings): tab, CR and LF are text; the rest is not.
_TEXT_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]")
# Header values arrive as Latin-1: bytes 0x80-0x9f are parts of UTF-8 text, not controls.
_HEADER_CONTROL = re.compile("[\x00-\x08\x0a-\x1f\x7f]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
_WHOLE = re.compile(r"[+-]?[0-9]+")


class RefusedInput(InvalidInput):
    """Input refused at the edge before any view saw it."""

    type = "/problems/invalid-input"
    title = "Invalid input"


# -- checks on text ----------------------------------------------------------------------------


def check_text(value: str, field: str, *, multiline: bool = True) -> str:
    """``value`` unchanged, or :class:`RefusedInput` naming ``field`` and the bad character."""
    found = (_TEXT_CONTROL if multiline else _LINE_CONTROL).search(value)
    if found is None:
        return value
    char = found.group()
    what = (
        "a lone surrogate (not valid Unicode text)"
        if "\ud800" <= char <= "\udfff"
        else f"the control character U+{ord(char):04X}"
    )
    raise RefusedInput(f"{field}: contains {what}; remove it", field=field)


def whole_number(text: str, label: str, *, low: int, high: int) -> int:
    """A whole number typed as text, between ``low`` and ``high``; else ``InvalidInput``."""
    text = text.strip()
    if not _WHOLE.fullmatch(text):
        raise InvalidInput(f"{label}: expected a whole number, got “{text[:40]}”", field=label)
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > MAX_DIGITS or not low <= (value := int(text)) <= high:
        raise InvalidInput(
            f"{label}: expected a whole number from {low} to {high}, got “{text[:40]}”",
            field=label,
        )
    return value


def calendar_date(text: str, label: str) -> date:
    """A date like 2024-05-31 between :data:`FIRST_DATE` and :data:`LAST_DATE`."""
    try:
        value = date.fromisoformat(text.strip())
    except ValueError:
        raise InvalidInput(
            f"{label}: “{text[:40]}” is not a date like 2024-05-31", field=label
        ) from None
    check_date(value, label)
    return value


def check_date(value: date, label: str) -> date:
    """``value`` if Kassa can reckon with it (``FIRST_DATE`` … ``LAST_DATE``)."""
    day = value if type(value) is date else value.date()  # type: ignore[attr-defined]
    if not FIRST_DATE <= day <= LAST_DATE:
        raise InvalidInput(
            f"{label}: {day.isoformat()} is outside {FIRST_DATE.isoformat()} to "
            f"{LAST_DATE.isoformat()}",
            field=label,
        )
    return value


def calendar_month(text: str, label: str) -> date:
    """The first day of a month typed like 2024-05, within the dates Kassa reckons with."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}", text.strip()):
        raise InvalidInput(f"{label}: “{text[:40]}” is not a month like 2024-05", field=label)
    return calendar_date(f"{text.strip()}-01", label)


# -- JSON --------------------------------------------------------------------------------------


def json_depth(text: str) -> int:
    """How deeply a JSON text nests arrays and objects, without parsing (no recursion)."""
    brackets = _NOT_BRACKET.sub("", _JSON_STRING.sub("", text))
    depth = deepest = 0
    for char in brackets:
        if char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def load_json(text: str | bytes, field: str = "body", max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON from outside: bounded depth, every string and number checked.

    Raises :class:`InvalidInput` naming the field (``body.items.0.sku``) for anything
    :func:`check_json` refuses, or when the text is not JSON at all.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise RefusedInput(f"{field}: is not UTF-8 text", field=field) from None
    if json_depth(text) > max_depth:
        raise RefusedInput(
            f"{field}: JSON nested deeper than {max_depth} levels is not accepted", field=field
        )
    try:
        document = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RefusedInput(f"{field}: not valid JSON ({str(exc)[:80]})", field=field) from None
    check_json(document, field)
    return document


def check_json(value: Any, field: str = "body") -> None:
    """Refuse control characters in strings and keys, huge integers and non-finite numbers."""
    if not _clean(value, strings=True):
        _refuse_json(value, field)


def _clean(value: Any, *, strings: bool) -> bool:
    """True if :func:`_refuse_json` would find nothing to refuse in ``value`` (False: it must
    look, and name the path). Types other than JSON's own are left to it. ``strings=False``:
    the strings are known to be clean (see :func:`_check_json_body`)."""
    stack = [value]
    control = _TEXT_CONTROL.search
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is str:
            if strings and control(item):
                return False
        elif kind is dict:
            for key in item:
                if type(key) is not str or (strings and control(key)):
                    return False
            stack.extend(item.values())
        elif kind is list:
            stack.extend(item)
        elif kind is int:
            if not -MAX_JSON_INTEGER <= item <= MAX_JSON_INTEGER:
                return False
        elif kind is float:
            if not math.isfinite(item):
                return False
        elif item is not None and kind is not bool:
            return False
    return True


def _refuse_json(value: Any, field: str) -> None:
    """Raise :class:`RefusedInput` naming the path of the first string, key or number
    :func:`check_json` refuses."""
    for path, item in _walk(value, field):
        if isinstance(item, str):
            check_text(item, path)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and abs(item) > MAX_JSON_INTEGER:
            raise RefusedInput(f"{path}: the number is out of range", field=path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise RefusedInput(f"{path}: the number is out of range", field=path)


def _walk(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    stack = [(path, value)]
    while stack:
        where, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                check_text(key, f"{where} (a key)")
                stack.append((f"{where}.{key}", child))
        elif isinstance(item, list):
            stack.extend((f"{where}.{n}", child) for n, child in enumerate(item))
        else:
            yield where, item


# -- the hook ----------------------------------------------------------------------------------


def check_request() -> None:
    """Refuse what no view of Kassa can take; runs before every view (and before sign-in)."""
    current: Request = cast(Any, request)._get_current_object()  # once, not per attribute
    for name, value in (current.view_args or {}).items():
        if isinstance(value, str):
            check_text(value, f"path parameter {name!r}", multiline=False)
        elif isinstance(value, int) and not 0 <= value <= MAX_ROW_ID:
            raise RefusedInput(f"path parameter {name!r}: {value} is out of range")
    check_text(current.path, "path", multiline=False)
    for name, value in current.args.items(multi=True):
        check_text(name, "query parameter name", multiline=False)
        check_text(value, f"query parameter {name!r}", multiline=False)
    _check_headers(current)
    signed = _signed_body(current)
    if not signed and current.mimetype in _FORM_TYPES:
        for name, value in current.form.items(multi=True):
            check_text(name, "form field name")
            check_text(value, f"form field {name!r}")
    if signed or current.is_json:
        data = current.get_data(cache=True)
        if data:
            _check_json_body(data, signed)


# The WSGI environ's keys that hold a request's headers (werkzeug's EnvironHeaders reads these).
_HEADER_KEYS = ("HTTP_", "CONTENT_TYPE", "CONTENT_LENGTH")


def _check_headers(current: Request) -> None:
    """No header value holds a control character: all of them looked at in one search (a
    tab, which a value may hold, joins them), each one only to name the one that does."""
    try:
        values = "\t".join([v for k, v in current.environ.items() if k.startswith(_HEADER_KEYS)])
    except TypeError:  # a value that is not text (a test's environ): each is looked at below
        values = "\x00"
    if not _HEADER_CONTROL.search(values):
        return
    for name, value in current.headers.items():
        if _HEADER_CONTROL.search(value):
            raise RefusedInput(f"header {name}: contains a control character; remove it")


def _signed_body(current: Request) -> bool:
    """Bank callbacks: the raw bytes are signed, so the form parser must never consume them."""
    return current.path.startswith("/bank/")


def _check_json_body(data: bytes, signed: bool) -> None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        if signed:
            return  # the signature check says so, without storing anything
        raise RefusedInput("body: is not UTF-8 text", field="body") from None
    # A text with no more brackets than the limit cannot nest deeper (most bodies).
    brackets = text.count("[") + text.count("{")
    if brackets > MAX_JSON_DEPTH and json_depth(text) > MAX_JSON_DEPTH:
        raise RefusedInput(
            f"body: JSON nested deeper than {MAX_JSON_DEPTH} levels is not accepted",
            field="body",
        )
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        return  # not JSON: each view says so in its own words (or stores it as invalid)
    # Parsed strictly from UTF-8, a text without a backslash or DEL has clean strings: JSON
    # refuses raw control characters in a string, UTF-8 has no lone surrogates, and every
    # other way to write one (\u0000, \b, \ud800) is an escape.
    if not _clean(document, strings="\\" in text or "\x7f" in text):
        _refuse_json(document, "body")
    g.kassa_checked_json = (data, document)


NOT_PARSED = object()


def checked_json(data: bytes) -> Any:
    """The JSON document this hook parsed and checked from exactly ``data`` (this request's
    body), so a view need not parse it again; :data:`NOT_PARSED` if it did not parse it."""
    kept = g.get("kassa_checked_json")
    if kept is None or kept[0] is not data:
        return NOT_PARSED
    return kept[1]


# -- logging -----------------------------------------------------------------------------------

# The escaping lives with the one logging setup (gateway/adapters/logging_setup.py): every
# process escapes its log lines the same way, not only the web tier.
escape_for_log = logging_setup.escape_for_log
install_log_escaping = logging_setup.install_log_escaping


def install(app: Flask) -> None:
    """Run :func:`check_request` before every view, and escape what the web tier logs."""
    app.before_request(check_request)
    install_log_escaping()
