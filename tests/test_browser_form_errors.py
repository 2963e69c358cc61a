"""A form sent back with errors, in a real browser at phone size: the error summary is at the
top of what the screen shows, focused, and the tab's title starts with "Błąd:" (a break-glass
send without a reason had reloaded at the top with its error 2,100 px down)."""

from __future__ import annotations

from typing import Any

from alerts import publish as lifecycle
from db import db, utcnow
from tests.test_browser_admin_messages import _expect, _sign_in, _staff


def _summary_in_view_and_focused(page: Any) -> None:
    summary = page.locator(".error-summary").first
    _expect()(summary).to_be_focused()
    box = summary.bounding_box()
    # Scrolled to by focus, its top may sit a fraction of a pixel above the edge (-0.09 px seen).
    assert -1 <= box["y"] < page.viewport_size["height"] / 2, box


def test_a_break_glass_send_without_a_reason_shows_its_error_in_view_on_a_phone(live_server: str,
                                                                                 page: Any) -> None:
    approver = _staff("approver")
    draft = lifecycle.create_alert(lifecycle.Draft(
        category="emergency", level=None, areas=None, titles={"pl": "Ewakuacja Kozy Dolne"},
        texts={"pl": "Opuść dom, zbiórka przy szkole. W zagrożeniu dzwoń 112."}, channels=["sms"],
        starts_at=utcnow()), created_by=approver.id)
    db.session.commit()
    _sign_in(page, live_server, approver)
    page.goto(f"{live_server}/admin/messages/{draft.id}")
    page.locator("#break-glass button[type=submit]").click()
    _expect()(page).to_have_title(__import__("re").compile(r"^Błąd: "))
    _summary_in_view_and_focused(page)
    _expect()(page.locator(".error-summary")).to_contain_text("Podaj powód")
    page.screenshot(path="/tmp/admin-break-glass-error.png")


def test_a_resident_form_with_an_error_says_so_in_the_title_and_focuses_the_summary(live_server: str,
                                                                                     page: Any) -> None:
    page.goto(live_server + "/?lang=uk")
    page.locator("input[name=phone]").fill("22 123 45 67")
    page.locator("form button[type=submit]").first.click()
    _expect()(page).to_have_title(__import__("re").compile(r"^Помилка: "))
    _summary_in_view_and_focused(page)
    page.screenshot(path="/tmp/resident-uk-error.png")
