"""The request's language for the web tier: Flask-Babel installed with Kassa's choice of
language and its catalogues (gateway/adapters/i18n.py holds the languages and catalogues)."""

from __future__ import annotations

from babel import support
from flask import Flask, g, has_request_context, request, session
from flask_babel import Babel, Domain

from gateway.adapters.i18n import (
    DEFAULT_LOCALE,
    LANGUAGE_NAMES,
    LOCALES,
    TRANSLATIONS,
    catalogue,
    current_locale,
    html_lang,
)


def choose_locale() -> str:
    """The staff member's chosen language (``g.staff_locale``), else the language chosen on a
    sign-in page (``?lang=`` kept in the session), else the browser's, else English. A browser
    asking for plain ``zh`` (or ``zh-Hans``) gets Simplified Chinese."""
    chosen = g.get("staff_locale") if has_request_context() else None
    if chosen in LOCALES:
        return str(chosen)
    if not has_request_context():
        return DEFAULT_LOCALE
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
