"""User-facing text in Polish first, with English and Ukrainian.

Catalogs are TOML files ``translations/<domain>.<lang>.toml`` (one domain per feature, so
each can be edited alone); all domains of a language are merged. Polish is complete; the
other languages fall back to Polish key by key. Pages pick the language from ``?lang=``, then the ``lang`` cookie, then
the municipality's default; SMS use the resident's own language.
"""

from __future__ import annotations

import tomllib
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from flask import current_app, g, has_request_context, request
from markupsafe import Markup

from municipality import LANGUAGES

CATALOG_DIR = Path(__file__).resolve().parent / "translations"
LANGUAGE_NAMES = {"pl": "Polski", "en": "English", "uk": "Українська"}
# Staff pages exist in these only (translations/admin*.toml have no Ukrainian).
STAFF_LANGUAGES = ("pl", "en")


def flatten(data: dict[str, Any]) -> dict[str, str]:
    """A parsed catalog file as {dotted.key: text} (nested tables become dotted keys)."""
    flat: dict[str, str] = {}

    def walk(prefix: str, node: dict[str, Any]) -> None:
        for k, v in node.items():
            key = f"{prefix}.{k}" if prefix else k
            if isinstance(v, dict):
                walk(key, v)
            else:
                flat[key] = str(v)

    walk("", data)
    return flat


@lru_cache(maxsize=None)
def _catalog(lang: str) -> dict[str, str]:
    flat: dict[str, str] = {}
    for path in sorted(CATALOG_DIR.glob(f"*.{lang}.toml")):
        with path.open("rb") as fh:
            flat.update(flatten(tomllib.load(fh)))
    return flat


# CLDR plural categories: a catalog writes a counted text as a table of these
# (`recipients = { one = "{count} odbiorca", few = "{count} odbiorcy", many = "{count} odbiorców" }`)
# and `translate(..., count=n)` picks the one `lang` uses for n (Babel's plural rules).
PLURAL_CATEGORIES = ("zero", "one", "two", "few", "many", "other")


def plural_category(lang: str, count: Any) -> str:
    """The CLDR plural category of `count` in `lang` ("1 200" as formatted counts too)."""
    from babel import Locale

    if isinstance(count, str):
        digits = "".join(ch for ch in count if ch.isdigit())
        count = int(digits) if digits else 0
    return Locale.parse(lang).plural_form(count)


def _plural(catalog: dict[str, str], key: str, lang: str, params: dict[str, Any]) -> str | None:
    if "count" not in params or f"{key}.other" not in catalog and f"{key}.one" not in catalog:
        return None
    form = plural_category(lang, params["count"])
    return catalog.get(f"{key}.{form}") or catalog.get(f"{key}.other") or catalog.get(f"{key}.many")


def lookup(key: str, lang: str, **params: Any) -> str | None:
    """The text for `key` in `lang` (falling back to Polish), or None when no catalog has
    it: for labels that may well be missing (an audit detail, a feed not named yet), where
    the caller shows the raw value instead. A counted text takes the form for `count`."""
    text = (_catalog(lang).get(key) or _plural(_catalog(lang), key, lang, params)
            or _catalog("pl").get(key) or _plural(_catalog("pl"), key, "pl", params))
    if text is None:
        return None
    return text.format(**params) if params else text


def translate(key: str, lang: str, **params: Any) -> str:
    """The text for `key` in `lang`, falling back to Polish; a missing key raises KeyError
    in tests (so a typo cannot ship) and shows the key itself in production. A counted
    text (a table of plural forms) takes the form for `count` in that language."""
    text = lookup(key, lang, **params)
    if text is None:
        if current_app and current_app.config.get("TESTING"):
            raise KeyError(f"no translation for {key!r}")
        return key
    return text


def country_names(regions: list[str] | tuple[str, ...], lang: str) -> str:
    """ISO 3166 region codes as country names in `lang`, joined with commas ("PL", "CZ" ->
    "Polska, Czechy"; in Ukrainian "Польща, Чехія"). The names come from CLDR through
    Babel, so every country is named without a hand-kept list; an unknown code stays a code."""
    territories = Locale.parse(lang).territories
    return ", ".join(territories.get(code, code) for code in regions)


def current_language() -> str:
    if has_request_context():
        lang = getattr(g, "lang", None)
        if lang:
            return lang
    return current_app.extensions["municipality"].default_language


def t(key: str, **params: Any) -> str:
    """Translate into the language of the current page."""
    return translate(key, current_language(), **params)


def _staff_page() -> bool:
    return (request.blueprint or "").startswith("admin") or request.path.startswith("/admin")


def select_language() -> None:
    """before_request hook: choose the page language.

    Staff pages exist in Polish and English only (translations/admin*.toml), so a resident's
    Ukrainian choice shows them in Polish, marked lang="pl", and is not overwritten."""
    offered = STAFF_LANGUAGES if _staff_page() else LANGUAGES
    default = current_app.extensions["municipality"].default_language
    asked = request.args.get("lang") or request.cookies.get("lang")
    g.lang = asked if asked in offered else (default if default in offered else "pl")
    g.set_lang_cookie = request.args.get("lang") in offered


def other_lang(shown: str) -> Markup:
    """` lang="xx"` for an element whose text is in language `shown` when that is not the
    page's language (a message without a Ukrainian text shows its Polish one), else nothing:
    screen readers and translators then know which language they read."""
    if shown == current_language():
        return Markup("")
    return Markup(' lang="{}"').format(shown)


def translate_marked(key: str, lang: str, names: dict[str, tuple[str, str]], **params: Any) -> Markup:
    """`translate(key, lang, ...)` as HTML in which each of `names` (placeholder -> (text,
    its language)) not in `lang` is wrapped in <span lang="...">: a Polish office's name in a
    Ukrainian sentence is marked Polish. The same words as translate; everything escaped."""
    marked = {k: (Markup('<span lang="{}">{}</span>').format(name_lang, text) if name_lang != lang else text)
              for k, (text, name_lang) in names.items()}
    return Markup.escape(translate(key, lang)).format(**params, **marked)


def t_marked(key: str, names: dict[str, tuple[str, str]], **params: Any) -> Markup:
    """translate_marked into the language of the current page."""
    return translate_marked(key, current_language(), names, **params)


def shown_language(texts: dict[str, str], lang: str) -> str:
    """The language `texts` (language -> text, Polish always there) are shown in on a `lang`
    page: `lang` itself if it has a text, else Polish, as Alert.title/text fall back."""
    return lang if texts.get(lang) else "pl"


def remember_language(response):  # noqa: ANN001, ANN201
    """after_request hook: keep an explicit language choice in a cookie."""
    if getattr(g, "set_lang_cookie", False):
        response.set_cookie("lang", g.lang, max_age=365 * 24 * 3600, samesite="Lax",
                            secure=current_app.config.get("SESSION_COOKIE_SECURE", False))
    return response
