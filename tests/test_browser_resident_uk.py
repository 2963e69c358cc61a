"""A Ukrainian-speaking resident signs up in a real browser at phone size, with CSRF on:
every form error in Ukrainian, the locked emergency box, the resend countdown (and the page
without JavaScript). Screenshots go to /tmp/syrena-uk-*.png for a human to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from i18n import translate
from tests.browser_support import PHONE_VIEWPORT
from tests.conftest import last_code
from tests.fakes.twilio_api import FakeTwilio

pytestmark = pytest.mark.browser

PHONE = "+48501234567"


def uk(key: str, **params: Any) -> str:
    return translate(key, "uk", **params)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def test_a_ukrainian_resident_signs_up_with_every_error_in_ukrainian(
        live_server: str, page: Any, twilio: FakeTwilio) -> None:
    expect = _expect()
    page.goto(live_server + "/?lang=uk")
    expect(page.locator("html")).to_have_attribute("lang", "uk")
    expect(page.get_by_role("heading", level=1)).to_have_text(uk("page.home.title", gmina="Gmina Kozy"))
    emergency = page.get_by_label("Кризові повідомлення")
    expect(emergency).to_be_checked()
    expect(emergency).to_be_disabled()
    expect(page.get_by_text(f"({uk('page.home.always')})")).to_be_visible()
    page.screenshot(path="/tmp/syrena-uk-subscribe.png", full_page=True)
    page.locator(".choice", has=emergency).screenshot(path="/tmp/syrena-uk-emergency.png")

    # Nothing typed, no consent: both errors, in the summary and next to the fields.
    page.get_by_role("button", name=uk("page.home.submit")).click()
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text(uk("page.errors_title"))
    expect(page.locator("#phone-error")).to_have_text(uk("error.phone_missing"))
    expect(page.locator("#consent-error")).to_have_text(uk("error.consent_required"))
    expect(summary).to_contain_text(uk("error.consent_required"))

    # A German number: the allowed country is named in Ukrainian words.
    page.get_by_label(uk("page.home.phone_label")).fill("+49 1512 3456789")
    page.locator("#consent").check()
    page.get_by_role("button", name=uk("page.home.submit")).click()
    expect(page.locator("#phone-error")).to_have_text(uk("error.phone_country", countries="Польща"))
    page.screenshot(path="/tmp/syrena-uk-subscribe-error.png", full_page=True)
    page.locator(".error-summary").screenshot(path="/tmp/syrena-uk-error-summary.png")

    # A landline, then a number that is not one.
    for typed, code in (("22 123 45 67", "phone_not_mobile"), ("12ab", "phone_invalid")):
        page.get_by_label(uk("page.home.phone_label")).fill(typed)
        page.get_by_role("button", name=uk("page.home.submit")).click()
        expect(page.locator("#phone-error")).to_have_text(uk(f"error.{code}"))

    # The right number: the code page, with the resend countdown running.
    page.get_by_label(uk("page.home.phone_label")).fill("501 234 567")
    page.get_by_role("button", name=uk("page.home.submit")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(uk("page.verify.title"))
    resend = page.get_by_role("button", name=uk("page.verify.resend"))
    expect(resend).to_be_disabled()
    seconds = page.locator("[data-resend-seconds]")
    first = int(seconds.inner_text())
    assert 50 <= first <= 61
    expect(seconds).not_to_have_text(str(first), timeout=3000)
    assert int(seconds.inner_text()) < first
    expect(page.locator("[data-resend-wait]")).to_contain_text(translate("page.verify.resend_in", "uk").split("{seconds}")[0])
    page.screenshot(path="/tmp/syrena-uk-verify.png", full_page=True)
    page.locator(".card-quiet", has=resend).screenshot(path="/tmp/syrena-uk-resend.png")

    # Code errors in Ukrainian, then the right code.
    page.get_by_role("button", name=uk("page.verify.submit")).click()
    expect(page.locator("#code-error")).to_have_text(uk("error.code_missing"))
    code = last_code(twilio, PHONE)
    wrong = "000000" if code != "000000" else "111111"
    page.get_by_role("textbox", name=uk("page.verify.code_label")).fill(wrong)
    page.get_by_role("button", name=uk("page.verify.submit")).click()
    expect(page.locator("#code-error")).to_have_text(uk("error.code_invalid", tries_left=4))
    page.screenshot(path="/tmp/syrena-uk-verify-error.png", full_page=True)
    page.get_by_role("textbox", name=uk("page.verify.code_label")).fill(code)
    page.get_by_role("button", name=uk("page.verify.submit")).click()
    expect(page).to_have_url(re.compile(r"/m/[^/]+$"))
    expect(page.get_by_text(uk("page.status.active"))).to_be_visible()
    expect(page.get_by_label("Кризові повідомлення")).to_be_disabled()
    page.screenshot(path="/tmp/syrena-uk-manage.png", full_page=True)


def test_without_javascript_the_code_page_still_says_how_long_to_wait_and_the_button_works(
        live_server: str, chromium_browser: Any, twilio: FakeTwilio) -> None:
    expect = _expect()
    context = chromium_browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto(live_server + "/?lang=uk")
        page.get_by_label(uk("page.home.phone_label")).fill("501 234 567")
        page.locator("#consent").check()
        page.get_by_role("button", name=uk("page.home.submit")).click()
        wait = page.locator("[data-resend-wait]")
        expect(wait).to_be_visible()
        assert 50 <= int(page.locator("[data-resend-seconds]").inner_text()) <= 61
        resend = page.get_by_role("button", name=uk("page.verify.resend"))
        expect(resend).to_be_enabled()
        # Too early: the server's answer says how long, in Ukrainian.
        resend.click()
        expect(page.locator(".error-summary")).to_contain_text(re.compile(r"Новий код можна отримати через \d+ с\."))
        page.screenshot(path="/tmp/syrena-uk-verify-nojs.png", full_page=True)
    finally:
        context.close()
