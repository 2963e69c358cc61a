"""A message written only in Polish, in a real browser at phone size: the preview warns by
language and count that the Ukrainian residents will get the Polish SMS, and after the
approver sends it they get exactly the Polish residents' GSM-7 SMS, uncut."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest
from flask import current_app

from alerts.sms_text import count_segments, transliterate
from population import phone_for, seed
from tests.fakes.twilio_api import FakeTwilio
from tests.test_admin_messages import drain
from tests.test_browser_admin_messages import _expect, _no_horizontal_scroll, _sign_in, _staff, second_page  # noqa: F401

pytestmark = pytest.mark.browser

STORM = tomllib.loads((Path(__file__).parent / "fixtures" / "sms" / "warnings_pl_uk.toml").read_text("utf-8"))["storm"]


def test_a_polish_only_message_warns_in_the_preview_and_reaches_ukrainians_uncut(
        live_server: str, page: Any, second_page: Any, twilio: FakeTwilio) -> None:
    expect = _expect()
    seed(4, categories={"weather": 1}, areas=["KOZY"], start=0)
    seed(3, categories={"weather": 1}, areas=["KOZY"], start=10, language="uk")
    editor, approver = _staff("editor"), _staff("approver")

    _sign_in(page, live_server, editor)
    page.goto(f"{live_server}/admin/messages/new")
    page.get_by_label("Kategoria").select_option(label="Ostrzeżenia meteorologiczne")
    page.get_by_label("Stopień ostrzeżenia").select_option(label="2 – pomarańczowy")
    page.get_by_label("Tytuł po polsku").fill(STORM["title_pl"])
    page.get_by_label("Treść po polsku").fill(STORM["text_pl"])
    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()

    # The warning says which language, how many residents, and what they get instead.
    expect(page.get_by_text("Ukraiński: 3 odbiorcy dostaną SMS po polsku")).to_be_visible()
    expect(page.locator('[data-variant="uk-fallback"]')).to_be_visible()
    polish = page.locator('[data-sms-lang="pl"]').inner_text()
    assert page.locator('[data-sms-lang="uk"]').inner_text() == polish
    assert polish == transliterate(f"Gmina Kozy: {STORM['title_pl']}. {STORM['text_pl']}")  # whole, no link
    assert count_segments(polish).encoding == "GSM-7" and count_segments(polish).segments == 2
    _no_horizontal_scroll(page)
    page.screenshot(path="/tmp/admin-preview-fallback-uk.png", full_page=True)
    page.get_by_role("button", name="Przekaż do zatwierdzenia").click()

    _sign_in(second_page, live_server, approver)
    second_page.locator("#awaiting-link").click()
    second_page.get_by_role("link", name="Sprawdź i zatwierdź").click()
    expect(second_page.get_by_text("Ukraiński: 3 odbiorcy dostaną SMS po polsku")).to_be_visible()
    second_page.get_by_role("button", name="Zatwierdź i WYŚLIJ TERAZ").click()
    expect(second_page.get_by_role("status")).to_contain_text("Wysłano")

    drain(current_app._get_current_object())  # type: ignore[attr-defined]
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    ukrainians = [phone_for(n) for n in range(10, 13)]
    assert sorted(bodies) == sorted([phone_for(n) for n in range(4)] + ukrainians)
    assert {bodies[p] for p in ukrainians} == {polish}  # the Polish SMS, prefixes and all, uncut
    assert polish.endswith(transliterate(STORM["text_pl"])[-40:])

    # The message page afterwards says which variant went to whom.
    second_page.reload()
    expect(second_page.locator('[data-sent-variant="pl"]')).to_contain_text("Ukraiński")
    second_page.screenshot(path="/tmp/admin-sent-fallback-uk.png", full_page=True)


def test_a_ukrainian_resident_reads_a_polish_only_message_in_a_ukrainian_page(live_server: str, page: Any) -> None:
    # The page around it is Ukrainian (labels, dates in Ukrainian), the message itself marked Polish.
    from babel.dates import format_date
    from zoneinfo import ZoneInfo

    from alerts import publish as lifecycle
    from db import db, utcnow

    editor = _staff("approver")
    alert = lifecycle.create_alert(lifecycle.Draft(
        category="weather", level=2, areas=None, titles={"pl": STORM["title_pl"]}, texts={"pl": STORM["text_pl"]},
        channels=["sms"], starts_at=utcnow()), created_by=editor.id)
    db.session.commit()
    lifecycle.publish(alert)
    page.goto(f"{live_server}/alerts/{alert.id}?lang=uk")
    expect = _expect()
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    expect(page.locator("#alert-title span[lang=pl]")).to_have_text(STORM["title_pl"])
    expect(page.locator(".alert-text")).to_have_attribute("lang", "pl")
    expect(page.locator(".alert-facts")).to_contain_text("Діє")
    starts = alert.starts_at.astimezone(ZoneInfo("Europe/Warsaw"))
    expect(page.locator(".alert-facts")).to_contain_text(f"{format_date(starts, 'medium', locale='uk')}, {starts:%H:%M}")
    page.screenshot(path="/tmp/syrena-uk-alert-polish-only.png", full_page=True)
