"""The translation layer: Flask-Babel over gettext catalogues in ``gateway/translations``.

This module holds what any layer may use: the languages, the catalogues, the request's
locale and the marking functions. Choosing the request's language and installing Flask-Babel
are the web tier's (gateway/entrypoints/languages.py).

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
from flask_babel import get_locale, gettext, lazy_gettext, ngettext

__all__ = [
    "DEFAULT_LOCALE",
    "LANGUAGE_NAMES",
    "LOCALES",
    "TRANSLATIONS",
    "catalogue",
    "current_locale",
    "gettext",
    "html_lang",
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


def current_locale() -> str:
    """The request's locale as a Kassa identifier (``en`` outside a request)."""
    locale = get_locale()
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
