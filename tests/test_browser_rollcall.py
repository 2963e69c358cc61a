"""A roll-call in a real browser at phone size: an approver starts it (reach and cost first),
residents answer on their personal pages while the staff page is open, and the live tally
and the "need help" list change without a reload; staff record an answer heard at the door.

Screenshots go to /tmp/syrena-rollcall-*.png for a human to look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlalchemy import select

from db import db
from population import phone_for, seed
from rollcall.models import RollCall
from tests.parallel import serve  # noqa: F401 - the fixture
from tests.test_browser_admin_messages import _expect, _no_horizontal_scroll, _sign_in, _staff
from tests.test_delivery import drain

pytestmark = pytest.mark.browser


def test_the_live_tally_at_phone_size_while_residents_answer(serve, page: Any, twilio) -> None:  # noqa: F811
    from flask import current_app

    expect = _expect()
    base = serve(WTF_CSRF_ENABLED=True, SYRENA_MUNICIPALITY="porabka")
    app = current_app._get_current_object()
    boss = _staff("approver")
    seed(3, categories={"weather": 1}, areas=["CZA"], start=0)
    seed(2, categories={"events": 1}, areas=["BUJ"], start=10)
    seed(2, categories={"weather": 1}, areas=["POR"], start=20)  # not asked
    _sign_in(page, base, boss)

    page.goto(base + "/admin/rollcalls/")
    page.locator("#area_CZA").check()
    page.locator("#area_BUJ").check()
    page.get_by_label("Zapytaj ponownie tych, którzy nie odpowiedzą").select_option("30")
    _no_horizontal_scroll(page)
    page.get_by_role("button", name="Sprawdź zasięg i koszt").click()
    expect(page.locator("#rollcall-preview")).to_contain_text("Zapytamy 5 mieszkańców")
    expect(page.locator("#rollcall-preview .sms-preview")).to_contain_text("Czy jestes bezpieczny?")
    page.screenshot(path="/tmp/syrena-rollcall-start.png", full_page=True)
    _no_horizontal_scroll(page)
    page.get_by_role("button", name="Wyślij pytanie teraz").click()
    expect(page.locator("#tally-total")).to_contain_text("Zapytano: 5")
    db.session.expire_all()
    roll_call = db.session.scalar(select(RollCall))
    drain(app)
    bodies = {m["To"]: m["Body"] for m in twilio.messages}

    # A resident answers on their own page, in another browser context (their phone).
    resident = page.context.browser.new_context(viewport=page.viewport_size, is_mobile=True, has_touch=True,
                                                locale="pl-PL").new_page()
    resident.goto(re.search(r"https?://\S+", bodies[phone_for(0)]).group(0))
    expect(resident.get_by_role("button", name="POMOC – potrzebuję pomocy")).to_be_visible()
    resident.screenshot(path="/tmp/syrena-rollcall-resident.png", full_page=True)
    width = resident.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"]
    resident.get_by_label("Możesz dopisać kilka słów (nie musisz)").fill("Woda w kuchni, mama nie chodzi")
    resident.get_by_role("button", name="POMOC – potrzebuję pomocy").click()
    expect(resident.locator("#rollcall-done")).to_contain_text("Gmina skontaktuje się z Tobą")
    resident.screenshot(path="/tmp/syrena-rollcall-resident-done.png", full_page=True)
    resident.context.close()

    # Another answers by SMS; the staff page, left open, shows both without a reload.
    form = {"MessageSid": "SM" + "7" * 32, "AccountSid": twilio.account_sid, "From": phone_for(1),
            "To": "+48732000000", "Body": "tak", "NumMedia": "0"}
    assert twilio.post_signed(base + "/webhooks/twilio/inbound", form).status_code == 200
    page.evaluate("window.__notReloaded = true")
    expect(page.locator("#help-list")).to_contain_text("Woda w kuchni, mama nie chodzi", timeout=15_000)
    expect(page.locator("#tally-total .tally-help .tally-n")).to_have_text("1")
    expect(page.locator("#tally-total .tally-safe .tally-n")).to_have_text("1", timeout=15_000)
    expect(page.locator("#tally-total .tally-waiting .tally-n")).to_have_text("3")
    assert page.evaluate("window.__notReloaded") is True
    expect(page.locator("#help-list")).to_contain_text(phone_for(0))
    expect(page.locator("#tally-areas")).to_contain_text("Czaniec")
    page.screenshot(path="/tmp/syrena-rollcall-live.png", full_page=True)
    _no_horizontal_scroll(page)

    # An answer heard at the door, recorded from the "no answer" list.
    page.locator("#not-answered-list").get_by_role("link", name="zapisz odpowiedź").first.click()
    page.locator("#answer_safe").check()
    page.get_by_label("Jak ją przyjęto").select_option("door")
    page.get_by_role("button", name="Zapisz odpowiedź").click()
    expect(page.locator(".notice-success")).to_contain_text("Odpowiedź zapisana")
    expect(page.locator("#tally-total .tally-safe .tally-n")).to_have_text("2")
    _no_horizontal_scroll(page)

    # Closed: the time is shown, the tally stays.
    page.get_by_role("button", name="Zamknij teraz").click()
    expect(page.locator("main")).to_contain_text("zamknięte")
    page.screenshot(path="/tmp/syrena-rollcall-closed.png", full_page=True)
    db.session.expire_all()
    assert db.session.get(RollCall, roll_call.id).closed_at is not None
