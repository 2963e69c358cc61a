"""Every text exists in every language it is shown in, with the same placeholders.

Residents may choose Polish, English or Ukrainian, so every resident-facing key needs all
three: a missing one would show Polish under a Ukrainian page (i18n.translate falls back),
and consent shown in a language the person may not read is weak consent. Staff work in
Polish or English, so staff-only texts need those two. Staff-only means a catalog whose
area starts with "admin" (admin, admin_messages, admin_people) or a key under "admin."
(the dashboard blocks that live beside their feature, e.g. sms.*.toml, webhooks.*.toml).
"""

from __future__ import annotations

import string
import tomllib
from pathlib import Path

import pytest

from i18n import CATALOG_DIR, PLURAL_CATEGORIES, flatten
from municipality import LANGUAGES

STAFF_LANGUAGES = ("pl", "en")


def flat(path: Path) -> dict[str, str]:
    """The catalog file as {dotted.key: text}; an absent file is an empty catalog."""
    if not path.exists():
        return {}
    return flatten(tomllib.loads(path.read_text(encoding="utf-8")))


def areas(catalog_dir: Path) -> list[str]:
    return sorted({p.name.split(".", 1)[0] for p in catalog_dir.glob("*.*.toml")})


def required_languages(area: str, key: str) -> tuple[str, ...]:
    """The languages `key` of catalog `area` must exist in."""
    if area.startswith("admin") or key.startswith("admin."):
        return STAFF_LANGUAGES
    return tuple(LANGUAGES)


def needs_plural_form(key: str, lang: str) -> bool:
    """A counted text (a table of CLDR plural forms) needs only the forms `lang` has:
    Polish has one/few/many, English one/other (i18n.translate picks by Babel's rules)."""
    *_, last = key.rsplit(".", 1)
    if last not in PLURAL_CATEGORIES:
        return True
    from babel import Locale

    return last in Locale.parse(lang).plural_form.tags | {"other"}


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def problems(catalog_dir: Path) -> list[str]:
    """Every missing key, key unknown to Polish, and placeholder mismatch, one line each."""
    found: list[str] = []
    for area in areas(catalog_dir):
        polish = flat(catalog_dir / f"{area}.pl.toml")
        for lang in LANGUAGES:
            if lang == "pl":
                continue
            other = flat(catalog_dir / f"{area}.{lang}.toml")
            for key, text in polish.items():
                if key not in other:
                    if lang in required_languages(area, key) and needs_plural_form(key, lang):
                        found.append(f"{area}.{lang}: {key} missing")
                    continue
                if placeholders(other[key]) != placeholders(text):
                    found.append(f"{area}.{lang}: {key} has placeholders "
                                 f"{sorted(placeholders(other[key]))}, Polish {sorted(placeholders(text))}")
            for key in sorted(set(other) - set(polish)):
                found.append(f"{area}.{lang}: {key} is not in {area}.pl.toml")
    return found


def test_every_key_exists_in_every_language_it_must_with_the_same_placeholders():
    found = problems(CATALOG_DIR)
    assert not found, f"{len(found)} translation problems:\n" + "\n".join(found)


def test_the_ukrainian_catalogs_cover_every_resident_facing_area():
    # Guards the rule above from passing vacuously: the resident areas are really checked.
    checked = [a for a in areas(CATALOG_DIR) if not a.startswith("admin")]
    for area in ("core", "pages", "alerts", "errors", "push"):
        assert area in checked
        assert flat(CATALOG_DIR / f"{area}.uk.toml"), f"{area}.uk.toml is missing or empty"


@pytest.mark.parametrize("broken, expected", [
    # A resident-facing key missing in Ukrainian.
    ({"core.uk.toml": '[error]\nphone_missing = "Введіть номер."\n'}, "core.uk: error.code_missing missing"),
    # A placeholder renamed in a translation.
    ({"core.uk.toml": '[error]\nphone_missing = "Введіть номер."\ncode_missing = "{x}"\n'},
     "core.uk: error.code_missing has placeholders ['x'], Polish []"),
    # A staff-only key missing in English (Ukrainian not required there).
    ({"admin.en.toml": ""}, "admin.en: "),
    # A key Polish does not have.
    ({"push.uk.toml": '[nowhere]\nx = "y"\n'}, "push.uk: nowhere.x is not in push.pl.toml"),
])
def test_the_check_fails_on_each_kind_of_problem(tmp_path, broken, expected):
    for path in CATALOG_DIR.glob("*.toml"):
        (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    for name, text in broken.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    found = problems(tmp_path)
    assert any(line.startswith(expected) for line in found), found
    assert not any(line.startswith("admin.uk") or ".uk: admin." in line for line in found)


def test_every_sms_reply_fits_its_two_segments_in_every_language():
    # Replies are cut at 2 segments (subscribers/keywords.py, codes.py), link and all; Cyrillic
    # goes as UCS-2 (67 characters a segment), so a long Ukrainian text loses its link.
    from alerts.sms_text import count_segments, transliterate

    link = "https://alerty.gminaporabka.pl/m/12345." + "x" * 22  # MAC_LENGTH, a 5-digit id
    values = {"gmina": "Gmina Porąbka", "link": link, "code": "123456", "minutes": 10, "area": "CZA",
              "codes": "BUJ, CZA, KOB, POR", "example": "BUJ", "site": "https://alerty.gminaporabka.pl"}
    for lang in LANGUAGES:
        sms = tomllib.loads((CATALOG_DIR / f"core.{lang}.toml").read_text(encoding="utf-8"))["sms"]
        for key, text in sms.items():
            body = text.format(stop=sms["confirmed_stop"], **values)
            body = body if lang == "uk" else transliterate(body)
            assert count_segments(body).segments <= 2, f"core.{lang} sms.{key}: {len(body)} characters"


@pytest.mark.parametrize(("lang", "count", "text"), [
    ("pl", 1, "1 odbiorca"), ("pl", 2, "2 odbiorcy"), ("pl", 4, "4 odbiorcy"), ("pl", 5, "5 odbiorców"),
    ("pl", 12, "12 odbiorców"), ("pl", 22, "22 odbiorcy"), ("pl", "1\u00a0200", "1\u00a0200 odbiorców"),
    ("en", 1, "1 recipient"), ("en", 2, "2 recipients"),
])
def test_a_counted_text_takes_the_languages_plural_form(app, lang, count, text):
    from i18n import translate

    assert translate("admin.msg.preview.recipients", lang, count=count) == text
