"""A resident in a real browser (chromium through Playwright), with CSRF protection on:
subscribe -> confirm with the code from the SMS -> change a category -> leave.

Screenshots of the subscribe and manage pages at a phone viewport go to /tmp/syrena-*.png
for a human to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from db import db
from subscribers.models import OPTED_OUT, ConsentEvent, Subscriber, SubscriberCategory
from tests.conftest import last_code, sent_sms
from tests.fakes.twilio_api import FakeTwilio

pytestmark = pytest.mark.browser

PHONE = "+48501234567"


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


@pytest.mark.browser
def test_a_resident_subscribes_confirms_changes_a_category_and_leaves(
        live_server: str, page: Any, twilio: FakeTwilio) -> None:  # noqa: F811
    expect = _expect()

    # The home page, in Polish, with the form.
    page.goto(live_server + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Bezpłatne powiadomienia SMS – Gmina Kozy")
    expect(page.get_by_label("Ostrzeżenia meteorologiczne", exact=True)).to_be_checked()
    expect(page.get_by_label("Wydarzenia kulturalne i sportowe", exact=True)).not_to_be_checked()
    page.screenshot(path="/tmp/syrena-subscribe.png", full_page=True)

    # A landline first: the message shows next to the field, and the choices stay.
    page.get_by_label("Numer telefonu komórkowego").fill("22 123 45 67")
    page.get_by_label("Komunikaty urzędowe", exact=True).uncheck()
    page.get_by_label("Które ostrzeżenia: Ostrzeżenia meteorologiczne").select_option(label="pomarańczowe i czerwone")
    page.locator("#consent").check()
    page.get_by_role("button", name="Wyślij kod SMS").click()
    expect(page.locator("#phone-error")).to_have_text(
        "To nie jest numer komórkowy (np. telefon stacjonarny). SMS-y można wysyłać tylko na komórkę.")
    expect(page.get_by_label("Numer telefonu komórkowego")).to_have_value("22 123 45 67")
    expect(page.get_by_label("Komunikaty urzędowe", exact=True)).not_to_be_checked()
    expect(page.get_by_label("Które ostrzeżenia: Ostrzeżenia meteorologiczne")).to_have_value("2")
    expect(page.locator("#consent")).to_be_checked()
    page.screenshot(path="/tmp/syrena-subscribe-error.png", full_page=True)

    # The right number: a code goes to the fake Twilio.
    page.get_by_label("Numer telefonu komórkowego").fill("501 234 567")
    page.get_by_role("button", name="Wyślij kod SMS").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wpisz kod z SMS-a")
    expect(page.get_by_text("+48 501 *** 567")).to_be_visible()
    code = last_code(twilio, PHONE)
    page.get_by_role("textbox", name="Kod z SMS-a").fill(code)
    page.get_by_role("button", name="Potwierdź").click()

    # The manage page, with the one-time confirmation.
    expect(page).to_have_url(re.compile(r"/m/[^/]+$"))
    expect(page.get_by_role("status")).to_contain_text("Numer potwierdzony")
    expect(page.get_by_text("Aktywne: dostajesz powiadomienia.")).to_be_visible()
    page.screenshot(path="/tmp/syrena-manage.png", full_page=True)

    # Change a category: air quality, red warnings only.
    page.get_by_label("Jakość powietrza", exact=True).uncheck()
    page.get_by_label("Jakość powietrza", exact=True).check()
    page.get_by_label("Które ostrzeżenia: Jakość powietrza").select_option(label="tylko czerwone")
    page.get_by_label("Powódź i susza", exact=True).uncheck()
    page.get_by_role("button", name="Zapisz zmiany").click()
    expect(page.get_by_role("status")).to_have_text("Zapisano zmiany.")
    expect(page.get_by_label("Które ostrzeżenia: Jakość powietrza")).to_have_value("3")
    expect(page.get_by_label("Powódź i susza", exact=True)).not_to_be_checked()

    # Leave with one click.
    page.get_by_role("button", name="Wypisz mnie").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Wypisano")
    expect(page.get_by_role("button", name="Wróć do powiadomień")).to_be_visible()

    # The database agrees.
    db.session.expire_all()
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    assert subscriber is not None and subscriber.status == OPTED_OUT
    levels = dict(db.session.execute(
        select(SubscriberCategory.category, SubscriberCategory.min_level)
        .where(SubscriberCategory.subscriber_id == subscriber.id)).all())
    assert levels == {"weather": 2, "air": 3, "emergency": 1, "utilities": 1}
    events = db.session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber.id).order_by(ConsentEvent.id)).all()
    assert [e.action for e in events] == ["subscribe", "verify", "change", "opt_out"]
    assert all(e.source == "web" and e.ip == "127.0.0.1" and "Chrome" in (e.user_agent or "") for e in events)
    # Two SMS: the code, then the confirmation with the manage link.
    assert [m["To"] for m in sent_sms(twilio)] == [PHONE, PHONE]
    assert "/m/" in sent_sms(twilio)[1]["Body"]
