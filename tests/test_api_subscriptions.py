"""The JSON API v1: subscribe, verify, manage, leave, with stable error codes."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from db import db, utcnow
from subscribers.models import ConsentEvent, SmsOutbox, Subscriber, Verification
from tests.conftest import last_code, sent_sms

PHONE = "+48501234567"


def age_codes(seconds: float) -> None:
    """Pretend every code was sent `seconds` earlier."""
    for v in db.session.scalars(select(Verification)):
        v.created_at -= timedelta(seconds=seconds)
        v.expires_at -= timedelta(seconds=seconds)
    db.session.commit()


def subscribe(client, **overrides):
    body = {"phone": "501 234 567", "categories": ["weather", "official"], "consent": True, "language": "pl"}
    body.update(overrides)
    return client.post("/api/v1/subscriptions", json=body)


def test_it_lists_categories_and_areas(client):
    cats = client.get("/api/v1/categories").get_json()["categories"]
    assert [c["code"] for c in cats] == ["weather", "hydro", "air", "emergency", "official", "events", "utilities"]
    assert cats[0]["name"] == "Ostrzeżenia meteorologiczne"
    assert client.get("/api/v1/categories?lang=en").get_json()["categories"][0]["name"] == "Weather warnings"
    areas = client.get("/api/v1/areas").get_json()
    assert areas["municipality"]["teryt"] == "2402072"
    assert areas["areas"] == [{"code": "KOZY", "name": "Kozy"}]


def test_it_texts_a_code_and_activates_the_subscription_on_the_right_code(client, twilio):
    response = subscribe(client, categories={"weather": 2, "official": 1})
    assert response.status_code == 202
    assert response.get_json()["phone"] == PHONE
    sent = sent_sms(twilio)[-1]
    assert sent["To"] == PHONE and sent["MessagingServiceSid"].startswith("MG")
    subscriber = db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE))
    assert subscriber.status == "pending"

    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    assert response.status_code == 200, response.get_json()
    data = response.get_json()
    assert data["status"] == "active"
    assert data["categories"] == {"weather": 2, "official": 1}
    assert data["areas"] == ["KOZY"]
    assert data["manage_url"].startswith("https://alerty.example.pl/m/")
    assert sent_sms(twilio)[-1]["Body"] == ("Gmina Kozy: potwierdzono zapis do powiadomien. Ustawienia i wypisanie: "
                                           + data["manage_url"])
    actions = db.session.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)).all()
    assert actions == ["subscribe", "verify"]
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "subscribe"))
    assert event.source == "api" and event.consent_version and event.ip == "127.0.0.1"


@pytest.mark.parametrize(("phone", "error"), [
    ("", "phone_missing"),
    ("12345", "phone_invalid"),
    ("hello", "phone_invalid"),
    ("22 123 45 67", "phone_not_mobile"),   # Warsaw landline
    ("800 123 456", "phone_not_mobile"),    # toll-free
    ("701 234 567", "phone_not_mobile"),    # premium rate: SMS-pumping bait
    ("+49 1512 3456789", "phone_country"),  # German mobile
])
def test_it_refuses_numbers_that_cannot_get_our_sms(client, twilio, phone, error):
    response = subscribe(client, phone=phone)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    assert response.get_json()["field"] == "phone"
    assert sent_sms(twilio) == []


def test_it_explains_a_landline_in_polish_and_english(client):
    assert subscribe(client, phone="22 123 45 67").get_json()["message"].startswith("To nie jest numer komórkowy")
    english = client.post("/api/v1/subscriptions?lang=en", json={"phone": "22 123 45 67", "categories": ["weather"],
                                                                   "consent": True})
    assert english.get_json()["message"].startswith("This is not a mobile number")


@pytest.mark.parametrize(("overrides", "error"), [
    ({"consent": False}, "consent_required"),
    ({"consent": "yes"}, "consent_required"),
    ({"categories": []}, "categories_missing"),
    ({"categories": ["weather", "lottery"]}, "category_unknown"),
    ({"categories": {"weather": 7}}, "level_invalid"),
    ({"areas": ["WARSZAWA"]}, "area_unknown"),
    ({"language": "de"}, "language_unknown"),
])
def test_it_refuses_bad_choices_with_a_stable_code(client, twilio, overrides, error):
    response = subscribe(client, **overrides)
    assert response.status_code == 400
    assert response.get_json()["error"] == error
    assert sent_sms(twilio) == []


def test_it_refuses_a_body_that_is_not_a_json_object(client):
    response = client.post("/api/v1/subscriptions", data="phone=1", content_type="text/plain")
    assert response.status_code == 400 and response.get_json()["error"] == "bad_request"


def test_it_answers_the_same_for_a_number_that_is_already_subscribed(client, twilio):
    subscribe(client)
    client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    age_codes(3600)
    again = subscribe(client)
    assert again.status_code == 202
    assert again.get_json() == {"status": "code_sent", "phone": PHONE, "expires_in": 600}


def test_a_wrong_code_counts_down_and_locks_after_five_tries(client, twilio):
    subscribe(client)
    good = last_code(twilio, PHONE)
    wrong = "000000" if good != "000000" else "111111"
    for tries_left in (4, 3, 2, 1):
        response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": wrong})
        assert response.status_code == 400
        assert response.get_json()["error"] == "code_invalid"
        assert response.get_json()["message"] == f"Nieprawidłowy kod. Pozostałe próby: {tries_left}."
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": wrong})
    assert response.get_json()["error"] == "code_locked"
    # Even the right code is void now.
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": good})
    assert response.get_json()["error"] == "code_locked"
    assert db.session.scalar(select(Subscriber.status)) == "pending"


def test_an_expired_code_is_refused(client, twilio):
    subscribe(client)
    age_codes(601)
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    assert response.get_json()["error"] == "code_expired"


def test_an_unknown_number_gets_the_same_answer_as_a_wrong_code(client):
    response = client.post("/api/v1/subscriptions/verify", json={"phone": "+48601234567", "code": "123456"})
    assert response.status_code == 400 and response.get_json()["error"] == "code_invalid"


def test_a_resend_must_wait_and_the_wait_grows(client, twilio):
    assert subscribe(client).status_code == 202
    response = subscribe(client)
    assert response.status_code == 429
    assert response.get_json()["error"] == "resend_wait"
    assert 55 <= int(response.headers["Retry-After"]) <= 61
    age_codes(61)
    assert subscribe(client).status_code == 202
    response = subscribe(client)
    assert response.status_code == 429 and 115 <= int(response.headers["Retry-After"]) <= 121
    assert len(sent_sms(twilio)) == 2


def test_it_limits_codes_per_ip(make_app, twilio):
    client = make_app(RATE_LIMIT_CODES_PER_IP=2).test_client()
    for n in (1, 2):
        assert subscribe(client, phone=f"50123456{n}").status_code == 202
    response = subscribe(client, phone="501234563")
    assert response.status_code == 429
    assert response.get_json()["error"] == "rate_limited"
    assert response.get_json()["message"].startswith("Zbyt wiele prób. Spróbuj ponownie za ")
    assert int(response.headers["Retry-After"]) > 0
    assert len(sent_sms(twilio)) == 2


def test_it_limits_codes_per_number_prefix(make_app, twilio):
    client = make_app(RATE_LIMIT_CODES_PER_PREFIX=2, RATE_LIMIT_CODES_PER_IP=100).test_client()
    assert subscribe(client, phone="501230001").status_code == 202
    assert subscribe(client, phone="501230002").status_code == 202
    assert subscribe(client, phone="501230003").get_json()["error"] == "rate_limited"
    assert subscribe(client, phone="601230003").status_code == 202  # another range is fine


def test_it_keeps_a_global_hourly_budget_of_verification_sms(make_app, twilio):
    client = make_app(VERIFICATION_SMS_HOURLY_BUDGET=1, RATE_LIMIT_CODES_PER_IP=100).test_client()
    assert subscribe(client, phone="501230001").status_code == 202
    response = subscribe(client, phone="691230002")
    assert response.status_code == 429 and response.get_json()["error"] == "rate_limited"
    assert len(sent_sms(twilio)) == 1


def queue_due_now():
    db.session.execute(update(SmsOutbox).values(next_attempt_at=utcnow()))
    db.session.commit()


def test_a_number_twilio_refuses_gets_a_clear_error_and_no_code(client, twilio):
    twilio.fail_number(PHONE, 21614)
    assert subscribe(client).status_code == 202  # the text is queued, not sent in the request
    assert sent_sms(twilio) == []
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": "123456"})
    assert response.status_code == 400 and response.get_json()["error"] == "phone_unreachable"
    assert db.session.scalar(select(Verification.voided_at)) is not None
    assert db.session.scalar(select(func.count()).select_from(SmsOutbox)) == 0


def test_a_twilio_outage_delays_the_code_until_twilio_is_back(client, twilio):
    twilio.fail_next(1, status=500)
    assert subscribe(client).status_code == 202
    assert sent_sms(twilio) == []  # refused once: it waits for a retry
    queue_due_now()
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    assert response.status_code == 200 and response.get_json()["status"] == "active"


def test_a_code_that_could_not_go_out_in_time_says_try_again(client, twilio):
    twilio.fail_next(1, status=500)
    subscribe(client)
    sent_sms(twilio)
    db.session.execute(update(SmsOutbox).values(next_attempt_at=utcnow(), not_after=utcnow()))
    db.session.commit()
    assert sent_sms(twilio) == []  # never sent late: the code would be dead on arrival
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": "123456"})
    assert response.status_code == 503 and response.get_json()["error"] == "sms_unavailable"


def verified(client, twilio, **overrides):
    subscribe(client, **overrides)
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    return response.get_json()["manage_url"].rsplit("/", 1)[1]


def test_the_manage_token_reads_changes_and_leaves(client, twilio):
    token = verified(client, twilio)
    assert client.get(f"/api/v1/subscriptions/{token}").get_json()["categories"] == {"weather": 1, "official": 1}
    response = client.put(f"/api/v1/subscriptions/{token}", json={"categories": {"hydro": 3, "events": 2}})
    assert response.status_code == 200
    assert response.get_json()["categories"] == {"hydro": 3, "events": 1}  # events have no levels
    response = client.delete(f"/api/v1/subscriptions/{token}")
    assert response.get_json()["status"] == "opted_out"
    actions = db.session.scalars(select(ConsentEvent.action).order_by(ConsentEvent.id)).all()
    assert actions == ["subscribe", "verify", "change", "opt_out"]


def test_a_tampered_or_revoked_manage_token_is_refused(client, twilio):
    token = verified(client, twilio)
    sid, signature = token.split(".")
    forged = f"{int(sid) + 1}.{signature}"
    assert client.get(f"/api/v1/subscriptions/{forged}").status_code == 404
    assert client.get(f"/api/v1/subscriptions/{token}x").get_json()["error"] == "link_invalid"
    from subscribers.service import revoke_links
    revoke_links(db.session.scalar(select(Subscriber)))
    assert client.get(f"/api/v1/subscriptions/{token}").status_code == 404


def test_a_lost_link_comes_back_with_a_code(client, twilio):
    verified(client, twilio)
    age_codes(3600)
    response = client.post("/api/v1/subscriptions/manage-code", json={"phone": "501234567"})
    assert response.status_code == 202
    response = client.post("/api/v1/subscriptions/verify", json={"phone": PHONE, "code": last_code(twilio, PHONE)})
    assert response.status_code == 200 and "/m/" in response.get_json()["manage_url"]


def test_a_lost_link_for_an_unknown_number_sends_nothing_but_answers_the_same(client, twilio):
    response = client.post("/api/v1/subscriptions/manage-code", json={"phone": "601234567"})
    assert response.status_code == 202
    assert sent_sms(twilio) == []


def test_a_multi_village_gmina_needs_an_area(make_app, twilio):
    client = make_app(SYRENA_MUNICIPALITY="porabka").test_client()
    assert [a["code"] for a in client.get("/api/v1/areas").get_json()["areas"]] == ["BUJ", "CZA", "KOB", "POR"]
    assert subscribe(client).get_json()["error"] == "areas_missing"
    assert subscribe(client, areas=["CZA", "KOB"]).status_code == 202


def test_the_consent_text_promises_stop_by_sms_only_when_the_gmina_has_a_two_way_number(app):
    from dataclasses import replace

    from subscribers.consent import consent_text
    kozy = app.extensions["municipality"]
    assert "STOP" not in consent_text("pl", kozy)
    with_number = replace(kozy, inbound_number="+48732000000")
    assert "odpowiadając STOP na numer +48732000000" in consent_text("pl", with_number)
    assert "by texting STOP to +48732000000" in consent_text("en", with_number)


def test_asking_twice_for_a_lost_link_looks_the_same_for_known_and_unknown_numbers(client, twilio):
    verified(client, twilio)
    age_codes(3600)
    answers = []
    for phone in ("501234567", "601234567"):  # subscribed, not subscribed
        first = client.post("/api/v1/subscriptions/manage-code", json={"phone": phone})
        second = client.post("/api/v1/subscriptions/manage-code", json={"phone": phone})
        answers.append((first.status_code, second.status_code, second.get_json()["status"]))
    assert answers[0] == answers[1] == (202, 202, "code_sent_if_subscribed")
