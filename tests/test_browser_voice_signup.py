"""A resident with only a landline signs up in a real browser at phone size: chooses calls
only, hears the code in a call, types it, and sees the choice on the manage page.

Screenshots go to /tmp/syrena-voice-*.png for a human to look at.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from db import db
from subscribers.models import Subscriber
from tests.parallel import serve  # noqa: F401 - the fixture
from tests.test_voice_signup import LANDLINE, LANDLINE_TYPED, code_call

pytestmark = pytest.mark.browser


def test_a_landline_signs_up_for_calls_in_the_browser(serve, page: Any, twilio) -> None:  # noqa: F811
    from playwright.sync_api import expect

    base = serve(WTF_CSRF_ENABLED=True, VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200")
    page.goto(base + "/")
    expect(page.get_by_label("SMS-em", exact=True)).to_be_checked()
    page.locator("#contact").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/syrena-voice-form.png", full_page=False)

    page.get_by_label("Numer telefonu", exact=True).fill(LANDLINE_TYPED)
    page.locator("#consent").check()
    page.get_by_role("button", name="Wyślij kod").click()
    # Asked for SMS, a landline is told that calls would work; nothing was sent.
    expect(page.locator("#phone-error")).to_contain_text("To numer stacjonarny")
    assert twilio.calls == [] and twilio.messages == []

    page.get_by_label("Tylko telefonem", exact=False).check()
    page.get_by_role("button", name="Wyślij kod").click()
    expect(page.locator("main")).to_contain_text("Za chwilę zadzwonimy na numer")
    page.screenshot(path="/tmp/syrena-voice-verify.png", full_page=True)
    code, _heard = code_call(twilio, LANDLINE)
    page.get_by_role("textbox", name="Kod z połączenia").fill(code)
    page.get_by_role("button", name="Potwierdź").click()
    expect(page.locator("#contact_voice")).to_be_checked()
    page.locator("#contact").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/syrena-voice-manage.png", full_page=False)
    db.session.expire_all()
    resident = db.session.scalar(select(Subscriber).where(Subscriber.phone == LANDLINE))
    assert (resident.status, resident.voice, resident.voice_only) == ("active", True, True)
    assert twilio.messages == []
