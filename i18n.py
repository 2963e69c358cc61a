"""User-facing text in Polish first, with English and Ukrainian.

The texts are gettext catalogs in Flask-Babel's layout, ``translations/<lang>/LC_MESSAGES/
<domain>.po`` compiled to ``.mo`` (`flask translate`, `make translations`): the domain
``messages`` holds what residents see (pl, en, uk) and ``admin`` the staff pages (pl, en).
Message ids are stable keys (``alert.valid``), not Polish sentences: Polish is the source
language in ``pl/`` (a monolingual catalog, as Weblate and Poedit handle it), and the other
languages carry each Polish text as a translator's comment. A language falls back to Polish
key by key. Pages pick the language from ``?lang=``, then the ``lang`` cookie, then the
municipality's default; SMS use the resident's own language. Placeholders are ``{name}``
(flagged python-brace-format in the catalogs) and counted texts are gettext plurals,
chosen by each language's Plural-Forms rule.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel import Locale
from babel.support import NullTranslations, Translations
from flask import current_app, g, has_request_context, request
from markupsafe import Markup

from municipality import LANGUAGES

CATALOG_DIR = Path(__file__).resolve().parent / "translations"
# Resident texts, then staff texts; a key lives in exactly one (tests/test_translations_complete.py).
DOMAINS = ("messages", "admin")
LANGUAGE_NAMES = {"pl": "Polski", "en": "English", "uk": "Українська"}
# Staff pages exist in these only (the admin domain has no Ukrainian catalog).
STAFF_LANGUAGES = ("pl", "en")


@lru_cache(maxsize=None)
def catalog(lang: str) -> NullTranslations:
    """Every domain of `lang` merged into one (keys are unique across domains); a language
    without compiled catalogs is an empty one, so everything falls back to Polish."""
    merged = Translations()
    for domain in DOMAINS:
        loaded = Translations.load(str(CATALOG_DIR), [lang], domain)
        merged.merge(loaded)
        # Translations.merge copies the texts only; the plural rule is the language's own. A
        # missing domain (Ukrainian has no admin catalog) loads as NullTranslations, whose
        # `plural` is English's: it must not replace the real one.
        if isinstance(loaded, Translations):
            merged.plural = loaded.plural
    return merged


def _count(value: Any) -> int:
    """A count for the plural rule; "1 200" (a formatted count) counts as 1200."""
    if isinstance(value, str):
        digits = "".join(ch for ch in value if ch.isdigit())
        return int(digits) if digits else 0
    return int(value)


def _text(key: str, lang: str, params: dict[str, Any]) -> str | None:
    texts = catalog(lang)
    if "count" in params:
        text = texts.ngettext(key, key, _count(params["count"]))
        if text != key:
            return text
    text = texts.gettext(key)
    return None if text == key else text


def lookup(key: str, lang: str, **params: Any) -> str | None:
    """The text for `key` in `lang` (falling back to Polish), or None when no catalog has
    it: for labels that may well be missing (an audit detail, a feed not named yet), where
    the caller shows the raw value instead. A counted text takes the form for `count`. A
    translation whose placeholders are broken (a stray brace) shows the Polish text rather
    than failing the page; `make translations` reports it."""
    text = _text(key, lang, params)
    if text is not None and params:
        try:
            return text.format(**params)
        except (KeyError, IndexError, ValueError):
            text = None
    if text is None and lang != "pl":
        text = _text(key, "pl", params)
    if text is None:
        return None
    return text.format(**params) if params else text


def plural_forms(key: str, lang: str) -> dict[str, str]:
    """A counted text's forms by CLDR category, unformatted ({"one": "{count} znak", "few":
    ..., "many": ...}), for a page script that counts as the reader types: it picks with
    Intl.PluralRules, the same CLDR rules Babel gives the catalogs' Plural-Forms."""
    forms: dict[str, str] = {}
    plural = Locale.parse(lang).plural_form
    for n in range(200):
        category = plural(n)
        if category not in forms:
            text = _text(key, lang, {"count": n}) or _text(key, "pl", {"count": n})
            if text is None:
                raise KeyError(f"no translation for {key!r}")
            forms[category] = text
    return forms


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


# Dates and numbers in the page's language (CLDR through Babel): "3 gru 2026, 06:15",
# "1 200", "0,60 zł" in Polish; "Dec 3, 2026, 6:15 AM", "1,200", "PLN 0.60" in English.
# The language is current_language() and the zone the municipality's, the same choice
# Flask-Babel's selectors make (init_babel), so its gettext and format_* agree with these.

def _zone():  # noqa: ANN202
    from zoneinfo import ZoneInfo

    return ZoneInfo(current_app.extensions["municipality"].timezone)


def local_time(value: datetime | None) -> str:
    """Jinja filter: an aware time as the gmina's wall clock with a date ("3 gru 2026, 06:15");
    the month in words, so nobody reads 3.12 as March. Naive times are UTC (as stored)."""
    if value is None:
        return ""
    from babel import dates

    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    lang = current_language()
    local = value.astimezone(_zone())
    pattern = Locale.parse(lang).datetime_formats["medium"].replace("'", "")
    return pattern.format(dates.format_time(local, "short", locale=lang), dates.format_date(local, "medium", locale=lang))


def clock(value: datetime) -> str:
    """The gmina's wall-clock time alone ("06:15"; "6:15 AM" in English)."""
    from babel import dates

    return dates.format_time(value.astimezone(_zone()) if value.tzinfo else value, "short", locale=current_language())


def day_month(value: date) -> str:
    """A day of the year, short ("3.12" in Polish, "12/3" in English), for chart labels."""
    from babel import dates

    return dates.format_skeleton("Md", value, locale=current_language())


def month_name(month: str) -> str:
    """ "2026-12" as the month in words ("grudzień 2026", "December 2026", "грудень 2026 р.")."""
    from babel import dates

    year, number_ = (int(x) for x in month.split("-"))
    return dates.format_skeleton("yMMMM", date(year, number_, 1), locale=current_language())


def number(value: int | float) -> str:
    """A count as the page's language writes it ("12 000"; "12,000" in English)."""
    from babel import numbers

    return numbers.format_decimal(value, locale=current_language())


def money(value: Decimal, currency: str) -> str:
    """An amount with its currency ("0,60 zł"; "PLN 0.60" in English), two decimals."""
    from babel import numbers

    text = numbers.format_currency(value, currency, locale=current_language())
    # CLDR's currencySpacing (a space between a letter code and a digit), which Babel leaves out.
    return re.sub(r"(?<=[A-Za-z])(?=\d)|(?<=\d)(?=[A-Za-z])", "\u00a0", text)


def init_babel(app) -> None:  # noqa: ANN001
    """Flask-Babel over the same catalogs, language and zone as the functions above."""
    from flask_babel import Babel

    directories = ";".join([str(CATALOG_DIR)] * len(DOMAINS))
    # Staff texts first: Flask-Babel takes the plural rule of each domain it loads in turn,
    # and a missing one (Ukrainian admin) would leave English's if it came last.
    Babel(app, configure_jinja=False, default_domain=";".join(reversed(DOMAINS)),
          default_translation_directories=directories,
          default_locale=app.extensions["municipality"].default_language,
          default_timezone=app.extensions["municipality"].timezone,
          locale_selector=current_language,
          timezone_selector=lambda: app.extensions["municipality"].timezone)
