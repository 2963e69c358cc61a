"""The home page at phone size with a level-2 and a level-3 warning in force: both on the
first screen, the more severe first, each in its level's colour, the sign-up below."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alerts import publish as lifecycle
from alerts.feeds import record_success
from db import db, utcnow

pytestmark = pytest.mark.browser


def _publish(title: str, level: int, category: str, hours: int) -> None:
    lifecycle.publish(lifecycle.create_alert(lifecycle.Draft(
        category=category, level=level, titles={"pl": title}, texts={"pl": title + "."}, channels=["sms"],
        starts_at=utcnow(), expires_at=utcnow() + timedelta(hours=hours))))


def test_the_home_page_shows_two_warnings_in_force_on_a_phone(live_server: str, page: Any) -> None:
    from playwright.sync_api import expect

    _publish("Intensywne opady deszczu", 2, "weather", 18)
    _publish("Wezbranie z przekroczeniem stanów alarmowych: Biała", 3, "hydro", 30)
    record_success("imgw-meteo", "1 warning")
    db.session.commit()
    page.goto(live_server + "/")
    items = page.locator(".in-force-item")
    expect(items).to_have_count(2)
    expect(items.nth(0)).to_contain_text("Wezbranie z przekroczeniem stanów alarmowych")
    expect(items.nth(0)).to_contain_text("Stopień 3")
    expect(items.nth(1)).to_contain_text("Intensywne opady deszczu")
    red = items.nth(0).evaluate("el => getComputedStyle(el).borderLeftColor")
    orange = items.nth(1).evaluate("el => getComputedStyle(el).borderLeftColor")
    assert red == "rgb(201, 42, 42)" and orange == "rgb(232, 89, 12)", (red, orange)
    viewport = page.viewport_size["height"]
    assert items.nth(1).bounding_box()["y"] < viewport, "both warnings on the first screen"
    expect(page.locator("#imgw-read")).to_contain_text("Ostrzeżenia IMGW sprawdzone:")
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    page.screenshot(path="/tmp/syrena-home-in-force.png")
    page.screenshot(path="/tmp/syrena-home-in-force-full.png", full_page=True)
    items.nth(0).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Wezbranie")
