"""The translation layer: Flask-Babel over gettext catalogues in ``gateway/translations``.

Every user-visible string is marked: ``_("…")`` in templates (Flask-Babel puts ``_``,
``gettext`` and ``ngettext`` into Jinja) and ``gettext``/``lazy_gettext`` from this module in
Python. The language follows the signed-in staff member's setting, then the browser's
Accept-Language, then English. Catalogues: English (the source), Simplified Chinese (zh_CN),
German (de).

``make setup`` compiles the catalogues (``pybabel compile -d gateway/translations``); the
``.mo`` files are build output, not committed. A catalogue whose ``.mo`` is missing or older
than its ``.po`` (a fresh clone run without ``make``, a translation edited while the server
runs) is compiled in memory from the ``.po`` instead, so a page never silently falls back to
English and nothing is written into the checkout at run time.

Catalogues are found by Kassa's own identifiers (``zh_CN``), not Babel's: Babel reads
``zh_CN`` as ``zh_Hans_CN``, and gettext's file lookup would then try ``zh_Hans_CN`` and ``zh``
but never the ``zh_CN`` folder.
"""

from __future__ import annotations

import functools
import io
from pathlib import Path

from babel import support
from babel.dates import get_day_names
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from flask import Flask, g, has_request_context, request
from flask_babel import Babel, Domain, get_locale, gettext, lazy_gettext, ngettext

__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_NAMES",
    "LOCALES",
    "TRANSLATIONS",
    "catalogue",
    "current_locale",
    "gettext",
    "html_lang",
    "install",
    "lazy_gettext",
    "ngettext",
    "weekday_names",
]

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
DEFAULT_LOCALE = "en"
#: The languages Kassa speaks, as Babel locale identifiers.
LOCALES = ("en", "zh_CN", "de")
#: Each language in its own words, for the language menus (never translated).
LANGUAGE_NAMES = {"en": "English", "zh_CN": "简体中文", "de": "Deutsch"}
#: ``<html lang>`` values (BCP 47): the browser's date pickers and hyphenation follow them.
HTML_LANG = {"en": "en", "zh_CN": "zh-CN", "de": "de"}


def choose_locale() -> str:
    """The staff member's chosen language (``g.staff_locale``), else the language chosen on a
    sign-in page (``?lang=`` kept in the session), else the browser's, else English. A browser
    asking for plain ``zh`` (or ``zh-Hans``) gets Simplified Chinese."""
    chosen = g.get("staff_locale") if has_request_context() else None
    if chosen in LOCALES:
        return str(chosen)
    if not has_request_context():
        return DEFAULT_LOCALE
    from flask import session

    picked = session.get("lang")
    if picked in LOCALES:
        return str(picked)
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
    """The request's locale as a Kassa identifier (``en`` outside a request)."""
    locale = get_locale() if has_request_context() else None
    if locale is None:
        return DEFAULT_LOCALE
    if locale.language == "zh":
        return "zh_CN"  # Babel reads zh_CN as zh_Hans_CN
    return str(locale.language)


def html_lang() -> str:
    """The request's language as ``<html lang>`` wants it (``zh-CN``, ``de``, ``en``)."""
    return HTML_LANG[current_locale()]


def weekday_names() -> list[str]:
    """Monday to Sunday, abbreviated in the request's language (Mo., 周一, Mon)."""
    names = get_day_names("abbreviated", locale=current_locale())
    return [names[day] for day in range(7)]


def catalogue(locale: str) -> support.NullTranslations:
    """The compiled catalogue of one of :data:`LOCALES` (the ``.po`` compiled in memory when
    its ``.mo`` is missing or older)."""
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    po, mo = folder / "messages.po", folder / "messages.mo"
    po_stamp = po.stat().st_mtime_ns if po.exists() else 0
    mo_stamp = mo.stat().st_mtime_ns if mo.exists() else 0
    return _load(locale, po_stamp, mo_stamp)


@functools.lru_cache(maxsize=16)
def _load(locale: str, po_stamp: int, mo_stamp: int) -> support.NullTranslations:
    folder = TRANSLATIONS / locale / "LC_MESSAGES"
    if mo_stamp and mo_stamp >= po_stamp:
        with open(folder / "messages.mo", "rb") as mo:
            return support.Translations(mo, domain="messages")
    if not po_stamp:
        return support.NullTranslations()
    with open(folder / "messages.po", "rb") as po:
        messages = read_po(po, locale=locale)
    compiled = io.BytesIO()
    write_mo(compiled, messages)  # fuzzy entries are left out, as pybabel compile does
    compiled.seek(0)
    return support.Translations(compiled, domain="messages")


class _KassaDomain(Domain):  # type: ignore[misc]
    """Flask-Babel's domain, finding the catalogue by Kassa's locale identifier, once per
    request."""

    def get_translations(self) -> support.NullTranslations:
        if not has_request_context():
            return support.NullTranslations()
        cached: support.NullTranslations | None = g.get("_kassa_translations")
        if cached is None:
            cached = catalogue(current_locale())
            g._kassa_translations = cached
        return cached


def install(app: Flask) -> None:
    app.config.setdefault("BABEL_DEFAULT_LOCALE", DEFAULT_LOCALE)
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = str(TRANSLATIONS)
    babel = Babel(app, locale_selector=choose_locale)
    babel.domain_instance = _KassaDomain()  # replaces Flask-Babel's (a cached property)
    app.jinja_env.globals.update(html_lang=html_lang, current_locale=current_locale)

    @app.context_processor
    def _languages() -> dict[str, object]:
        """What a language menu needs: the languages (each in its own words), the one on."""
        return {"languages": LANGUAGE_NAMES, "page_locale": current_locale()}
