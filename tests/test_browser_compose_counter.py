"""The compose page's live SMS counter in a real browser at phone size: one counter under each
language's text, counted as that language's SMS goes out (Ukrainian as UCS-2 with its own
cap), in the right plural form, and agreeing with the server's preview afterwards."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from babel import Locale

from alerts.sms_text import count_segments, transliterate
from db import db
from population import seed
from tests.test_browser_admin_messages import _expect, _sign_in, _staff

STORM = tomllib.loads((Path(__file__).parent / "fixtures" / "sms" / "warnings_pl_uk.toml").read_text("utf-8"))["storm"]
POLISH_FORMS = {"one": "znak", "few": "znaki", "many": "znaków"}


def _counted(counter: str, lang_name: str) -> tuple[int, str, int, str]:
    found = re.search(rf"SMS \({lang_name}\): (\d+) (\w+) · (\d+) SMS · ([\w-]+)", counter)
    assert found, counter
    return int(found[1]), found[2], int(found[3]), found[4]


def test_each_language_has_its_own_counter_and_the_preview_agrees(live_server: str, page: Any) -> None:
    expect = _expect()
    seed(2, categories={"weather": 1}, areas=["KOZY"], start=0)
    seed(3, categories={"weather": 1}, areas=["KOZY"], start=10, language="uk")
    db.session.commit()
    _sign_in(page, live_server, _staff("editor"))
    page.goto(f"{live_server}/admin/messages/new")
    page.get_by_label("Kategoria").select_option(label="Ostrzeżenia meteorologiczne")
    page.get_by_label("Stopień ostrzeżenia").select_option(label="2 – pomarańczowy")
    page.get_by_label("Tytuł po polsku").fill(STORM["title_pl"])
    page.get_by_label("Treść po polsku").fill(STORM["text_pl"])

    # Polish: transliterated GSM-7, the plural form Polish uses for the count.
    polish_sms = transliterate(f"Gmina Kozy: {STORM['title_pl'].rstrip('.')}. {STORM['text_pl']}")
    expect(page.locator("#text_pl-counter")).to_contain_text("GSM-7")
    chars, word, parts, encoding = _counted(page.locator("#text_pl-counter").inner_text(), "Polski")
    assert (chars, parts, encoding) == (len(polish_sms), count_segments(polish_sms).segments, "GSM-7")
    assert word == POLISH_FORMS[Locale.parse("pl").plural_form(chars)]

    # The other languages: nothing typed means those residents get the Polish SMS.
    page.locator("details.other-languages summary").click()
    expect(page.locator("#text_en-counter")).to_contain_text("bez tekstu w tym języku mieszkańcy dostaną SMS po polsku")
    expect(page.locator("#text_uk-counter")).to_contain_text("bez tekstu w tym języku")

    # Ukrainian: Cyrillic goes as UCS-2, and fits its own cap (5), not Polish's 2.
    page.locator("#title_uk").fill(STORM["title_uk"])
    page.locator("#text_uk").fill(STORM["text_uk"])
    ukrainian_sms = f"Gmina Kozy: {STORM['title_uk'].rstrip('.')}. {STORM['text_uk']}"
    expect(page.locator("#text_uk-counter")).to_contain_text("UCS-2")
    counter = page.locator("#text_uk-counter").inner_text()
    chars, word, parts, encoding = _counted(counter, "Ukraiński")
    assert (chars, parts) == (len(ukrainian_sms), count_segments(ukrainian_sms).segments)
    assert 2 < parts <= 5 and "do 5 części SMS" in counter and "Dłuższy niż" not in counter
    page.screenshot(path="/tmp/admin-compose-counter-uk.png", full_page=True)

    # Past the cap the warning names the Ukrainian cap.
    page.locator("#text_uk").fill(STORM["text_uk"] + " " + STORM["text_uk"])
    expect(page.locator("#text_uk-counter")).to_contain_text("Dłuższy niż 5 SMS")
    page.locator("#text_uk").fill(STORM["text_uk"])

    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()
    expect(page.locator('[data-sms-lang="uk"]')).to_have_text(ukrainian_sms)
    facts = page.locator(".sms-block", has=page.locator('[data-sms-lang="uk"]')).locator(".sms-facts").inner_text()
    assert f"{len(ukrainian_sms)} znak" in facts and f"· {parts} SMS · kodowanie UCS-2" in facts


def test_the_counter_transliterates_and_counts_by_the_servers_rules(live_server: str, page: Any) -> None:
    # Letters outside the Polish alphabet, degrees, invisible characters, an extension
    # character: the estimate must match alerts/sms_text.py, or an editor sees "fits" for an
    # SMS the server cuts.
    _sign_in(page, live_server, _staff("editor"))
    page.goto(f"{live_server}/admin/messages/new")
    page.get_by_label("Tytuł po polsku").fill("Upał")
    page.get_by_label("Treść po polsku").fill("Upał.")
    page.locator("details.other-languages summary").click()
    text = ("Heat in Kadıköy and Œuvre street: 30℃ today, 5ºC at night, “take care” – call 112 "
            "or write to pomoc@kozy.pl {€ 5}. zero\u200cwidth\u200d\u2060 " * 3).strip()
    page.locator("#title_en").fill("Heat")
    page.locator("#text_en").fill(text)
    sms = transliterate(f"Gmina Kozy: Heat. {' '.join(text.split())}")
    info = count_segments(sms)
    assert info.encoding == "GSM-7" and info.segments > 2
    counter = page.locator("#text_en-counter")
    _expect()(counter).to_contain_text("GSM-7")
    chars, _word, parts, _encoding = _counted(counter.inner_text(), "Angielski")
    assert (chars, parts) == (len(sms), info.segments)
    _expect()(counter).to_contain_text("Dłuższy niż 2 SMS")
