"""The staff navigation at phone size: one short row that scrolls sideways, every link in it
(it had taken four rows, 236 px of an 844 px screen, on every page)."""

from __future__ import annotations

from typing import Any

from tests.test_browser_admin_messages import _expect, _sign_in, _staff


def test_the_admin_navigation_takes_little_height_on_a_phone_and_every_link_works(live_server: str,
                                                                                  page: Any) -> None:
    _sign_in(page, live_server, _staff("admin"))
    header = page.locator("header.admin-header")
    assert page.viewport_size["width"] <= 420, "this test is about a phone-sized screen"
    assert header.bounding_box()["height"] <= 120, header.bounding_box()
    nav = page.locator("nav.admin-nav")
    for name in ("Pulpit", "Nowy komunikat", "Do zatwierdzenia", "Komunikaty", "Mieszkańcy", "Konta",
                 "Dziennik zdarzeń", "admin@gmina.example.pl", "Wyloguj", "EN"):
        _expect()(nav.get_by_role("link", name=name, exact=True)
                  .or_(nav.get_by_role("button", name=name, exact=True))).to_have_count(1)
    page.screenshot(path="/tmp/admin-nav-phone.png")
    nav.locator("ul").evaluate("ul => ul.scrollLeft = ul.scrollWidth")
    page.screenshot(path="/tmp/admin-nav-phone-end.png")
    link = nav.get_by_role("link", name="Dziennik zdarzeń")
    link.scroll_into_view_if_needed()
    link.click()
    _expect()(page.get_by_role("heading", name="Dziennik zdarzeń")).to_be_visible()
