"""The 404 page in a real browser at phone size, in Polish and in Ukrainian: styled, readable
without zooming, and with the way back. Screenshots: /tmp/syrena-404-<lang>.png."""

from __future__ import annotations

from typing import Any

import pytest

pytestmark = pytest.mark.browser


@pytest.mark.parametrize(("lang", "title", "home"), [
    ("pl", "Nie ma takiej strony", "Przejdź na stronę główną"),
    ("uk", "Такої сторінки немає", "Перейти на головну сторінку"),
])
def test_a_missing_alert_shows_the_styled_404_at_phone_size(live_server: str, page: Any, lang, title, home):
    from playwright.sync_api import expect

    response = page.goto(f"{live_server}/alerts/424242?lang={lang}")
    assert response.status == 404
    heading = page.get_by_role("heading", level=1)
    expect(heading).to_have_text(title)
    # Readable on a phone: the page is laid out for the viewport (no tiny desktop page).
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert float(page.evaluate("parseFloat(getComputedStyle(document.querySelector('h1')).fontSize)")) >= 20
    assert page.evaluate("document.documentElement.lang") == lang
    page.screenshot(path=f"/tmp/syrena-404-{lang}.png", full_page=True)
    page.get_by_role("link", name=home).click()
    expect(page).to_have_url(f"{live_server}/")
