"""Every text exists in every language it is shown in, with the same placeholders.

Residents may choose Polish, English or Ukrainian, so every key of the `messages` domain
needs all three: a missing one would show Polish under a Ukrainian page (i18n falls back),
and consent shown in a language the person may not read is weak consent. Staff work in
Polish or English, so the `admin` domain needs those two. The check is catalogs.problems,
the same one `make translations` (and `flask translate check`) runs.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from babel.messages.pofile import read_po, write_po

import catalogs
from i18n import CATALOG_DIR, translate


def test_every_key_exists_in_every_language_it_must_with_the_same_placeholders():
    found = catalogs.problems(CATALOG_DIR)
    assert not found, f"{len(found)} translation problems:\n" + "\n".join(found)


def test_every_key_the_code_names_has_a_polish_text():
    _, missing = catalogs.extract(CATALOG_DIR)
    assert not missing, "keys without a Polish text:\n" + "\n".join(missing)


def test_the_ukrainian_catalog_covers_the_resident_facing_areas():
    # Guards the rule above from passing vacuously: the resident areas are really checked.
    keys = {m.id for m in catalogs.read(CATALOG_DIR, "uk", "messages") if m.id and m.string}
    for area in ("consent.", "error.", "page.", "alert.", "push.", "sms.", "errors."):
        assert sum(k.startswith(area) for k in keys) >= 3, area
    assert catalogs.read(CATALOG_DIR, "uk", "admin") is None  # staff pages: Polish and English


def _edit(root: Path, lang: str, domain: str, change) -> None:  # noqa: ANN001
    catalog = catalogs.read(root, lang, domain)
    change(catalog)
    catalogs.write(catalog, catalogs.po_path(root, lang, domain))


def _set(key: str, text: str):  # noqa: ANN202
    def change(catalog) -> None:  # noqa: ANN001
        catalog[key].string = text
    return change


@pytest.mark.parametrize("lang, domain, change, expected", [
    # A resident-facing key untranslated in Ukrainian.
    ("uk", "messages", _set("error.code_missing", ""), "uk/messages: error.code_missing missing"),
    # A placeholder renamed in a translation.
    ("uk", "messages", _set("error.title_too_long", "{x}"), "uk/messages: error.title_too_long has placeholders ['x']"),
    # A staff-only key missing in English (Ukrainian is not required there).
    ("en", "admin", lambda c: c.delete("admin.title"), "en/admin: admin.title missing"),
    # A key Polish does not have.
    ("uk", "messages", lambda c: c.add("nowhere.x", "y"), "uk/messages: nowhere.x is not in pl/messages.po"),
    # A translation made from an older Polish text, marked for review by `update`.
    ("en", "messages", lambda c: c["alert.valid"].flags.add("fuzzy"), "en/messages: alert.valid is fuzzy"),
    # A stray brace: reported, not a traceback (the page shows Polish, i18n.lookup).
    ("uk", "messages", _set("error.title_too_long", "{limit знаків"), "uk/messages: error.title_too_long has a malformed"),
    # "Copy source" in a translator's tool: the key itself as the text.
    ("en", "messages", _set("alert.valid", "alert.valid"), "en/messages: alert.valid is untranslated"),
    # One key in both domains.
    ("pl", "admin", lambda c: c.add("alert.valid", "Obowiązuje"), "pl/admin: alert.valid is also in pl/messages"),
])
def test_the_check_fails_on_each_kind_of_problem(tmp_path, lang, domain, change, expected):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    _edit(root, lang, domain, change)
    catalogs.compile_all(root)
    found = catalogs.problems(root)
    assert any(line.startswith(expected) for line in found), found
    assert not any(line.startswith("uk/admin") for line in found)


def test_a_catalog_edited_without_compiling_is_reported(tmp_path):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    _edit(root, "uk", "messages", _set("alert.valid", "Чинне"))
    assert "uk/LC_MESSAGES/messages.po: its .mo is missing or out of date (make translations)" in catalogs.problems(root)
    catalogs.compile_all(root)
    assert catalogs.problems(root) == []


def test_update_adds_a_new_polish_key_untranslated_and_marks_a_changed_one_fuzzy(tmp_path):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    _edit(root, "pl", "messages", lambda c: c.add("alert.brand_new", "Nowy tekst"))
    _edit(root, "pl", "messages", _set("alert.valid", "Obowiązuje do odwołania"))
    templates, _ = catalogs.extract(root)
    catalogs.update(root, templates)
    uk = catalogs.read(root, "uk", "messages")
    assert uk["alert.brand_new"].string == "" and "pl: Nowy tekst" in uk["alert.brand_new"].auto_comments
    assert uk["alert.valid"].fuzzy and uk["alert.valid"].string == "Діє"
    assert uk["error.code_missing"].string and not uk["error.code_missing"].fuzzy  # untouched
    catalogs.compile_all(root)
    found = catalogs.problems(root)
    assert "uk/messages: alert.brand_new missing" in found
    assert any(line.startswith("uk/messages: alert.valid is fuzzy") for line in found)


def test_the_catalogs_are_plain_gettext_files_a_translators_tool_reads(tmp_path):
    # What Poedit or Weblate does: parse the .po and write it back unchanged in meaning.
    path = catalogs.po_path(CATALOG_DIR, "uk", "messages")
    with path.open("rb") as fh:
        catalog = read_po(fh)
    assert catalog.locale_identifier == "uk" and catalog.num_plurals == 3
    with (tmp_path / "again.po").open("wb") as fh:
        write_po(fh, catalog)
    with (tmp_path / "again.po").open("rb") as fh:
        again = read_po(fh)
    assert {m.id: m.string for m in again} == {m.id: m.string for m in catalog}


def test_every_sms_reply_fits_its_two_segments_in_every_language(app):
    # Replies are cut at 2 segments (subscribers/keywords.py, codes.py), link and all; Cyrillic
    # goes as UCS-2 (67 characters a segment), so a long Ukrainian text loses its link.
    from alerts.sms_text import count_segments, transliterate

    link = "https://alerty.gminaporabka.pl/m/12345." + "x" * 22  # MAC_LENGTH, a 5-digit id
    values = {"gmina": "Gmina Porąbka", "link": link, "code": "123456", "minutes": 10, "area": "CZA",
              "codes": "BUJ, CZA, KOB, POR", "example": "BUJ", "site": "https://alerty.gminaporabka.pl",
              "reference": "KZ/2026/00042"}
    keys = [m.id for m in catalogs.read(CATALOG_DIR, "pl", "messages") if isinstance(m.id, str)
            and m.id.startswith("sms.")]
    assert len(keys) >= 10
    for lang in ("pl", "en", "uk"):
        for key in keys:
            body = translate(key, lang, stop=translate("sms.confirmed_stop", lang), **values)
            body = body if lang == "uk" else transliterate(body)
            assert count_segments(body).segments <= 2, f"{lang} {key}: {len(body)} characters"


@pytest.mark.parametrize(("lang", "count", "text"), [
    ("pl", 1, "1 odbiorca"), ("pl", 2, "2 odbiorcy"), ("pl", 4, "4 odbiorcy"), ("pl", 5, "5 odbiorców"),
    ("pl", 12, "12 odbiorców"), ("pl", 22, "22 odbiorcy"), ("pl", "1\u00a0200", "1\u00a0200 odbiorców"),
    ("en", 1, "1 recipient"), ("en", 2, "2 recipients"),
])
def test_a_counted_text_takes_the_languages_plural_form(app, lang, count, text):
    assert translate("admin.msg.preview.recipients", lang, count=count) == text


def test_flask_babel_reads_the_same_catalogs_in_the_page_language(app):
    import flask_babel

    with app.test_request_context("/?lang=uk"):
        app.preprocess_request()
        assert str(flask_babel.get_locale()) == "uk"
        assert flask_babel.gettext("alert.valid") == translate("alert.valid", "uk") == "Діє"
    with app.test_request_context("/admin/?lang=en"):
        flask_babel.refresh()  # the fixture's app context (and its g, Flask-Babel's cache) spans both
        app.preprocess_request()
        assert flask_babel.gettext("admin.title") == "Syrena – office admin"


def test_a_page_script_gets_a_counted_texts_forms_by_cldr_category(app):
    from i18n import plural_forms

    polish = plural_forms("admin.msg.preview.segments", "pl")
    assert polish == {"many": "{count} części SMS", "one": "{count} część SMS", "few": "{count} części SMS"}
    assert plural_forms("admin.msg.preview.segments", "en") == {"other": "{count} SMS parts", "one": "{count} SMS part"}
    with pytest.raises(KeyError):
        plural_forms("admin.msg.no_such_text", "pl")


def test_ukrainian_counts_by_the_ukrainian_plural_rule_though_it_has_no_staff_catalog(app):
    import flask_babel

    from i18n import catalog

    # uk: 1, 21 -> "one" (0); 2-4, 22 -> "few" (1); 5-20, 25 -> "many" (2). English would say 1, 1, 1.
    assert [catalog("uk").plural(n) for n in (1, 21, 2, 22, 5, 11, 25)] == [0, 0, 1, 1, 2, 2, 2]
    assert [catalog("pl").plural(n) for n in (1, 2, 5, 22, 25)] == [0, 1, 2, 1, 2]
    with app.test_request_context("/?lang=uk"):
        flask_babel.refresh()
        app.preprocess_request()
        assert [flask_babel.get_translations().plural(n) for n in (1, 2, 5)] == [0, 1, 2]


def test_extract_reports_a_key_that_only_begins_like_a_known_one(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    (source / "view.py").write_text('t("alert.valid_until")\nt("alert.valid" if x else "alert.vaild")\n'
                                    't("page.verify.done_subscribe" if p == "subscribe" else "page.verify.done_manage")\n')
    _, missing = catalogs.extract(CATALOG_DIR, source)
    assert [line.split(" ")[0] for line in missing] == ["alert.valid_until", "alert.validalert.vaild"]


def test_a_new_untranslated_counted_text_is_missing_but_its_mo_is_current(tmp_path):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    _edit(root, "pl", "admin", lambda c: c.add(("admin.demo.parts", "admin.demo.parts"),
                                               ("{count} część", "{count} części", "{count} części")))
    templates, _ = catalogs.extract(root)
    catalogs.update(root, templates)
    catalogs.compile_all(root)
    assert catalogs.problems(root) == ["en/admin: admin.demo.parts missing"]


def test_a_changed_plural_rule_not_compiled_is_reported(tmp_path):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    path = catalogs.po_path(root, "uk", "messages")
    text = path.read_text("utf-8")
    assert "nplurals=3" in text
    path.write_text(text.replace("nplurals=3", "nplurals=2"), "utf-8")
    assert "uk/LC_MESSAGES/messages.po: its .mo is missing or out of date (make translations)" in catalogs.problems(root)


def test_make_translations_twice_changes_nothing(tmp_path):
    root = tmp_path / "translations"
    shutil.copytree(CATALOG_DIR, root)
    before = {p: p.read_bytes() for p in root.rglob("*.*o")}
    templates, missing = catalogs.extract(root)
    assert not missing
    assert catalogs.update(root, templates) == [] and catalogs.compile_all(root) == []
    assert {p: p.read_bytes() for p in root.rglob("*.*o")} == before
