"""The staff pages of calls and groups in a real browser at phone size: a message to a group
written with its spoken text, its preview with the call, the calls' outcomes and the
sołtys list after the send, a paper form and a resident's groups. No page may scroll
sideways on the phone.

Screenshots go to /tmp/syrena-admin-voice-*.png for a human to look at.
"""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from alerts import publish as lifecycle
from alerts.models import Alert
from db import db
from population import phone_for, seed
from subscribers import groups, service
from subscribers.models import Subscriber
from tests.parallel import serve  # noqa: F401 - the fixture
from tests.test_browser_admin_messages import _expect, _no_horizontal_scroll, _sign_in, _staff
from tests.test_delivery import drain

pytestmark = pytest.mark.browser


def test_staff_write_to_a_group_with_a_call_and_follow_the_calls(serve, page: Any, twilio) -> None:  # noqa: F811
    from flask import current_app

    expect = _expect()
    base = serve(WTF_CSRF_ENABLED=True, VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200",
                 VOICE_CALLS_PER_SECOND=0)
    app = current_app._get_current_object()
    boss = _staff("approver")
    members = seed(3, categories={"official": 1}, areas=["KOZY"], calls={"official": 1}, start=0)
    for sid in members:
        groups.add(db.session.get(Subscriber, sid), "osp", boss, service.Origin("staff"))
    _sign_in(page, base, boss)

    page.goto(base + "/admin/messages/new")
    page.get_by_label("Kategoria").select_option("official")
    page.locator("#title_pl").fill("Zbiórka OSP")
    page.locator("#text_pl").fill("Zbiórka w remizie w sobotę o 10:00. Więcej: https://kozy.pl")
    page.locator("#audience_groups").check()
    page.locator("#group_osp").check()
    page.locator("#spoken").locator("summary").click()
    page.get_by_label("Co odczyta połączenie (po polsku)").fill("Zbiórka w remizie w sobotę o dziesiątej.")
    page.screenshot(path="/tmp/syrena-admin-voice-compose.png", full_page=True)
    _no_horizontal_scroll(page)
    page.get_by_role("button", name="Zapisz i pokaż podgląd").click()

    expect(page.locator("[data-groups]")).to_contain_text("Ochotnicza Straż Pożarna")
    expect(page.locator("[data-spoken]")).to_contain_text("Zbiórka w remizie w sobotę o dziesiątej.")
    expect(page.locator("[data-voice-cost]")).to_contain_text("3 połączeń")
    page.locator("#voice-preview").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/syrena-admin-voice-preview.png", full_page=True)
    _no_horizontal_scroll(page)

    db.session.expire_all()
    alert = db.session.scalar(select(Alert).order_by(Alert.id.desc()))
    lifecycle.publish(alert)
    drain(app)
    by_phone = {c["To"]: c["sid"] for c in twilio.calls}
    twilio.ring(by_phone[phone_for(0)], "human", keys=["1"])
    twilio.ring(by_phone[phone_for(1)], "busy")
    twilio.ring(by_phone[phone_for(2)], "machine")

    page.goto(f"{base}/admin/messages/{alert.id}")
    expect(page.locator("#calls")).to_contain_text("Bez potwierdzenia: 2 z 3.")
    expect(page.locator('[data-call-total="confirmed"]')).to_have_text("1")
    expect(page.locator('[data-call-total="voicemail"]')).to_have_text("1")
    page.locator("#calls").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/syrena-admin-voice-outcomes.png", full_page=True)
    _no_horizontal_scroll(page)
    page.get_by_role("link", name="Lista dla sołtysów").click()
    expect(page.locator("#not-confirmed")).to_contain_text(phone_for(1))
    expect(page.locator("#not-confirmed")).to_contain_text("poczta głosowa")
    page.screenshot(path="/tmp/syrena-admin-voice-soltys.png", full_page=True)
    _no_horizontal_scroll(page)

    page.goto(base + "/admin/subscribers/new")
    page.get_by_label("Numer telefonu", exact=True).fill("33 812 34 56")
    page.get_by_label("Numer formularza").fill("KZ/2026/0007")
    page.locator("#closed_soltysi").check()
    page.screenshot(path="/tmp/syrena-admin-voice-paper.png", full_page=True)
    _no_horizontal_scroll(page)
    page.get_by_role("button", name="Zapisz mieszkańca").click()
    # No signing date: said next to the field, and what was typed stays.
    expect(page.locator("#signed_on-error")).to_have_text("Podaj datę podpisania formularza.")
    expect(page.get_by_label("Numer formularza")).to_have_value("KZ/2026/0007")
    expect(page.locator("#closed_soltysi")).to_be_checked()

    page.goto(f"{base}/admin/subscribers/{members[0]}")
    expect(page.locator('[data-group="osp"]')).to_contain_text("należy")
    page.locator("#groups").scroll_into_view_if_needed()
    page.screenshot(path="/tmp/syrena-admin-voice-groups.png", full_page=True)
    _no_horizontal_scroll(page)
