"""A signed Twilio webhook is acted on once, for ever, and a chatty phone costs one hint a day
(subscribers/inbound_guard.py), proven with real parallel requests to a live server."""

from __future__ import annotations

import threading
from datetime import timedelta
from xml.etree import ElementTree

import requests
from sqlalchemy import func, select, update
from twilio.request_validator import RequestValidator

from db import db, utcnow
from subscribers import erasure
from subscribers.inbound_guard import HintReply, InboundSeen, sid_hash
from subscribers.models import ConsentEvent, InboundSms, Subscriber
from tests.test_inbound_sms import PHONE, reply_of, text_us

PARALLEL = 10


def count(model, *where) -> int:
    db.session.expire_all()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def signed(base_url, twilio, body, sid, phone=PHONE):
    url = f"{base_url}/webhooks/twilio/inbound"
    form = {"MessageSid": sid, "AccountSid": twilio.account_sid, "From": phone, "To": "+48732000000",
            "Body": body, "NumMedia": "0"}
    return url, form, {"X-Twilio-Signature": RequestValidator(twilio.auth_token).compute_signature(url, form)}


def all_at_once(requests_to_send):
    """POST every (url, form, headers) from its own thread, released together; the replies."""
    barrier = threading.Barrier(len(requests_to_send))
    results: list = [None] * len(requests_to_send)

    def post(i, url, form, headers):
        with requests.Session() as session:
            session.trust_env = False
            barrier.wait()
            results[i] = session.post(url, data=form, headers=headers, timeout=60)

    threads = [threading.Thread(target=post, args=(i, *r)) for i, r in enumerate(requests_to_send)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def message_of(response) -> str | None:
    assert response.status_code == 200, response.text
    found = ElementTree.fromstring(response.content).find("Message")
    return None if found is None else found.text


# --- replays ----------------------------------------------------------------------------------

def test_a_signed_start_replayed_after_erasure_does_not_subscribe_the_number_again(client, twilio):
    sid = "SM" + "a1" * 16
    assert reply_of(text_us(client, twilio, "START", sid=sid)).startswith("Gmina Kozy: zapisano")
    erasure.erase(db.session.scalar(select(Subscriber).where(Subscriber.phone == PHONE)))
    assert count(Subscriber) == 0

    replay = text_us(client, twilio, "START", sid=sid)  # the very request, signature and all

    assert reply_of(replay) is None
    assert count(Subscriber) == 0 and count(ConsentEvent) == 0 and count(InboundSms) == 0
    # What survives the erasure says nothing about the resident: a hash of Twilio's id.
    assert db.session.scalars(select(InboundSeen.sid_hash)).all() == [sid_hash(sid)]


def test_a_start_for_a_resident_already_in_is_remembered_too(client, twilio):
    text_us(client, twilio, "START")
    sid = "SM" + "b2" * 16
    assert reply_of(text_us(client, twilio, "START", sid=sid)) is not None
    assert reply_of(text_us(client, twilio, "START", sid=sid)) is None
    assert count(InboundSms) == 2


def test_a_start_with_an_unknown_area_is_remembered_with_what_went_wrong(make_app, twilio):
    client = make_app(SYRENA_MUNICIPALITY="porabka").test_client()
    sid = "SM" + "c3" * 16
    assert reply_of(text_us(client, twilio, "START NIGDZIE", sid=sid)) is not None
    assert reply_of(text_us(client, twilio, "START NIGDZIE", sid=sid)) is None
    assert db.session.scalars(select(InboundSms.action)).all() == ["start:area_unknown"]


def test_the_same_webhook_sent_ten_times_at_once_is_acted_on_once(live_server, twilio):
    sid = "SM" + "d4" * 16
    replies = all_at_once([signed(live_server, twilio, "START", sid)] * PARALLEL)

    texts = [message_of(r) for r in replies]
    assert len([t for t in texts if t]) == 1, texts
    assert count(Subscriber) == 1 and count(InboundSms) == 1 and count(InboundSeen) == 1
    assert count(ConsentEvent) == 1


def test_ten_different_starts_from_one_number_at_once_give_one_subscription(live_server, twilio):
    replies = all_at_once([signed(live_server, twilio, "START", f"SM{n:032d}") for n in range(PARALLEL)])
    assert all(r.status_code == 200 for r in replies), [r.status_code for r in replies]
    assert count(Subscriber) == 1 and count(InboundSms) == PARALLEL


# --- the hint for texts that are no keyword ---------------------------------------------------

def test_ten_texts_that_are_no_keyword_at_once_get_at_most_one_hint(live_server, twilio):
    replies = all_at_once([signed(live_server, twilio, "Dzien dobry, kiedy bedzie prad?", f"SM{n:032d}")
                           for n in range(PARALLEL)])

    texts = [message_of(r) for r in replies]
    assert len([t for t in texts if t]) == 1, texts
    assert count(InboundSms) == PARALLEL  # every text is still kept for staff to read
    [key] = db.session.scalars(select(HintReply.number_key)).all()
    assert PHONE not in key and PHONE[1:] not in key


def test_the_hint_comes_again_after_a_day_and_other_numbers_get_their_own(client, twilio):
    assert reply_of(text_us(client, twilio, "halo")) is not None
    assert reply_of(text_us(client, twilio, "halo?")) is None
    assert reply_of(text_us(client, twilio, "halo", phone="+48601000009")) is not None
    db.session.execute(update(HintReply).values(replied_at=utcnow() - timedelta(hours=23)))
    db.session.commit()
    assert reply_of(text_us(client, twilio, "halo??")) is None
    db.session.execute(update(HintReply).values(replied_at=utcnow() - timedelta(hours=24, seconds=1)))
    db.session.commit()
    assert reply_of(text_us(client, twilio, "halo!!!")) is not None


def test_stop_is_answered_whatever_the_daily_allowance_says(client, twilio):
    text_us(client, twilio, "START")
    assert reply_of(text_us(client, twilio, "co to?")) is not None
    assert reply_of(text_us(client, twilio, "co?")) is None
    # POMOC changes nothing, so it shares the allowance; STOP's confirmation always goes.
    assert reply_of(text_us(client, twilio, "POMOC")) is None
    assert reply_of(text_us(client, twilio, "STOP")) is not None


def test_housekeeping_drops_hint_windows_that_have_passed(client, twilio):
    text_us(client, twilio, "halo")
    text_us(client, twilio, "halo", phone="+48601000009")
    db.session.execute(update(HintReply).where(HintReply.number_key == db.session.scalars(
        select(HintReply.number_key)).first()).values(replied_at=utcnow() - timedelta(days=2)))
    db.session.commit()
    assert "1 old hint windows dropped" in erasure.housekeeping()
    assert count(HintReply) == 1


def test_a_reply_that_only_begins_with_a_keyword_resubscribes_nobody(client, twilio):
    text_us(client, twilio, "START")
    text_us(client, twilio, "STOP")
    # "Tak, dziękuję" to a message, or an auto-reply beginning "Info:", is no keyword.
    text_us(client, twilio, "Tak, dziękuję za informację o burzy")
    text_us(client, twilio, "Info: jestem na urlopie do poniedziałku")
    db.session.expire_all()
    assert db.session.scalar(select(Subscriber.status).where(Subscriber.phone == PHONE)) == "opted_out"


def test_an_auto_responder_texting_help_or_start_gets_one_paid_answer_a_day(client, twilio):
    text_us(client, twilio, "START")  # subscribed: that confirmation always goes
    answers = [reply_of(text_us(client, twilio, body)) for body in ("POMOC", "START", "POMOC", "START")]
    assert sum(a is not None for a in answers) == 1
