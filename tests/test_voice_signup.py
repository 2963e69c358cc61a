"""Signing up for calls: a landline (calls only) proves its number by a call that reads the
code twice; a mobile may add calls to its SMS; the API and the manage page say the same."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from tests.conftest import send_queued_sms
from db import db
from subscribers.models import ConsentEvent, Subscriber, SubscriberCategory, Verification
from tests.fakes.twilio_voice import FakeTwilioVoice
from tests.test_public_pages import PHONE, message, page, subscribe_form, subscriber

LANDLINE_TYPED, LANDLINE = "33 812 34 56", "+48338123456"  # Kozy's own area code (33)
DIGITS = {w: str(i) for i, w in enumerate(
    ["zero", "jeden", "dwa", "trzy", "cztery", "pięć", "sześć", "siedem", "osiem", "dziewięć"])}


@pytest.fixture
def client(make_app):  # noqa: ANN001, ANN201
    return make_app(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200").test_client()


def code_call(twilio: FakeTwilioVoice, phone: str) -> tuple[str, str]:
    """Answer the code call to `phone`; return (the code heard, everything heard)."""
    send_queued_sms()
    calls = [c for c in twilio.calls if c["To"] == phone]
    assert calls, f"no call to {phone}: {twilio.calls}"
    ringing = twilio.ring(calls[-1]["sid"], "human")
    heard = ringing.text
    # Both readings of the digits, slowly.
    assert len(ringing.slow) == 2 and all(re.fullmatch(r"[a-zęść]+(, [a-zęść]+){5}\.", s) for s in ringing.slow), \
        ringing.slow
    said = re.findall(r"((?:(?:zero|jeden|dwa|trzy|cztery|pięć|sześć|siedem|osiem|dziewięć)(?:, )?){6})\.", heard)
    codes = {"".join(DIGITS[w] for w in s.split(", ")) for s in said}
    assert len(said) == 2 and len(codes) == 1, heard  # read twice, the same both times
    return codes.pop(), heard


def test_a_landline_signs_up_for_calls_and_hears_its_code_twice(client, twilio):
    response = client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice",
                                                             calls=["weather", "emergency"]))
    assert response.status_code == 302, page(response).errors
    code, heard = code_call(twilio, LANDLINE)
    assert heard.startswith("Twój kod potwierdzenia zapisu do powiadomień Gminy Kozy to:")
    assert heard.endswith("Wpisz ten kod na stronie zapisu. Do widzenia.")
    call = twilio.calls[-1]
    # The code travels in the call's own TwiML: no URL of ours carries it, nothing to answer.
    assert call.get("Url") is None and code not in (call.get("StatusCallback") or "")
    assert call.get("MachineDetection") is None
    assert twilio.messages == []

    response = client.post("/verify", data={"code": code})
    assert response.status_code == 302 and response.headers["Location"].startswith("/m/")
    resident = subscriber(LANDLINE)
    assert (resident.status, resident.voice, resident.voice_only) == ("active", True, True)
    levels = dict(db.session.execute(select(SubscriberCategory.category, SubscriberCategory.call_level).where(
        SubscriberCategory.subscriber_id == resident.id)).all())
    # Calls are all a landline gets: everything chosen rings, from the levels chosen.
    assert levels == {"weather": 2, "emergency": 1, "official": 1}
    send_queued_sms()
    assert twilio.messages == []  # a landline gets no SMS, not even the manage link
    verify = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "verify"))
    assert "calls: emergency, official, weather>=2 (calls only)" in verify.detail


def test_a_landline_asked_to_get_sms_is_told_that_calls_would_work(client, twilio):
    response = client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="sms"))
    assert response.status_code == 400
    assert page(response).errors["phone"] == message("phone_landline")
    assert twilio.calls == [] and twilio.messages == []


def test_a_mobile_adds_calls_to_its_sms(client, twilio):
    from tests.conftest import last_code

    response = client.post("/subscribe", data=subscribe_form(contact="sms_voice", calls=["weather", "official"],
                                                             level_weather="3"))
    assert response.status_code == 302
    assert twilio.calls == []  # the code goes by SMS to a mobile
    client.post("/verify", data={"code": last_code(twilio, PHONE)})
    resident = subscriber()
    assert (resident.voice, resident.voice_only) == (True, False)
    levels = dict(db.session.execute(select(SubscriberCategory.category, SubscriberCategory.call_level).where(
        SubscriberCategory.subscriber_id == resident.id)).all())
    # Weather calls from the resident's own level 3; official has no levels; emergency always.
    assert levels == {"weather": 3, "official": 1, "emergency": 1}
    # The manage page shows the choice, and turning calls off keeps the SMS.
    token = response_token(client)
    p = page(client.get(f"/m/{token}"))
    assert p.checked("contact_sms_voice") and p.checked("call_weather") and not p.checked("call_air")
    assert client.post(f"/m/{token}", data={"categories": ["weather"], "level_weather": "3", "language": "pl",
                                            "contact": "sms"}).status_code == 302
    resident = subscriber()
    assert (resident.voice, resident.voice_only, resident.status) == (False, False, "active")


def response_token(client) -> str:  # noqa: ANN001
    from subscribers.links import make_manage_token

    return make_manage_token(subscriber())


def test_the_home_page_offers_calls_only_where_the_gmina_makes_them(client, make_app):
    p = page(client.get("/"))
    assert p.checked("contact_sms") and p.checked("call_weather") and p.checked("call_hydro")
    assert "call_emergency" not in p.inputs  # emergencies always ring: nothing to tick
    plain = make_app().test_client()
    assert "contact_sms" not in plain.get("/").get_data(as_text=True)
    # Without calls a landline is what it always was: not a mobile.
    response = plain.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice"))
    assert page(response).errors["phone"] == message("phone_not_mobile")


def test_the_api_takes_calls_and_calls_only(client, twilio):
    body = {"phone": LANDLINE_TYPED, "consent": True, "categories": {"hydro": 2}, "areas": ["KOZY"],
            "calls": {"hydro": 3}, "calls_only": True}
    assert client.post("/api/v1/subscriptions", json=body).status_code == 202
    code, _ = code_call(twilio, LANDLINE)
    answer = client.post("/api/v1/subscriptions/verify", json={"phone": LANDLINE, "code": code})
    assert answer.status_code == 200
    token = answer.get_json()["manage_url"].rsplit("/", 1)[-1]
    state = client.get(f"/api/v1/subscriptions/{token}").get_json()
    assert state["calls"] == {"hydro": 3, "emergency": 1} and state["calls_only"] is True
    bad = client.post("/api/v1/subscriptions", json={**body, "calls": {"official": 1}})
    assert bad.status_code == 400 and bad.get_json()["error"] == "call_category_unknown"


def test_the_api_refuses_calls_where_the_gmina_makes_none(make_app):
    plain = make_app().test_client()
    answer = plain.post("/api/v1/subscriptions", json={"phone": "501 234 567", "consent": True,
                                                       "categories": ["weather"], "areas": ["KOZY"], "calls": True})
    assert answer.status_code == 400 and answer.get_json()["error"] == "calls_unavailable"


def test_a_lost_link_for_a_landline_comes_by_call_and_a_stranger_s_landline_gets_nothing(client, twilio):
    client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice"))
    code, _ = code_call(twilio, LANDLINE)
    client.post("/verify", data={"code": code})
    # Past the wait before a number may be sent another code.
    for verification in db.session.scalars(select(Verification)):
        verification.created_at -= timedelta(minutes=10)
    db.session.commit()
    other = client.application.test_client()
    stranger = other.post("/access", data={"phone": "33 812 99 99"})
    mine = other.post("/access", data={"phone": LANDLINE_TYPED})
    assert stranger.status_code == mine.status_code == 302
    send_queued_sms()
    assert [c["To"] for c in twilio.calls] == [LANDLINE, LANDLINE]
    code, _ = code_call(twilio, LANDLINE)
    assert other.post("/verify", data={"code": code}).headers["Location"].startswith("/m/")


def test_erasing_a_resident_deletes_their_calls_at_twilio_too(client, twilio):
    from alerts import publish as lifecycle
    from alerts.models import Delivery
    from subscribers import erasure
    from tests.test_delivery import alert, drain

    client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice", calls=["weather"]))
    code, _ = code_call(twilio, LANDLINE)
    client.post("/verify", data={"code": code})
    app = client.application
    lifecycle.publish(alert(level=2, channels=("voice",)))
    drain(app)
    assert len(twilio.calls) == 2
    alert_call = twilio.calls[-1]["sid"]
    # The call is over (no webhook server here: the fake only records the end).
    twilio._set(alert_call, status="completed", duration=40)
    code_sid = twilio.calls[0]["sid"]
    resident = subscriber(LANDLINE)
    erasure.erase(resident)
    assert sorted(twilio.deleted_calls) == sorted([code_sid, alert_call])
    assert twilio.calls == []
    assert db.session.scalar(select(Delivery.subscriber_id)) is None  # the count stays, anonymous


def test_a_landline_cannot_switch_itself_to_sms(client, twilio):
    from subscribers.links import make_manage_token

    client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice", calls=["weather"]))
    code, _ = code_call(twilio, LANDLINE)
    client.post("/verify", data={"code": code})
    token = make_manage_token(subscriber(LANDLINE))
    response = client.post(f"/m/{token}", data={"categories": ["weather"], "level_weather": "1", "language": "pl",
                                                "contact": "sms"})
    assert response.status_code == 400
    assert page(response).errors["contact"] == message("landline_calls_only")
    assert subscriber(LANDLINE).voice_only is True
    # An API change that does not mention calls leaves them as they were.
    answer = client.put(f"/api/v1/subscriptions/{token}", json={"categories": {"weather": 1}, "areas": ["KOZY"]})
    assert answer.status_code == 200 and answer.get_json()["calls_only"] is True
    resident = subscriber(LANDLINE)
    assert (resident.voice, resident.voice_only) == (True, True)


def test_a_calls_only_resident_who_pressed_9_and_comes_back_is_called_again(client, twilio):
    from alerts.match import reachable
    from subscribers import call_choice, service
    from subscribers.links import make_manage_token

    client.post("/subscribe", data=subscribe_form(phone=LANDLINE_TYPED, contact="voice"))
    code, _ = code_call(twilio, LANDLINE)
    client.post("/verify", data={"code": code})
    call_choice.stop_calls(subscriber(LANDLINE), service.Origin("voice"), detail="pressed 9")
    db.session.commit()
    assert subscriber(LANDLINE).status == "opted_out"
    token = make_manage_token(subscriber(LANDLINE))
    assert client.post(f"/m/{token}/resume").status_code in (302, 303)
    resident = subscriber(LANDLINE)
    assert (resident.status, resident.voice, resident.voice_only) == ("active", True, True)
    assert resident.id in set(db.session.scalars(reachable("voice")))
    opt_in = db.session.scalars(select(ConsentEvent).where(ConsentEvent.action == "opt_in")).all()[-1]
    assert "calls: emergency, official, weather>=2 (calls only)" in opt_in.detail


def test_a_web_save_keeps_the_call_levels_set_through_the_api(client, twilio):
    from tests.conftest import last_code
    from subscribers.links import make_manage_token

    body = {"phone": "501 234 567", "consent": True, "categories": {"weather": 1}, "areas": ["KOZY"],
            "calls": {"weather": 3}}
    assert client.post("/api/v1/subscriptions", json=body).status_code == 202
    client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    token = make_manage_token(subscriber())
    assert client.post(f"/m/{token}", data={"categories": ["weather"], "level_weather": "1", "language": "en",
                                            "contact": "sms_voice", "calls": ["weather"]}).status_code == 302
    levels = dict(db.session.execute(select(SubscriberCategory.category, SubscriberCategory.call_level)
                                     .where(SubscriberCategory.subscriber_id == subscriber().id)).all())
    assert levels["weather"] == 3


def test_where_calls_are_off_no_door_wipes_a_resident_s_calls(make_app, twilio):
    from population import seed
    from subscribers import service
    from tests.test_admin_messages import make_staff, signed_in
    from tests.test_paper_registration import paper_form

    app = make_app()  # VOICE_BACKEND unset: no calls, no call choices on any form
    [sid] = seed(1, categories={"weather": 1, "official": 1}, areas=["KOZY"], calls={"weather": 2})
    resident = db.session.get(Subscriber, sid)
    phone = resident.phone
    office = signed_in(app, make_staff("editor"))
    assert office.post("/admin/subscribers/new", data=paper_form(phone=phone, contact="sms")).status_code == 302
    service.update_preferences(resident, service.Preferences(categories={"weather": 1}, areas=("KOZY",),
                                                             language="pl"), service.Origin("api"))
    db.session.expire_all()
    resident = db.session.get(Subscriber, sid)
    assert resident.voice is True
    assert {c.category: c.call_level for c in resident.categories} == {"weather": 2}


def test_a_resident_whose_sms_cannot_arrive_gets_everything_by_call(client, twilio):
    from population import seed
    from subscribers import service

    [sid] = seed(1, categories={"weather": 1, "official": 1}, areas=["KOZY"], calls={"weather": 2})
    service.sms_unreachable(db.session.get(Subscriber, sid), "landline (21614)", service.Origin("provider"))
    db.session.expire_all()
    resident = db.session.get(Subscriber, sid)
    assert (resident.status, resident.voice_only) == ("active", True)
    assert {c.category: c.call_level for c in resident.categories} == {"weather": 1, "official": 1}
