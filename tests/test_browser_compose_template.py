"""'Wstaw wzór' in a real browser at phone size: with text typed it asks first, and a "no"
keeps what was typed; with nothing typed it fills the form at once."""

from __future__ import annotations

from typing import Any

from tests.test_browser_admin_messages import _expect, _sign_in, _staff


def test_a_template_asks_before_it_replaces_typed_text_on_a_phone(live_server: str, page: Any) -> None:
    _sign_in(page, live_server, _staff("editor"))
    page.goto(f"{live_server}/admin/messages/new")
    page.locator("#title_pl").fill("Zebranie sołeckie w piątek")
    asked: list[str] = []

    def say_no(dialog: Any) -> None:
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", say_no)
    page.select_option("#template", "water")
    page.get_by_role("button", name="Wstaw wzór").click()
    _expect()(page.locator("#title_pl")).to_have_value("Zebranie sołeckie w piątek")
    assert asked and "zastąpi" in asked[0]
    page.screenshot(path="/tmp/admin-template-kept.png", full_page=False)

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Wstaw wzór").click()
    _expect()(page.locator("#title_pl")).to_have_value("Przerwa w dostawie wody")

    # Nothing typed: no question, the template goes in at once.
    page.goto(f"{live_server}/admin/messages/new")
    page.on("dialog", lambda dialog: (_ for _ in ()).throw(AssertionError("asked with nothing typed")))
    page.select_option("#template", "road")
    page.get_by_role("button", name="Wstaw wzór").click()
    _expect()(page.locator("#title_pl")).to_have_value("Zamknięta droga: [ulica]")
