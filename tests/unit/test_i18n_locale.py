"""Which language a request gets: the staff member's choice, then the browser's, then English."""

from __future__ import annotations

import pytest
from flask import Flask, g

from gateway.adapters import i18n
from gateway.entrypoints import languages


@pytest.mark.parametrize(
    ("accept", "expected"),
    [
        ("zh-CN,zh;q=0.9,en;q=0.8", "zh_CN"),
        ("zh", "zh_CN"),
        ("zh-Hans-CN", "zh_CN"),
        ("zh-TW,de;q=0.5", "de"),  # Traditional Chinese is not offered: the next one is
        ("de-DE,de;q=0.9", "de"),
        ("fr-FR,en;q=0.5", "en"),
        ("", "en"),
    ],
)
def test_the_browser_language_is_followed(accept: str, expected: str) -> None:
    app = Flask(__name__)
    languages.install(app)
    with app.test_request_context(headers={"Accept-Language": accept} if accept else {}):
        assert i18n.current_locale() == expected


def test_the_staff_members_choice_comes_before_the_browser() -> None:
    app = Flask(__name__)
    languages.install(app)
    with app.test_request_context(headers={"Accept-Language": "de"}):
        g.staff_locale = "zh_CN"
        assert i18n.current_locale() == "zh_CN"


def test_outside_a_request_it_is_english() -> None:
    assert i18n.current_locale() == "en"
