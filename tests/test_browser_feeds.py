"""A failing warning feed on the dashboard, in a real browser at phone size: one plain line,
the exception text folded away until asked for (it was ~2,000 px of red on a phone)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from alerts.feeds import record_failure, record_success
from db import utcnow
from providers.feeds import FeedError
from tests.test_browser_admin_messages import _expect, _sign_in, _staff


def test_a_failing_feed_is_one_line_with_details_folded_on_a_phone(live_server: str, page: Any) -> None:
    record_success("imgw-meteo", "3 warnings, 0 for us", now=utcnow() - timedelta(minutes=30))
    long_text = "Max retries exceeded with url: /api/data/warningsmeteo " * 30
    record_failure("imgw-meteo", FeedError("connection", long_text, url="https://danepubliczne.imgw.pl/api"))
    _sign_in(page, live_server, _staff("editor"))
    feeds = page.locator("#feeds")
    line = feeds.locator(".feed-error").first
    _expect()(line).to_contain_text("brak połączenia od")
    details = feeds.locator("details.feed-details").first
    _expect()(details.locator("code")).to_be_hidden()
    assert feeds.bounding_box()["height"] < 900, "the feeds card stays short while the details are folded"
    feeds.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/admin-feeds.png", full_page=True)
    details.locator("summary").click()
    _expect()(details.locator("code")).to_be_visible()
