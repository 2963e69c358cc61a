"""The archive at phone size: a chain with its update and withdrawal, the filter, no
horizontal scroll; a screenshot to look at."""

from __future__ import annotations

from typing import Any

import pytest

from alerts import publish as lifecycle
from alerts.models import KIND_CANCEL, KIND_UPDATE

pytestmark = pytest.mark.browser


def test_the_archive_on_a_phone(live_server: str, page: Any) -> None:
    from playwright.sync_api import expect

    first = lifecycle.create_alert(lifecycle.Draft(category="hydro", level=2, titles={"pl": "Wezbranie Białej"},
                                                   texts={"pl": "Stan ostrzegawczy."}, channels=["sms"]))
    lifecycle.publish(first)
    update = lifecycle.follow_up(first, KIND_UPDATE, lifecycle.Draft(
        category="hydro", level=3, titles={"pl": "Wezbranie Białej: stan alarmowy"}, texts={"pl": "Alarm."}, channels=["sms"]))
    lifecycle.publish(update)
    lifecycle.publish(lifecycle.follow_up(update, KIND_CANCEL, lifecycle.Draft(
        category="hydro", titles={"pl": "Koniec wezbrania"}, texts={"pl": "Odwołane."})))
    page.goto(live_server + "/")
    page.get_by_role("link", name="Archiwum komunikatów").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Archiwum komunikatów")
    expect(page.locator(".archive-versions li")).to_have_count(3)
    page.get_by_label("Kategoria").select_option(label="Powódź i susza")
    page.get_by_role("button", name="Pokaż").click()
    expect(page).to_have_url(f"{live_server}/komunikaty?category=hydro&month=")
    expect(page.locator(".archive-chain")).to_have_count(1)
    assert page.evaluate("document.documentElement.scrollWidth") <= page.viewport_size["width"]
    page.screenshot(path="/tmp/syrena-archive.png", full_page=True)
