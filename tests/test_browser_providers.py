"""The dashboard's SMS providers block in a real browser at phone size: a failing provider is
shown with its reason, and an admin pins the split from the form (CSRF on)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from alerts import balance
from alerts.routing import SmsRoute
from db import db
from tests.test_browser_admin_messages import _expect, _sign_in, _staff
from tests.test_failover import sends


@pytest.fixture
def make_app(make_app, smsapi):  # noqa: ANN001, ANN201 - conftest's, with both providers
    def factory(**overrides: Any):
        return make_app(SMS_BACKEND="twilio,smsapi", SMSAPI_TOKEN=smsapi.token, SMSAPI_API_BASE=smsapi.base_url,
                        **overrides)

    return factory


def test_an_admin_sees_a_failing_provider_and_pins_the_split_on_a_phone(live_server: str, page: Any) -> None:
    resting = {"twilio": 50, "smsapi": 50}
    sends("twilio", ok=2, failed=38)
    sends("smsapi", ok=40, failed=0)
    balance.rebalance(resting)
    _sign_in(page, live_server, _staff("admin"))
    block = page.locator("#providers")
    _expect()(block.get_by_text("awaria")).to_be_visible()
    _expect()(block.get_by_text("95% wysyłek nieudanych w ostatnich 120 s (38 z 40)").first).to_be_visible()
    _expect()(block.get_by_text("automatycznie", exact=False).first).to_be_visible()
    block.scroll_into_view_if_needed()
    page.screenshot(path="/tmp/admin-providers.png", full_page=True)
    block.get_by_label("twilio").fill("0")
    block.get_by_label("smsapi").fill("100")
    block.get_by_label("Powód").fill("Awaria Twilio, wszystko przez SMSAPI")
    block.get_by_role("button", name="Ustaw i zablokuj").click()
    _expect()(page.get_by_text("Podział ustawiony ręcznie")).to_be_visible()
    _expect()(page.locator("#providers").get_by_text("ustawione ręcznie").first).to_be_visible()
    page.screenshot(path="/tmp/admin-providers-pinned.png", full_page=True)
    db.session.expire_all()
    assert {r.provider: (r.weight, r.pinned) for r in db.session.scalars(select(SmsRoute))} == {
        "twilio": (0, True), "smsapi": (100, True)}
