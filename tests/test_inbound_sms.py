"""Residents texting the gmina's number: START [area], STOP / NIE / WYPISZ / REZYGNACJA, POMOC."""

from __future__ import annotations

import itertools
from xml.etree import ElementTree

import pytest
from sqlalchemy import func, select
from twilio.request_validator import RequestValidator

from db import db
from subscribers.models import ConsentEvent, InboundSms, Subscriber

URL = "https://alerty.example.pl/webhooks/twilio/inbound"  # PUBLIC_BASE_URL in tests
PHONE = "+48501234567"
_sids = itertools.count(1)


def text_us(client, twilio, body, phone=PHONE, sid=None, extra=None, signature=None):
    form = {"MessageSid": sid or f"SM{next(_sids):032d}", "AccountSid": twilio.account_sid, "From": phone,
            "To": "+48732000000", "Body": body, "NumMedia": "0"}
    form.update(extra or {})
    if signature is None:
        signature = RequestValidator(twilio.auth_token).compute_signature(URL, form)
    return client.post("/webhooks/twilio/inbound", data=form, headers={"X-Twilio-Signature": signature})


def reply_of(response) -> str | None:
    assert response.status_code == 200
    assert response.mimetype == "application/xml"
    message = ElementTree.fromstring(response.data).find("Message")
    return None if message is None else message.text


def subscriber() -> Subscriber | None:
    return db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))


def test_start_subscribes_the_number_with_default_categories_and_replies_with_the_link(client, twilio):
    reply = reply_of(text_us(client, twilio, "START"))
    assert reply.startswith("Gmina Kozy: zapisano Cie do powiadomien SMS. Ustawienia: https://alerty.example.pl/m/")
    s = subscriber()
    assert s.status == "active" and s.verified_at is not None
    assert set(s.category_levels()) == {"weather", "hydro", "air", "emergency", "official", "utilities"}
    assert s.area_codes() == ["KOZY"]
    event = db.session.scalar(select(ConsentEvent))
    assert (event.action, event.source, event.detail) == ("subscribe", "sms", "SMS keyword")


@pytest.mark.parametrize("word", ["STOP", "stop", "Nie", "WYPISZ", "rezygnacja", "Rezygnuję", "wypisuję się", "STOP SMS", " stop! "])
def test_every_stop_word_opts_out_at_once(client, twilio, word):
    text_us(client, twilio, "START")
    reply = reply_of(text_us(client, twilio, word))
    assert reply == ("Gmina Kozy: wypisano z powiadomien SMS. Nie dostaniesz wiecej wiadomosci. "
                     "Powrot: odpisz START.")
    assert subscriber().status == "opted_out"


def test_opting_out_is_confirmed_once(client, twilio):
    text_us(client, twilio, "START")
    assert reply_of(text_us(client, twilio, "STOP")) is not None
    assert reply_of(text_us(client, twilio, "STOP")) is None
    assert db.session.scalar(select(func.count()).where(ConsentEvent.action == "opt_out")) == 1


def test_start_brings_a_resident_back_with_their_old_choices(client, twilio):
    text_us(client, twilio, "START")
    s = subscriber()
    from subscribers.service import Origin, Preferences, update_preferences
    update_preferences(s, Preferences({"hydro": 2}, ("KOZY",), "pl"), Origin("web"))
    text_us(client, twilio, "NIE")
    reply = reply_of(text_us(client, twilio, "start"))
    assert reply.startswith("Gmina Kozy: wznowiono powiadomienia SMS.")
    db.session.refresh(s)
    assert s.status == "active" and s.category_levels() == {"hydro": 2}


def test_start_with_an_area_code_picks_that_village(make_app, twilio):
    client = make_app(SYRENA_MUNICIPALITY="porabka").test_client()
    assert reply_of(text_us(client, twilio, "START cza")).startswith("Gmina Porabka: zapisano Cie")
    assert subscriber().area_codes() == ["CZA"]
    assert reply_of(text_us(client, twilio, "START KOB")).startswith("Gmina Porabka: dodano miejscowosc Kobiernice.")
    assert subscriber().area_codes() == ["CZA", "KOB"]


def test_start_with_an_unknown_area_lists_the_codes_and_subscribes_nobody(make_app, twilio):
    client = make_app(SYRENA_MUNICIPALITY="porabka").test_client()
    reply = reply_of(text_us(client, twilio, "START WARSZAWA"))
    assert reply == ("Gmina Porabka: nie znamy miejscowosci WARSZAWA. Dostepne kody: BUJ, CZA, KOB, POR. "
                     "Wyslij np. START BUJ")
    assert subscriber() is None
    assert db.session.scalar(select(InboundSms.action)) == "start:area_unknown"


def test_help_explains_the_keywords(client, twilio):
    assert reply_of(text_us(client, twilio, "pomoc")) == (
        "Gmina Kozy, powiadomienia SMS. START - zapis, STOP - wypisanie. "
        "Ustawienia i informacje: https://alerty.example.pl")


def test_an_unknown_message_gets_a_short_hint_and_changes_nothing(client, twilio):
    assert "Odpisz START" in reply_of(text_us(client, twilio, "Dzien dobry, kiedy wywoz smieci?"))
    assert subscriber() is None
    assert db.session.scalar(select(InboundSms.body)) == "Dzien dobry, kiedy wywoz smieci?"


def test_a_landline_cannot_subscribe_by_sms(client, twilio):
    reply = reply_of(text_us(client, twilio, "START", phone="+48221234567"))
    assert reply.startswith("To nie jest numer")
    assert db.session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_a_retried_webhook_is_handled_once(client, twilio):
    text_us(client, twilio, "START", sid="SM" + "a" * 32)
    assert reply_of(text_us(client, twilio, "STOP", sid="SM" + "b" * 32)) is not None
    assert reply_of(text_us(client, twilio, "STOP", sid="SM" + "b" * 32)) is None
    assert db.session.scalar(select(func.count()).select_from(InboundSms)) == 2


def test_with_twilio_advanced_opt_out_we_mirror_the_state_without_a_second_reply(client, twilio):
    text_us(client, twilio, "START")
    assert reply_of(text_us(client, twilio, "STOP", extra={"OptOutType": "STOP"})) is None
    assert subscriber().status == "opted_out"


def test_a_forged_signature_is_refused_and_changes_nothing(client, twilio):
    response = text_us(client, twilio, "START", signature="bm90IGEgc2lnbmF0dXJl")
    assert response.status_code == 403
    assert db.session.scalar(select(func.count()).select_from(InboundSms)) == 0
    assert subscriber() is None


def test_a_missing_signature_is_refused(client, twilio):
    response = client.post("/webhooks/twilio/inbound", data={"From": PHONE, "Body": "START", "MessageSid": "SMx"})
    assert response.status_code == 403
    assert subscriber() is None


def test_a_signature_for_another_body_is_refused(client, twilio):
    form = {"MessageSid": "SM1", "From": PHONE, "Body": "STOP"}
    signature = RequestValidator(twilio.auth_token).compute_signature(URL, form)
    response = client.post("/webhooks/twilio/inbound", data={**form, "Body": "START"},
                           headers={"X-Twilio-Signature": signature})
    assert response.status_code == 403


def test_behind_a_tls_proxy_the_public_url_is_what_is_signed(make_app, twilio):
    # nginx forwards Host as its upstream name and plain http: only PUBLIC_BASE_URL counts.
    client = make_app(PUBLIC_BASE_URL="https://alerty.kozy.pl").test_client()
    public = "https://alerty.kozy.pl/webhooks/twilio/inbound"
    form = {"MessageSid": "SM9", "From": PHONE, "Body": "START"}
    signature = RequestValidator(twilio.auth_token).compute_signature(public, form)
    response = client.post("/webhooks/twilio/inbound", data=form, headers={
        "X-Twilio-Signature": signature, "Host": "syrena-upstream:8000"})
    assert response.status_code == 200
    assert subscriber().status == "active"
