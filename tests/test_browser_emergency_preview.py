"""The emergency preview at phone size, the message in all three languages: the page is over
3,000 px (three SMS variants), and the break-glass send is one tap from the reach, near the
top, instead of a scroll past all of it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from alerts import publish as lifecycle
from db import db, utcnow
from population import seed
from tests.test_browser_admin_messages import _expect, _sign_in, _staff

pytestmark = pytest.mark.browser

EVACUATION = tomllib.loads((Path(__file__).parent / "fixtures" / "sms" / "warnings_pl_uk.toml")
                           .read_text("utf-8"))["evacuation"]


def test_the_send_of_an_emergency_preview_is_one_tap_from_the_top_on_a_phone(live_server: str,
                                                                                page: Any) -> None:
    for start, lang in ((0, "pl"), (20, "en"), (40, "uk")):
        seed(3, categories={"emergency": 1}, areas=["KOZY"], start=start, language=lang)
    approver = _staff("approver")
    draft = lifecycle.create_alert(lifecycle.Draft(
        category="emergency", level=None, areas=None,
        titles={"pl": EVACUATION["title_pl"], "en": "EVACUATION Nadbrzeżna and Młyńska streets",
                "uk": EVACUATION["title_uk"]},
        texts={"pl": EVACUATION["text_pl"], "uk": EVACUATION["text_uk"],
               "en": "Kozówka stream is 80 cm over the alarm level. Residents of Nadbrzeżna and Młyńska "
                     "streets: leave your homes now. Evacuation point: Primary School no. 1, Szkolna 5. "
                     "Take medicines and documents. Help with evacuation: call 112."},
        channels=["sms", "push"], starts_at=utcnow()), created_by=approver.id)
    db.session.commit()
    _sign_in(page, live_server, approver)
    page.goto(f"{live_server}/admin/messages/{draft.id}")
    send = page.locator("#break-glass button[type=submit]")
    _expect()(send).to_have_count(1)
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height > 3000, "the page is long, as it was on the phone in the report"
    jump = page.locator("#jump-to-actions")
    assert jump.bounding_box()["y"] < 2 * page.viewport_size["height"], jump.bounding_box()
    page.screenshot(path="/tmp/admin-emergency-preview.png", full_page=True)
    jump.click()
    _expect()(send).to_be_in_viewport()
    page.screenshot(path="/tmp/admin-emergency-preview-jumped.png")
