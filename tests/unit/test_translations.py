"""The catalogues hold every marked string, translated; the templates leave no text unmarked.

(a) The strings are extracted again here with Babel's own API, as ``make translations`` does
(babel.cfg, keywords ``_l``, ``lazy_gettext`` and ``N_``): each must be in messages.pot and
translated, not fuzzy, with the same placeholders, in Simplified Chinese and German.
(b) Every template's text and readable attributes (placeholder, title, aria-label, alt) are
read outside Jinja's ``{{ }}``/``{% %}``, ``<script>`` and ``<style>``: text with letters must
be inside ``_()``, except a few names that are never translated.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import read_mo
from babel.messages.pofile import read_po

from gateway.adapters import i18n

ROOT = Path(__file__).resolve().parents[2]
TRANSLATIONS = ROOT / "gateway" / "translations"
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "_l": None,
    "lazy_gettext": None,
    "N_": None,
}
TRANSLATED = ("zh_CN", "de")
# Names and units shown as they are in every language (webhook-id: a Standard Webhooks header).
NEVER_TRANSLATED = {"Kassa", "K", "UTC", "SHA-256", "EUR", "CSV", "QR", "webhook-id"}
TEMPLATE_DIRS = [
    ROOT / "gateway" / "entrypoints" / "templates",
    ROOT / "merchant_portal" / "templates",
]
READABLE_ATTRIBUTES = ("placeholder", "title", "aria-label", "alt")
PLACEHOLDER = re.compile(r"%\(\w+\)[sd]|%%")


def extracted() -> Catalog:
    """What ``pybabel extract -F babel.cfg -k _l -k lazy_gettext -k N_`` finds, as a catalogue."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    catalog = Catalog()
    for filename, lineno, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS
    ):
        catalog.add(message, None, [(filename, lineno)], context=context)
    return catalog


def ids(catalog: Catalog) -> set[str]:
    return {m.id if isinstance(m.id, str) else m.id[0] for m in catalog if m.id}


def po(locale: str) -> Catalog:
    with open(TRANSLATIONS / locale / "LC_MESSAGES" / "messages.po", "rb") as f:
        return read_po(f, locale=locale)


@pytest.fixture(scope="module")
def source() -> Catalog:
    return extracted()


def test_the_template_holds_every_marked_string(source: Catalog) -> None:
    with open(TRANSLATIONS / "messages.pot", "rb") as f:
        pot = read_po(f)
    missing = sorted(ids(source) - ids(pot))
    assert missing == [], f"run `make translations`: {missing[:20]}"
    assert len(ids(source)) > 500  # the extraction found the templates and the code


@pytest.mark.parametrize("locale", TRANSLATED)
def test_each_catalogue_translates_every_string_with_its_placeholders(
    source: Catalog, locale: str
) -> None:
    catalogue = po(locale)
    problems = []
    for message in source:
        if not message.id:
            continue
        key = message.id if isinstance(message.id, str) else message.id[0]
        found = catalogue.get(message.id)
        if found is None:
            problems.append(f"missing: {key!r}")
            continue
        forms = [found.string] if isinstance(found.string, str) else list(found.string)
        if found.fuzzy or not all(forms):
            problems.append(f"{'fuzzy' if found.fuzzy else 'untranslated'}: {key!r}")
            continue
        english = message.id if isinstance(message.id, str) else message.id[1]
        for form in forms:
            if sorted(PLACEHOLDER.findall(form)) != sorted(PLACEHOLDER.findall(english)):
                problems.append(f"placeholders differ: {key!r} -> {form!r}")
    assert problems == [], f"{locale}: {len(problems)} problems, e.g. {problems[:15]}"


def test_a_catalogue_without_its_compiled_file_is_compiled_in_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "zh_CN" / "LC_MESSAGES"
    folder.mkdir(parents=True)
    (folder / "messages.po").write_bytes(
        (TRANSLATIONS / "zh_CN" / "LC_MESSAGES" / "messages.po").read_bytes()
    )
    monkeypatch.setattr(i18n, "TRANSLATIONS", tmp_path)
    assert i18n.catalogue("zh_CN").gettext("Refund") == "退款"
    assert sorted(p.name for p in folder.iterdir()) == ["messages.po"]  # nothing written


def test_the_compiled_catalogues_match_their_sources() -> None:
    """``make setup`` compiled them; a stale one would be compiled in memory instead."""
    for locale in TRANSLATED:
        mo = TRANSLATIONS / locale / "LC_MESSAGES" / "messages.mo"
        if not mo.exists():
            pytest.skip("the catalogues are not compiled (run `make setup`)")
        with open(mo, "rb") as f:
            compiled = read_mo(f)
        assert ids(compiled) == ids(po(locale)) - {""}


class _Text(HTMLParser):
    """Text with letters, and readable attribute values with letters, outside script/style."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in READABLE_ATTRIBUTES and value and readable(value):
                self.found.append(f'{name}="{value}"')

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip and readable(data):
            self.found.append(data.strip())


def readable(text: str) -> bool:
    """Words a person reads; names in NEVER_TRANSLATED and examples of codes ("T03",
    "staff:manager", "payment.succeeded") are not."""
    for token in text.split():
        if re.search(r"\w[.:/@\d]|\d", token):
            continue  # a code or an example value, not words
        if any(word not in NEVER_TRANSLATED for word in re.findall(r"[^\W\d_][\w-]*", token)):
            return True
    return False


def unmarked(template: str) -> list[str]:
    """The text of a template that a person reads but no ``_()`` translates."""
    # A block that fills a tag's attributes (payment.html's body_attrs) is not text.
    template = re.sub(
        r"\{%-?\s*block (body_class|body_attrs)\b.*?\{%-?\s*endblock", " ", template, flags=re.S
    )
    without_jinja = re.sub(r"\{\{.*?\}\}|\{%.*?%\}|\{#.*?#\}", " ", template, flags=re.S)
    parser = _Text()
    parser.feed(without_jinja)
    parser.close()
    return parser.found


def templates() -> list[Path]:
    return sorted(p for folder in TEMPLATE_DIRS for p in folder.rglob("*.html"))


def test_the_checker_finds_text_that_is_not_marked() -> None:
    page = '<p>Paid {{ x }}</p><p>{{ _("Fine") }}</p><input placeholder="Name"><b>Kassa</b>'
    assert unmarked(page) == ["Paid", 'placeholder="Name"']
    assert unmarked("<script>var a = 'text';</script><style>p { color: red }</style>") == []


@pytest.mark.parametrize("template", templates(), ids=lambda p: p.name)
def test_no_template_shows_text_outside_a_translation(template: Path) -> None:
    assert unmarked(template.read_text(encoding="utf-8")) == []
