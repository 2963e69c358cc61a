"""Staff in a real browser (chromium through Playwright) at a phone viewport, CSRF on:
an editor writes a warning (a mistake first), checks the preview and submits it; an
approver in another browser signs in, finds it in the queue, sees the same preview and
sends it; residents get exactly the SMS the preview showed.

Screenshots go to /tmp/admin-*.png for a human to look at.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from flask import current_app
from sqlalchemy import select

from alerts.dispatcher import Dispatcher
from alerts.models import Alert
from alerts.sms_text import transliterate
from db import db
from population import phone_for, seed
from staff.models import StaffUser
from tests.browser_support import PHONE_VIEWPORT
from tests.fakes.twilio_api import FakeTwilio

pytestmark = pytest.mark.browser

PASSWORD = "correct horse battery staple"
TEXT = ("Jutro od 14:00 silne burze z gradem do 3 cm. Zabezpiecz rzeczy na balkonie, "
        "nie parkuj pod drzewami, zostań w domu.")


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def _staff(role: str) -> StaffUser:
    user = StaffUser(email=f"{role}@gmina.example.pl", role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


def _sign_in(page: Any, base: str, user: StaffUser) -> None:
    page.goto(base + "/admin/")
    page.get_by_label("Adres e-mail").fill(user.email)
    page.get_by_label("Hasło").fill(PASSWORD)
    page.get_by_role("button", name="Zaloguj się").click()
    _expect()(page.get_by_role("link", name=user.email)).to_be_visible()


@pytest.fixture
def second_page(chromium_browser: Any) -> Iterator[Any]:
    """Another browser (own cookies) at the phone viewport, failing on console errors."""
    context = chromium_browser.new_context(viewport=PHONE_VIEWPORT, device_scale_factor=2, is_mobile=True,
                                           has_touch=True, locale="pl-PL")
    context.set_default_timeout(10_000)
    pg = context.new_page()
    problems: list[str] = []
    pg.on("console", lambda msg: problems.append(msg.text) if msg.type == "error"
          and not msg.text.startswith("Failed to load resource") else None)
    pg.on("pageerror", lambda exc: problems.append(str(exc)))
    pg.on("response", lambda r: problems.append(f"{r.status} {r.url}") if r.status >= 400
          and r.request.resource_type != "document" else None)
    try:
        yield pg
    finally:
        context.close()
    assert not problems, problems


def _no_horizontal_scroll(page: Any) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    phone = PHONE_VIEWPORT["width"]
    assert width <= phone, f"the page is {width}px wide on a {phone}px phone"


@pytest.mark.browser
def test_an_editor_writes_and_submits_and_an_approver_sends_what_the_preview_showed(
        live_server: str, page: Any, second_page: Any, twilio: FakeTwilio) -> None:
    expect = _expect()
    seed(12, categories={"weather": 1}, areas=["KOZY"], start=0)
    seed(3, categories={"official": 1}, areas=["KOZY"], start=100)
    editor, approver = _staff("editor"), _staff("approver")

    # --- the editor writes, with a mistake first ---
    _sign_in(page, live_server, editor)
    expect(page.locator("#active")).to_contain_text("Teraz nie obowiązuje żaden komunikat.")
    page.screenshot(path="/tmp/admin-dashboard.png", full_page=True)
    page.get_by_role("link", name="Nowy komunikat").first.click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Nowy komunikat")
    page.get_by_label("Kategoria").select_option(label="Ostrzeżenia meteorologiczne")
    page.get_by_label("Stopień ostrzeżenia").select_option(label="2 – pomarańczowy")
    page.get_by_label("Tytuł po polsku").fill("Burze z gradem")
    page.get_by_label("Treść po polsku").fill("")
    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()
    expect(page.locator("#text_pl-error")).to_have_text("Wpisz treść komunikatu.")
    expect(page.get_by_label("Tytuł po polsku")).to_have_value("Burze z gradem")
    expect(page.get_by_label("Stopień ostrzeżenia")).to_have_value("2")
    page.screenshot(path="/tmp/admin-compose-error.png", full_page=True)

    # The level is only for warning categories (script), and the counter follows the typing.
    page.get_by_label("Kategoria").select_option(label="Komunikaty urzędowe")
    expect(page.locator("#level-field")).to_be_hidden()
    page.get_by_label("Kategoria").select_option(label="Ostrzeżenia meteorologiczne")
    expect(page.locator("#level-field")).to_be_visible()
    page.get_by_label("Treść po polsku").fill(TEXT)
    expect(page.locator("#text_pl-counter")).to_contain_text("1 SMS · GSM-7")
    page.get_by_label("Zachowaj polskie litery w SMS").check()
    expect(page.locator("#text_pl-counter")).to_contain_text("UCS-2")
    page.get_by_label("Zachowaj polskie litery w SMS").uncheck()
    _no_horizontal_scroll(page)
    page.screenshot(path="/tmp/admin-compose.png", full_page=True)
    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()

    # --- the preview: exactly who gets what ---
    expect(page.locator('[data-reach="sms"]')).to_have_text("12")
    body = page.locator('[data-sms-lang="pl"]').inner_text()
    assert body == transliterate("Gmina Kozy: Burze z gradem. " + TEXT)  # Polish letters cost 2-3x: replaced
    expect(page.get_by_role("button", name=re.compile("WYŚLIJ"))).to_have_count(0)  # an editor cannot send
    _no_horizontal_scroll(page)
    page.screenshot(path="/tmp/admin-preview.png", full_page=True)
    page.get_by_role("button", name="Przekaż do zatwierdzenia").click()
    expect(page.get_by_role("status")).to_contain_text("Przekazano do zatwierdzenia")
    alert = db.session.scalar(select(Alert))
    assert alert.status == "awaiting"

    # --- the approver, in another browser, finds it and sends it ---
    _sign_in(second_page, live_server, approver)
    expect(second_page.locator("#awaiting-link")).to_have_text("Do zatwierdzenia: 1")
    second_page.locator("#awaiting-link").click()
    expect(second_page.get_by_role("heading", level=2, name="Burze z gradem")).to_be_visible()
    second_page.screenshot(path="/tmp/admin-queue.png", full_page=True)
    second_page.get_by_role("link", name="Sprawdź i zatwierdź").click()
    expect(second_page.locator('[data-reach="sms"]')).to_have_text("12")
    assert second_page.locator('[data-sms-lang="pl"]').inner_text() == body
    send = second_page.get_by_role("button", name="Zatwierdź i WYŚLIJ TERAZ")
    expect(send).to_be_visible()
    second_page.screenshot(path="/tmp/admin-approve.png", full_page=True)
    send.click()
    expect(second_page.get_by_role("status")).to_contain_text("Wysłano. W kolejce: SMS: 12.")

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    app.config["SMS_RATE_PER_SECOND"] = 0
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()
    assert sorted(m["To"] for m in twilio.messages) == sorted(phone_for(n) for n in range(12))
    assert {m["Body"] for m in twilio.messages} == {body}

    second_page.reload()
    expect(second_page.locator('[data-figure="sms-total"]')).to_have_text("12")
    expect(second_page.get_by_role("link", name="Wyślij korektę")).to_be_visible()
    _no_horizontal_scroll(second_page)
    second_page.screenshot(path="/tmp/admin-sent.png", full_page=True)

    # The dashboard counts it among today's messages, in English too.
    second_page.goto(live_server + "/admin/?lang=en")
    expect(second_page.locator("#today")).to_contain_text("Burze z gradem")
    expect(second_page.locator("#active")).to_contain_text("Burze z gradem")
    second_page.screenshot(path="/tmp/admin-dashboard-en.png", full_page=True)
