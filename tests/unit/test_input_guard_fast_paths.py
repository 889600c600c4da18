"""The input guard's shortcuts refuse exactly what its full checks refuse, in the same words.

``check_json`` first looks without building paths (and a JSON body without a backslash or DEL
skips its strings), the headers are searched in one go, and a body with few brackets is not
measured for depth; each case below goes through the guard's hook in a bare Flask app and is
compared with the field-by-field check the guard made before.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from flask import Flask, g
from hypothesis import given
from hypothesis import strategies as st

from gateway.entrypoints import input_guard
from gateway.entrypoints.input_guard import MAX_JSON_DEPTH, RefusedInput, check_json


def _reference(value: Any, field: str = "body") -> None:
    """The guard's check of a document as it was: every item walked with its path."""
    for path, item in input_guard._walk(value, field):
        if isinstance(item, str):
            input_guard.check_text(item, path)
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int) and abs(item) > input_guard.MAX_JSON_INTEGER:
            raise RefusedInput(f"{path}: the number is out of range", field=path)
        elif isinstance(item, float) and not math.isfinite(item):
            raise RefusedInput(f"{path}: the number is out of range", field=path)


def _outcome(check: Any, value: Any) -> str | None:
    try:
        check(value)
    except RefusedInput as exc:
        return str(exc)
    return None


_TEXT = st.text(alphabet=st.sampled_from(["a", "é", "\t", "\n", "\x00", "\x08", "\x7f", "\ud800"]))
_DOCUMENTS = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | _TEXT,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_TEXT, children, max_size=4),
    max_leaves=12,
)


@given(_DOCUMENTS)
def test_check_json_refuses_what_the_full_walk_refuses(document: Any) -> None:
    assert _outcome(check_json, document) == _outcome(_reference, document)


@pytest.fixture
def app() -> Flask:
    app = Flask(__name__)
    input_guard.install(app)

    @app.post("/api/echo")
    @app.post("/bank/echo")
    def echo() -> Any:
        kept = g.get("kassa_checked_json")
        return {"parsed": kept is not None}

    @app.errorhandler(RefusedInput)
    def refused(exc: RefusedInput) -> Any:
        return {"detail": str(exc)}, 422

    return app


@pytest.mark.parametrize("path", ["/api/echo", "/bank/echo"])
@pytest.mark.parametrize(
    ("body", "refused"),
    [
        ('{"a": "plain"}', None),
        ('{"a": "tab\\tand\\nnew line"}', None),
        ('{"a": "back\\bspace"}', "body.a: contains the control character U+0008; remove it"),
        ('{"a": ["\\u0000"]}', "body.a.0: contains the control character U+0000; remove it"),
        ('{"\\u001f": 1}', "body (a key): contains the control character U+001F; remove it"),
        (
            '{"a": "\\ud800"}',
            "body.a: contains a lone surrogate (not valid Unicode text); remove it",
        ),
        ('{"a": "del\x7f"}', "body.a: contains the control character U+007F; remove it"),
        ('{"a": 9223372036854775808}', "body.a: the number is out of range"),
        ('{"a": -9223372036854775807}', None),
        ('{"a": 1e999}', "body.a: the number is out of range"),
        ('{"a": NaN}', "body.a: the number is out of range"),
        ('{"a": "' + "[" * 40 + '"}', None),  # brackets in a string do not nest
        ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nested deeper"),
        ("[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH, None),
    ],
)
def test_json_bodies_are_refused_as_before(
    app: Flask, path: str, body: str, refused: str | None
) -> None:
    answer = app.test_client().post(
        path, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    if refused is None:
        assert answer.status_code == 200, answer.get_data(as_text=True)
        assert answer.json == {"parsed": True}
    else:
        assert answer.status_code == 422
        assert refused in answer.json["detail"]
        if "nested" not in refused:
            assert answer.json["detail"] == refused
            assert _outcome(_reference, json.loads(body)) == refused


def test_a_control_character_in_any_header_is_refused_and_named(app: Flask) -> None:
    client = app.test_client()
    ok = client.post(
        "/api/echo", data=b"{}", headers={"X-Note": "a\tb", "Content-Type": "application/json"}
    )
    assert ok.status_code == 200
    bad = client.post(
        "/api/echo", data=b"{}", headers={"X-Note": "a\x01b", "Content-Type": "application/json"}
    )
    assert bad.status_code == 422
    assert bad.json["detail"] == "header X-Note: contains a control character; remove it"
