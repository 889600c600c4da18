"""The translation layer: Flask-Babel over gettext catalogues in ``gateway/translations``.

Every user-visible string is marked: ``_("…")`` in templates (Flask-Babel puts ``_``,
``gettext`` and ``ngettext`` into Jinja) and ``gettext``/``lazy_gettext`` from this module in
Python. The language follows the signed-in staff member's setting, then the browser's
Accept-Language, then English. Catalogues: English (the source), Simplified Chinese (zh_CN),
German (de); ``make setup`` compiles them (``pybabel compile -d gateway/translations``).
"""

from __future__ import annotations

from pathlib import Path

from flask import Flask, g, has_request_context, request
from flask_babel import Babel, get_locale, gettext, lazy_gettext, ngettext

__all__ = [
    "DEFAULT_LOCALE",
    "LOCALES",
    "TRANSLATIONS",
    "current_locale",
    "gettext",
    "install",
    "lazy_gettext",
    "ngettext",
]

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LOCALE = "en"
#: The languages Kassa speaks, as Babel locale identifiers.
LOCALES = ("en", "zh_CN", "de")


def choose_locale() -> str:
    """The staff member's chosen language (``g.staff_locale``), else the browser's, else
    English. A browser asking for plain ``zh`` (or ``zh-Hans``) gets Simplified Chinese."""
    chosen = g.get("staff_locale") if has_request_context() else None
    if chosen in LOCALES:
        return str(chosen)
    if not has_request_context():
        return DEFAULT_LOCALE
    for language, _quality in request.accept_languages:
        tag = language.replace("-", "_").lower()
        if tag.startswith("zh"):
            if tag in ("zh", "zh_cn", "zh_hans", "zh_hans_cn", "zh_sg"):
                return "zh_CN"
            continue  # Traditional Chinese is not offered: try the browser's next language
        primary = tag.split("_")[0]
        if primary in ("en", "de"):
            return primary
    return DEFAULT_LOCALE


def current_locale() -> str:
    """The request's locale as a Babel identifier (``en`` outside a request)."""
    locale = get_locale() if has_request_context() else None
    if locale is None:
        return DEFAULT_LOCALE
    if locale.language == "zh":
        return "zh_CN"  # Babel reads zh_CN as zh_Hans_CN
    return str(locale.language)


def install(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    Babel(app, locale_selector=choose_locale)
