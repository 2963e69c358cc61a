"""A forgotten password in a real browser (chromium through Playwright, CSRF on, phone
viewport): an admin sets a temporary password on the accounts screen, the editor signs in
with it, must choose their own before anything else, and can sign out everywhere.

Screenshots go to /tmp/admin-accounts-*.png for a human to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import current_app

from tests.test_admin_auth import PASSWORD, make_staff, with_admin_stubs

pytestmark = pytest.mark.browser


def sign_in(page: Any, base: str, email: str, password: str) -> None:
    page.goto(base + "/admin/login")
    page.get_by_label("Adres e-mail").fill(email)
    page.get_by_label("Hasło").fill(password)
    page.get_by_role("button", name="Zaloguj się").click()


def test_a_temporary_password_from_an_admin_must_be_replaced_first(live_server: str, page: Any,
                                                                  chromium_browser: Any) -> None:
    from playwright.sync_api import expect

    with_admin_stubs(current_app._get_current_object())
    make_staff("boss@gmina.pl", "admin")
    make_staff("ed@gmina.pl", "editor")

    sign_in(page, live_server, "boss@gmina.pl", PASSWORD)
    page.goto(live_server + "/admin/accounts")
    editor_card = page.get_by_role("article").filter(has_text="ed@gmina.pl")
    editor_card.get_by_role("button", name=re.compile("Ustaw hasło tymczasowe")).click()
    notice = page.get_by_role("status").filter(has_text="Hasło tymczasowe dla ed@gmina.pl")
    expect(notice).to_be_visible()
    page.screenshot(path="/tmp/admin-accounts-temporary.png", full_page=True)
    temporary = notice.locator("code").inner_text()
    assert re.fullmatch(r"[a-z2-9]{4}(-[a-z2-9]{4}){3}", temporary)

    # The editor, on their own phone.
    context = chromium_browser.new_context(viewport={"width": 390, "height": 844}, locale="pl-PL")
    phone = context.new_page()
    try:
        sign_in(phone, live_server, "ed@gmina.pl", temporary)
        expect(phone).to_have_url(re.compile(r"/admin/account/new-password"))
        expect(phone.get_by_role("heading", level=1)).to_have_text("Ustaw własne hasło")
        phone.goto(live_server + "/admin/subscribers")  # nothing else works yet
        expect(phone).to_have_url(re.compile(r"/admin/account/new-password"))
        phone.screenshot(path="/tmp/admin-accounts-new-password.png", full_page=True)
        phone.get_by_label("Hasło tymczasowe").fill(temporary)
        phone.get_by_label("Nowe hasło", exact=True).fill("my very own password")
        phone.get_by_label("Powtórz nowe hasło").fill("my very own password")
        phone.get_by_role("button", name="Zmień hasło").click()
        # On to the page that was asked for.
        expect(phone).to_have_url(live_server + "/admin/subscribers")

        phone.goto(live_server + "/admin/account")
        expect(phone.get_by_text("Otwarte sesje tego konta: 1.")).to_be_visible()
        phone.get_by_role("button", name="Wyloguj ze wszystkich urządzeń").click()
        expect(phone).to_have_url(live_server + "/admin/login")
        expect(phone.get_by_role("status")).to_contain_text("Wylogowano ze wszystkich urządzeń")
        phone.goto(live_server + "/admin/account")
        expect(phone).to_have_url(re.compile(r"/admin/login\?next="))
    finally:
        context.close()
