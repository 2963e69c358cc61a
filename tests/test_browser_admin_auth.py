"""Staff sign-in in a real browser (chromium through Playwright, CSRF on, phone viewport):
an approver signs in with password and authenticator code and lands on the dashboard, then
opens the residents page.

Screenshots go to /tmp/admin-*.png for a human to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp
import pytest
from flask import current_app, url_for

import population
from tests.test_admin_auth import PASSWORD, make_staff, with_admin_stubs

pytestmark = pytest.mark.browser


@pytest.mark.browser
def test_an_approver_signs_in_with_a_code_on_a_phone(live_server: str, page: Any) -> None:
    from playwright.sync_api import expect

    app = current_app._get_current_object()
    dashboard_ready = "admin.dashboard" in app.view_functions
    with_admin_stubs(app)  # before the first request; stands in for the other admin screens if missing
    with app.test_request_context():
        dashboard = url_for("admin.dashboard")
    secret = pyotp.random_base32()
    make_staff("zatwierdzajacy@gmina.pl", "approver", totp_secret=secret)
    population.seed(40, categories={"weather": 1, "official": 1, "emergency": 1}, areas=["KOZY"])

    page.goto(live_server + "/admin/login")
    expect(page.get_by_role("heading", level=1)).to_have_text("Logowanie do panelu")
    page.screenshot(path="/tmp/admin-login.png", full_page=True)

    page.get_by_label("Adres e-mail").fill("zatwierdzajacy@gmina.pl")
    page.get_by_label("Hasło").fill(PASSWORD)
    page.get_by_role("button", name="Zaloguj się").click()

    # The account has a second factor: the code field appears, the e-mail stays.
    expect(page.get_by_role("alert")).to_have_text("Wpisz kod z aplikacji uwierzytelniającej.")
    expect(page.get_by_label("Adres e-mail")).to_have_value("zatwierdzajacy@gmina.pl")
    page.screenshot(path="/tmp/admin-login-code.png", full_page=True)
    page.get_by_label("Hasło").fill(PASSWORD)
    page.get_by_label("Kod z aplikacji uwierzytelniającej").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Zaloguj się").click()
    expect(page).to_have_url(live_server + dashboard)
    if dashboard_ready:
        expect(page.get_by_role("link", name="zatwierdzajacy@gmina.pl")).to_be_visible()
        page.screenshot(path="/tmp/admin-dashboard.png", full_page=True)

    # The residents page: counts, charts, search with the full number for an approver.
    page.goto(live_server + "/admin/subscribers")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mieszkańcy")
    expect(page.locator("svg.chart")).to_have_count(4)
    page.get_by_label("Numer telefonu").fill("500 000 003")
    page.get_by_role("button", name="Szukaj").click()
    expect(page.get_by_role("status")).to_contain_text("+48500000003")
    page.screenshot(path="/tmp/admin-subscribers.png", full_page=True)
    page.get_by_role("link", name="Otwórz kartę mieszkańca").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"Mieszkaniec nr \d+"))
    page.screenshot(path="/tmp/admin-subscriber.png", full_page=True)

    # Signing out; this browser now knows the account uses a code: the field is there at once.
    page.get_by_role("button", name="Wyloguj").click()
    expect(page).to_have_url(live_server + "/admin/login")
    expect(page.get_by_role("status")).to_have_text("Wylogowano.")
    expect(page.get_by_label("Kod z aplikacji uwierzytelniającej")).to_be_visible()
    page.goto(live_server + "/admin/subscribers")
    expect(page).to_have_url(re.compile(r"/admin/login\?next=(%2F|/)admin(%2F|/)subscribers"))
