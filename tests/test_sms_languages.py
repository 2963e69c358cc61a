"""Residents' SMS in their language: own text, Polish fallback, the Cyrillic cap, and what
staff see about them before and after sending.

The examples (tests/fixtures/sms/warnings_pl_uk.toml) are real-life gmina warnings with
their Ukrainian translations; SMS_MAX_SEGMENTS_UNICODE is chosen on them and the first test
holds the default to that choice. Sending goes through the real views, the real dispatcher
and the fake Twilio.
"""

from __future__ import annotations

import re
import tomllib
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape

from alerts import render
from alerts.models import KIND_CANCEL, KIND_UPDATE, Alert
from alerts.preview import preview
from alerts.sms_text import count_segments, is_gsm7
from db import db
from i18n import translate
from population import phone_for, seed
from tests.test_admin_messages import compose, drain, fingerprint, make_staff, page, section, signed_in
from tests.test_browser_admin_messages import _no_horizontal_scroll, _sign_in, _staff, second_page  # noqa: F401

EXAMPLES = tomllib.loads((Path(__file__).parent / "fixtures" / "sms" / "warnings_pl_uk.toml").read_text("utf-8"))


def draft(example: str, *, uk: bool = True, kind: str = "alert", exercise: bool = False) -> Alert:
    """An unsaved-to-residents alert row with the example's texts (rendered as a draft)."""
    e = EXAMPLES[example]
    titles, texts = {"pl": e["title_pl"]}, {"pl": e["text_pl"]}
    if uk:
        titles["uk"], texts["uk"] = e["title_uk"], e["text_uk"]
    alert = Alert(category=e["category"], level=e.get("level"), titles=titles, texts=texts, kind=kind,
                  exercise=exercise, channels=["sms"])
    db.session.add(alert)
    db.session.commit()
    return alert


def cut(alert: Alert, lang: str, body: str) -> bool:
    return body.endswith(render.alert_url(alert, render.sms_language(alert, lang)))


def send(app, *, residents: dict[str, int], **fields) -> Alert:  # noqa: ANN001, ANN003
    """An emergency written by an editor, approved by an approver, dispatched to the fake
    Twilio; `residents` is language -> how many (numbers 0.., 100.., 200.. by language)."""
    for i, (lang, count) in enumerate(residents.items()):
        seed(count, categories={"events": 1}, areas=["KOZY"], start=100 * i, language=lang)
    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    alert = compose(ed, category="emergency", level="", **fields)
    ed.post(f"/admin/messages/{alert.id}/submit")
    response = ap.post(f"/admin/messages/{alert.id}/approve", data={"fingerprint": fingerprint(ap, alert)})
    assert response.status_code == 303
    drain(app)
    db.session.refresh(alert)
    assert alert.status == "published"
    return alert, ap


def evacuation_fields(uk: bool = True) -> dict[str, str]:
    e = EXAMPLES["evacuation"]
    fields = {"title_pl": e["title_pl"], "text_pl": e["text_pl"]}
    if uk:
        fields.update(title_uk=e["title_uk"], text_uk=e["text_uk"])
    return fields


# --- the cap, chosen on real examples ------------------------------------------------------------

KINDS = [("alert", False), (KIND_UPDATE, False), (KIND_CANCEL, True)]  # the last: the longest prefixes


def test_the_unicode_cap_is_the_smallest_that_sends_every_example_uncut(app):
    cap = app.config["SMS_MAX_SEGMENTS_UNICODE"]
    needed = []
    for name in EXAMPLES:
        for kind, exercise in KINDS:
            alert = draft(name, kind=kind, exercise=exercise)
            polish, ukrainian = render.sms_body(alert, "pl"), render.sms_body(alert, "uk")
            # The Polish text fills its own cap, so it is a fair measure of "the same content".
            assert is_gsm7(polish) and count_segments(polish).segments == app.config["SMS_MAX_SEGMENTS"]
            assert not cut(alert, "pl", polish) and not cut(alert, "uk", ukrainian), (name, kind)
            assert count_segments(ukrainian).encoding == "UCS-2" and EXAMPLES[name]["text_uk"] in ukrainian
            needed.append(count_segments(ukrainian).segments)
    assert max(needed) == cap == 5, needed  # the smallest cap: one less would cut an example

    app.config["SMS_MAX_SEGMENTS_UNICODE"] = cap - 1
    alert = draft("evacuation", kind=KIND_CANCEL, exercise=True)
    assert cut(alert, "uk", render.sms_body(alert, "uk"))


def test_a_cyrillic_text_over_the_unicode_cap_is_cut_to_it_with_the_link(app):
    alert = draft("storm")
    alert.texts = {**alert.texts, "uk": EXAMPLES["storm"]["text_uk"] + " " + EXAMPLES["water"]["text_uk"]}
    db.session.commit()
    body = render.sms_body(alert, "uk")
    assert body.endswith(" " + render.alert_url(alert, "uk")) and "?lang=uk" in body
    assert count_segments(body).segments == app.config["SMS_MAX_SEGMENTS_UNICODE"]


# --- falling back to Polish --------------------------------------------------------------------------

@pytest.mark.parametrize(("kind", "exercise"), KINDS)
def test_without_a_text_in_their_language_residents_get_exactly_the_polish_sms(app, kind, exercise):
    alert = draft("evacuation", uk=False, kind=kind, exercise=exercise)
    polish = render.sms_body(alert, "pl")
    assert render.sms_body(alert, "uk") == polish == render.sms_body(alert, "en") == render.sms_body(alert, "uk")
    assert is_gsm7(polish) and "112" in polish and not cut(alert, "pl", polish)
    assert not re.search("[А-Яа-яІіЇїЄє]", polish)  # no Ukrainian prefix in front of the Polish text


def test_a_title_without_a_text_is_not_a_text_of_its_own(app):
    alert = draft("water", uk=False)
    alert.titles = {**alert.titles, "uk": EXAMPLES["water"]["title_uk"]}
    db.session.commit()
    assert render.sms_language(alert, "uk") == "pl"
    assert render.sms_body(alert, "uk") == render.sms_body(alert, "pl")


def test_the_evacuation_reaches_a_ukrainian_resident_uncut_through_twilio(app, twilio):
    alert, _ = send(app, residents={"pl": 2, "uk": 2}, **evacuation_fields())
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    ukrainian = {bodies[phone_for(n)] for n in (100, 101)}
    assert len(ukrainian) == 1
    body = ukrainian.pop()
    e = EXAMPLES["evacuation"]
    assert body == f"Gmina Kozy: {e['title_uk']}. {e['text_uk']}"  # all of it: where to go, and 112
    assert count_segments(body).segments <= app.config["SMS_MAX_SEGMENTS_UNICODE"]
    polish = {bodies[phone_for(n)] for n in (0, 1)}
    assert len(polish) == 1 and is_gsm7(polish.pop())


def test_without_ukrainian_text_the_ukrainian_resident_gets_the_polish_gsm7_sms(app, twilio):
    alert, _ = send(app, residents={"pl": 1, "uk": 2}, **evacuation_fields(uk=False))
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert bodies[phone_for(100)] == bodies[phone_for(101)] == bodies[phone_for(0)]
    body = bodies[phone_for(100)]
    assert is_gsm7(body) and count_segments(body).segments == 2
    assert "Szkola Podstawowa nr 1, ul. Szkolna 5" in body and body.endswith("tel. 112.")


# --- what staff see -----------------------------------------------------------------------------------

def test_the_preview_says_per_language_who_gets_which_variant_and_warns(app):
    seed(3, categories={"events": 1}, areas=["KOZY"], start=0)
    seed(2, categories={"events": 1}, areas=["KOZY"], start=100, language="uk")
    seed(1, categories={"events": 1}, areas=["KOZY"], start=200, language="en")
    ed = signed_in(app, make_staff("editor"))
    long_en = "Leave your home now and go to the school on Szkolna street. " * 8
    alert = compose(ed, category="emergency", level="", title_en="Evacuation", text_en=long_en,
                    **evacuation_fields(uk=False))
    pv = preview(alert)
    by_lang = {s.language: s for s in pv.sms}
    assert by_lang["uk"].variant == "fallback" and by_lang["uk"].body == by_lang["pl"].body
    assert by_lang["en"].variant == "own" and by_lang["en"].shortened
    assert [(n.code, n.language, n.recipients) for n in pv.notices] == [("fallback", "uk", 2), ("shortened", "en", 1)]
    price = Decimal(str(app.config["SMS_PRICE_PER_SEGMENT"]))
    assert by_lang["uk"].cost == price * 2 * 2 and pv.cost == sum(s.cost for s in pv.sms)

    html = page(ed, f"/admin/messages/{alert.id}")
    warnings = section(html, "preview")
    fallback = translate("admin.msg.preview.notice_fallback", "pl", language="Ukraiński", count=2)
    shortened = translate("admin.msg.preview.notice_shortened", "pl", language="Angielski", count=1,
                          cap=app.config["SMS_MAX_SEGMENTS"])
    assert str(escape(fallback)) in warnings and str(escape(shortened)) in warnings
    assert 'data-variant="uk-fallback"' in html and 'data-variant="en-own"' in html
    assert 'data-variant="pl-own"' in html
    cost = translate("admin.msg.preview.language_cost", "pl", segments=2, count=2,
                     price="0,16\u00a0zł", cost="0,64\u00a0zł")
    assert price == Decimal("0.16") and str(escape(cost)) in html
    for s in pv.sms:
        assert f'data-sms-lang="{s.language}">{escape(s.body)}</pre>' in html

    english = page(ed, f"/admin/messages/{alert.id}?lang=en")
    assert str(escape(translate("admin.msg.preview.notice_fallback", "en", language="Ukrainian", count=2))) in english


def test_a_message_in_every_language_warns_of_nothing(app):
    seed(1, categories={"events": 1}, areas=["KOZY"], start=0)
    seed(1, categories={"events": 1}, areas=["KOZY"], start=100, language="uk")
    ed = signed_in(app, make_staff("editor"))
    alert = compose(ed, category="emergency", level="", **evacuation_fields())
    pv = preview(alert)
    assert pv.notices == [] and "fallback" not in pv.warnings and "ucs2" not in pv.warnings
    uk = next(s for s in pv.sms if s.language == "uk")
    assert uk.unicode_script and uk.cap == app.config["SMS_MAX_SEGMENTS_UNICODE"] and not uk.shortened
    assert 'data-notice=' not in page(ed, f"/admin/messages/{alert.id}")


def test_the_sent_page_shows_every_variant_and_to_how_many(app, twilio):
    alert, ap = send(app, residents={"pl": 3, "uk": 2, "en": 1}, **evacuation_fields())
    html = page(ap, f"/admin/messages/{alert.id}")
    polish, ukrainian = render.sms_body(alert, "pl"), render.sms_body(alert, "uk")
    for lang, body, count in (("pl", polish, "4 odbiorcy"), ("uk", ukrainian, "2 odbiorcy")):
        block = re.search(rf'<div class="sms-block" data-sent-variant="{lang}">.*?</div>', html, re.S).group(0)
        assert f"<pre class=\"sms-preview\" lang=\"{lang}\">{escape(body)}</pre>" in block
        assert f'data-sent-count="{lang}">{count}<' in block  # Polish plural: 2-4 odbiorcy
    polish_block = re.search(r'data-sent-variant="pl">.*?</div>', html, re.S).group(0)
    assert "Polski (3), Angielski (1)" in polish_block
    assert "Angielski: " + translate("admin.msg.sent.variant_fallback", "pl") in polish_block
    assert 'data-sent-variant="en"' not in html  # English got the Polish SMS: no variant of its own
    assert sorted(m["Body"] for m in twilio.messages) == sorted([polish] * 4 + [ukrainian] * 2)


# --- in a real browser, at phone size -------------------------------------------------------------

@pytest.mark.browser
def test_in_a_browser_a_message_without_ukrainian_warns_and_reaches_ukrainians_uncut(
        live_server, page, second_page, twilio):  # noqa: ANN001
    from flask import current_app
    from playwright.sync_api import expect

    from alerts.dispatcher import Dispatcher
    seed(3, categories={"events": 1}, areas=["KOZY"], start=0)
    seed(2, categories={"events": 1}, areas=["KOZY"], start=100, language="uk")
    editor, approver = _staff("editor"), _staff("approver")
    e = EXAMPLES["evacuation"]

    _sign_in(page, live_server, editor)
    page.get_by_role("link", name="Nowy komunikat").first.click()
    page.get_by_label("Kategoria").select_option(label="Komunikaty kryzysowe")
    page.get_by_label("Tytuł po polsku").fill(e["title_pl"])
    page.get_by_label("Treść po polsku").fill(e["text_pl"])
    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()
    page.get_by_role("button", name="Przekaż do zatwierdzenia").click()
    expect(page.get_by_role("status")).to_contain_text("Przekazano do zatwierdzenia")
    alert = db.session.scalar(db.select(Alert))

    _sign_in(second_page, live_server, approver)
    second_page.goto(f"{live_server}/admin/messages/{alert.id}")
    notice = second_page.locator('[data-notice="fallback-uk"]')
    expect(notice).to_have_text(translate("admin.msg.preview.notice_fallback", "pl", language="Ukraiński", count=2))
    assert notice.bounding_box()["y"] < 844 * 1.5  # near the top, not below the SMS texts
    expect(second_page.locator('[data-variant="uk-fallback"]')).to_be_visible()
    polish = second_page.locator('[data-sms-lang="pl"]').inner_text()
    assert second_page.locator('[data-sms-lang="uk"]').inner_text() == polish
    _no_horizontal_scroll(second_page)
    second_page.screenshot(path="/tmp/admin-sms-languages-preview.png", full_page=True)
    second_page.get_by_role("button", name="Zatwierdź i WYŚLIJ TERAZ").click()
    expect(second_page.get_by_role("status")).to_contain_text("Wysłano")

    app = current_app._get_current_object()
    app.config["SMS_RATE_PER_SECOND"] = 0
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert bodies[phone_for(100)] == bodies[phone_for(101)] == polish
    assert is_gsm7(polish) and polish.endswith("tel. 112.")

    second_page.reload()
    expect(second_page.locator('[data-sent-count="pl"]')).to_have_text("5 odbiorców")
    _no_horizontal_scroll(second_page)
    second_page.screenshot(path="/tmp/admin-sms-languages-sent.png", full_page=True)
