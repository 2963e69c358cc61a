"""Voice calls end to end: the real twilio SDK places calls on the fake Twilio Voice, whose
phone network answers, presses keys and calls our signed webhooks on a live server."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from alerts import publish as lifecycle
from alerts.call_outcome import poll_calls
from alerts.dispatcher import Dispatcher
from alerts.models import Alert, Delivery, DeliveryEvent
from db import db, utcnow
from population import phone_for, seed
from subscribers import call_choice
from subscribers.models import ConsentEvent, Subscriber
from tests.fakes.twilio_voice import FakeTwilioVoice
from tests.parallel import at_once, serve  # noqa: F401 - the fixture
from tests.test_delivery import alert, drain
from tests.test_quiet_hours_staff import quiet_now
from webhook_checks import WebhookRefusal

GMINA_NUMBER = "+48338100200"


@pytest.fixture
def calls(serve, twilio):  # noqa: ANN001, ANN201, F811
    """An app that places calls through the fake Twilio, served live so the fake's phone
    network can call its webhooks. Yields (app, base URL)."""
    from flask import current_app

    base = serve(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM=GMINA_NUMBER, VOICE_CALLS_PER_SECOND=0)
    return current_app._get_current_object(), base


def voice_deliveries() -> list[Delivery]:
    db.session.expire_all()
    return list(db.session.scalars(select(Delivery).where(Delivery.channel == "voice").order_by(Delivery.id)))


def one_call(twilio: FakeTwilioVoice, app) -> str:  # noqa: ANN001
    """Dispatch and return the SID of the single call placed."""
    before = len(twilio.calls)
    drain(app)
    placed = twilio.calls[before:]
    assert len(placed) == 1, placed
    return placed[0]["sid"]


def later(minutes: float = 5) -> None:
    """Time passes: every delivery waiting for its next call is due `minutes` earlier, and
    every message ends `minutes` earlier."""
    for delivery in db.session.scalars(select(Delivery).where(Delivery.status == "pending")):
        delivery.next_attempt_at -= timedelta(minutes=minutes)
    for message in db.session.scalars(select(Alert).where(Alert.expires_at.is_not(None))):
        message.expires_at -= timedelta(minutes=minutes)
    db.session.commit()


def test_a_call_reads_the_warning_in_polish_and_1_confirms_it(calls, twilio):
    app, base = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    a = alert(level=2, channels=("sms", "voice"), title="Burze 2. stopnia",
              text="Od 14:00 do 20:00 burze z gradem, wiatr do 90 km/h. Więcej: https://meteo.imgw.pl")
    assert lifecycle.publish(a) == {"sms": 1, "voice": 1}
    sid = one_call(twilio, app)
    call = twilio.call(sid)
    assert (call["To"], call["From"]) == (phone_for(0), GMINA_NUMBER)
    assert call["Url"].startswith(f"{base}/webhooks/twilio/voice/answer?d=")
    assert call["StatusCallback"].startswith(f"{base}/webhooks/twilio/voice/status?d=")
    assert call["MachineDetection"] == "DetectMessageEnd"
    assert voice_deliveries()[0].status == "sent"

    heard = twilio.ring(sid, "human", keys=["1"])
    assert heard.answers == [200, 200]
    assert {(v, lang) for v, lang, _ in heard.said} == {("Polly.Ola-Neural", "pl-PL")}
    text = heard.text
    assert "Komunikat Gminy Kozy." in text
    assert "Burze drugiego stopnia" in text
    assert "od czternastej do dwudziestej" in text.lower()
    assert "do dziewięćdziesięciu kilometrów na godzinę" in text
    assert "http" not in text and "14:00" not in text
    assert "Naciśnij 1, aby potwierdzić. Naciśnij 2, aby odsłuchać ponownie. Naciśnij 9, aby nie otrzymywać " \
           "więcej połączeń." in text
    assert text.endswith("Dziękujemy, potwierdzenie zapisane. Do widzenia.")

    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome, delivery.attempts) == ("delivered", "confirmed", 1)
    # Confirmed: never called again, whatever the time.
    later(60)
    drain(app)
    assert len(twilio.calls) == 1
    # The SMS went too: the resident has a mobile.
    assert [m["To"] for m in twilio.messages] == [phone_for(0)]


def test_2_reads_the_message_again_and_9_stops_calls_in_the_ledger(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("sms", "voice")))
    heard = twilio.ring(one_call(twilio, app), "human", keys=["2", "9"])
    assert heard.text.count("Burze z gradem") == 2
    assert heard.text.endswith("Nie będziemy już do Ciebie dzwonić. Aby znów otrzymywać połączenia, skontaktuj się "
                               "z urzędem gminy. Do widzenia.")
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome) == ("delivered", "opted_out")
    resident = db.session.scalar(select(Subscriber))
    assert resident.voice is False and resident.status == "active"  # SMS go on
    event = db.session.scalar(select(ConsentEvent).where(ConsentEvent.action == "voice_opt_out"))
    assert event.source == "voice" and "pressed 9" in event.detail

    # The next warning comes by SMS only.
    assert lifecycle.publish(alert(level=3, channels=("sms", "voice"))) == {"sms": 1, "voice": 0}


def test_a_landline_gets_calls_only_and_leaves_altogether_with_9(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 1}, voice_only=True)
    assert lifecycle.publish(alert(level=1, channels=("sms", "voice"))) == {"sms": 0, "voice": 1}
    twilio.ring(one_call(twilio, app), "human", keys=["9"])
    assert twilio.messages == []
    resident = db.session.scalar(select(Subscriber))
    assert (resident.voice, resident.status) == (False, "opted_out")


def test_an_answering_machine_gets_the_shorter_voicemail_and_no_more_calls(calls, twilio):
    app, _ = calls
    seed(1, categories={"hydro": 1}, areas=["KOZY"], calls={"hydro": 2})
    long_text = ("Przekroczenie stanu alarmowego na rzece Białej. Wody przybywa. "
                 + "Mieszkańcy ulic nad rzeką powinni przenieść dobytek wyżej i przygotować się do ewakuacji. " * 3)
    lifecycle.publish(alert(category="hydro", level=3, channels=("voice",), title="Stan alarmowy", text=long_text))
    heard = twilio.ring(one_call(twilio, app), "machine")
    assert heard.keys == [] and "Naciśnij" not in heard.text
    assert heard.text.endswith("Pełna treść jest na stronie internetowej gminy.")
    assert heard.text.count("przenieść dobytek") < 3  # shorter than the message
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome) == ("delivered", "voicemail")
    later(60)
    drain(app)
    assert len(twilio.calls) == 1


def test_busy_is_called_again_5_minutes_later_and_then_answered(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    twilio.ring(one_call(twilio, app), "busy")
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome, delivery.provider_ref) == ("pending", "busy", None)
    wait = (delivery.next_attempt_at - utcnow()).total_seconds()
    assert 280 < wait <= 300
    drain(app)
    assert len(twilio.calls) == 1  # not yet
    later(5)
    second = one_call(twilio, app)
    twilio.ring(second, "human", keys=["1"])
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome, delivery.attempts, delivery.provider_ref) == (
        "delivered", "confirmed", 2, second)


def test_three_unanswered_calls_at_most_and_an_answer_without_1_is_retried(calls, twilio):
    app, _ = calls
    seed(2, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    drain(app)
    first, second = twilio.calls
    twilio.ring(first["sid"], "no-answer")
    twilio.ring(second["sid"], "human")  # listened, pressed nothing
    for _ in range(2):
        later(5)
        drain(app)
        for call in twilio.calls[-2:]:
            twilio.ring(call["sid"], "no-answer" if call["To"] == first["To"] else "human")
    assert len(twilio.calls) == 6
    later(60)
    drain(app)
    assert len(twilio.calls) == 6
    by_phone = {d.subscriber_id: (d.status, d.outcome, d.attempts) for d in voice_deliveries()}
    assert sorted(by_phone.values()) == [("delivered", "answered", 3), ("undelivered", "no_answer", 3)]


def test_no_call_goes_past_the_message_s_end(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",), expires_in=timedelta(minutes=7)))
    twilio.ring(one_call(twilio, app), "busy")
    later(5)
    twilio.ring(one_call(twilio, app), "busy")
    # A third call would be 10 minutes in: past the end, so the second was the last.
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome, delivery.attempts) == ("undelivered", "busy", 2)


def test_a_forged_gather_or_status_is_refused_and_changes_nothing(calls, twilio):
    app, base = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    sid = one_call(twilio, app)
    [delivery] = voice_deliveries()
    fields = {"CallSid": sid, "AccountSid": twilio.account_sid, "CallStatus": "in-progress", "Digits": "1",
              "From": GMINA_NUMBER, "To": phone_for(0)}
    url = f"{base}/webhooks/twilio/voice/gather?d={delivery.id}"
    assert twilio.post_signed(url, fields, signature="forged").status_code == 403
    # Signed for another URL (another delivery) is forged too.
    other = twilio.post_signed(url, fields, signature=FakeTwilioVoice(auth_token="other").auth_token)
    assert other.status_code == 403
    status_url = f"{base}/webhooks/twilio/voice/status?d={delivery.id}"
    assert twilio.post_signed(status_url, {**fields, "CallStatus": "busy"}, signature="x").status_code == 403
    unsigned = twilio.post_signed(url, fields, signature="")
    assert unsigned.status_code == 403
    [after] = voice_deliveries()
    assert (after.status, after.outcome) == ("sent", None)
    assert db.session.scalar(select(func.sum(WebhookRefusal.count))) == 4
    # A real key press still works afterwards.
    twilio.ring(sid, "human", keys=["1"])
    assert voice_deliveries()[0].outcome == "confirmed"


def test_a_signed_webhook_for_a_call_that_is_not_the_delivery_s_changes_nothing(calls, twilio):
    app, base = calls
    seed(2, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    drain(app)
    mine, theirs = voice_deliveries()
    # Twilio's signature, but the CallSid of the other resident's call.
    fields = {"CallSid": theirs.provider_ref, "AccountSid": twilio.account_sid, "CallStatus": "in-progress",
              "Digits": "1", "From": GMINA_NUMBER, "To": phone_for(0)}
    answer = twilio.post_signed(f"{base}/webhooks/twilio/voice/gather?d={mine.id}", fields)
    assert answer.status_code == 200 and "<Hangup" in answer.text
    assert [(d.status, d.outcome) for d in voice_deliveries()] == [("sent", None), ("sent", None)]


def test_a_key_press_and_the_end_of_the_call_at_the_same_instant_count_once(calls, twilio):
    app, base = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    sid = one_call(twilio, app)
    [delivery] = voice_deliveries()
    common = {"CallSid": sid, "AccountSid": twilio.account_sid, "From": GMINA_NUMBER, "To": phone_for(0)}
    requests_ = [
        (f"{base}/webhooks/twilio/voice/gather?d={delivery.id}", {**common, "CallStatus": "in-progress",
                                                                   "Digits": "1"}),
        (f"{base}/webhooks/twilio/voice/status?d={delivery.id}", {**common, "CallStatus": "completed",
                                                                   "CallDuration": "40"}),
    ] * 4  # each twice over: Twilio retries webhooks
    answers = at_once(len(requests_), lambda i: twilio.post_signed(*requests_[i]).status_code)
    assert sorted(set(answers)) == [200, 204]
    [delivery] = voice_deliveries()
    # Either order ends in one final state, and no further call is queued.
    assert delivery.status == "delivered" and delivery.outcome in ("confirmed", "answered")
    later(60)
    drain(app)
    assert len(twilio.calls) == 1


def test_a_lost_status_callback_is_settled_by_asking_twilio(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    sid = one_call(twilio, app)
    twilio.ring(sid, "busy", callback=False)
    assert poll_calls() == 0  # too recent to be over
    db.session.execute(update(Delivery).values(sent_at=utcnow() - timedelta(minutes=15)))
    db.session.commit()
    assert poll_calls() == 1
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome) == ("pending", "busy")
    assert db.session.scalar(select(DeliveryEvent.source).where(DeliveryEvent.status == "busy")) == "poll"


def test_a_message_withdrawn_before_the_call_is_answered_is_not_read(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    a = alert(level=2, channels=("voice",))
    lifecycle.publish(a)
    sid = one_call(twilio, app)
    cancel = lifecycle.follow_up(a, "cancel", lifecycle.Draft(category="weather", titles={"pl": "Odwołanie"},
                                                               texts={"pl": "Burze odwołane."}))
    lifecycle.publish(cancel)
    heard = twilio.ring(sid, "human", keys=["1"])
    assert heard.text == "Ten komunikat nie jest już aktualny. Do widzenia."
    first = db.session.get(Delivery, voice_deliveries()[0].id)
    assert first.status == "skipped"


def test_who_is_called(calls, twilio):
    app, _ = calls
    wants_2 = seed(3, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2}, start=0)
    seed(3, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 3}, start=10)  # level 3 only
    seed(3, categories={"weather": 1}, areas=["KOZY"], start=20)  # no calls
    landline = seed(2, categories={"official": 1}, areas=["KOZY"], calls={"official": 1}, voice_only=True, start=30)
    assert lifecycle.publish(alert(level=2, channels=("sms", "voice"))) == {"sms": 9, "voice": 3}
    emergency = alert(category="emergency", level=None, channels=("sms", "voice"), title="Ewakuacja",
                      text="Opuść dom.")
    # Every resident who wants calls, whatever the category; landlines get no SMS.
    assert lifecycle.publish(emergency) == {"sms": 9, "voice": 8}
    called = set(db.session.scalars(select(Delivery.subscriber_id).where(Delivery.channel == "voice",
                                                                          Delivery.alert_id == emergency.id)))
    assert set(wants_2) <= called and set(landline) <= called


def test_a_routine_call_waits_out_the_quiet_hours_an_emergency_rings_at_once(make_app, serve, twilio):  # noqa: F811
    setting, _ends = quiet_now()
    from flask import current_app

    serve(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM=GMINA_NUMBER, VOICE_CALLS_PER_SECOND=0, QUIET_HOURS=setting)
    app = current_app._get_current_object()
    seed(1, categories={"official": 1}, areas=["KOZY"], calls={"official": 1})
    lifecycle.publish(alert(category="official", level=None, channels=("voice",), title="Zebranie",
                            text="Zebranie wiejskie w czwartek."))
    drain(app)
    assert twilio.calls == []
    lifecycle.publish(alert(category="emergency", level=None, channels=("voice",), title="Ewakuacja",
                            text="Opuść dom."))
    drain(app)
    assert len(twilio.calls) == 1


def test_the_dispatcher_places_calls_within_the_rate(calls, twilio):
    app, _ = calls
    seed(3, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    app.config["VOICE_CALLS_PER_SECOND"] = 5
    import time

    dispatcher = Dispatcher(app)
    started = time.monotonic()
    try:
        while dispatcher.run_once():
            pass
    finally:
        dispatcher.close()
    assert len(twilio.calls) == 3
    assert time.monotonic() - started < 5


def test_staff_see_the_spoken_text_its_length_and_cost_and_can_rewrite_it(calls, twilio):
    import html as html_lib
    import re

    from tests.test_admin_messages import compose, make_staff, page, signed_in

    app, _ = calls
    app.config["VOICE_PRICE_PER_MINUTE"] = 0.40
    seed(10, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    editor = signed_in(app, make_staff("editor"))
    draft = compose(editor, channels=["sms", "voice"])
    shown = html_lib.unescape(page(editor, f"/admin/messages/{draft.id}"))
    block = shown[shown.index('id="voice-preview"'):]
    block = block[:block.index("</section>")].replace("\xa0", " ")
    assert "Burze z gradem. Jutro od czternastej burze z gradem." in block  # derived, speakable
    assert "14:00" not in block
    facts = re.search(r"Około (\d+) s z menu klawiszy; płatne minuty na połączenie: (\d+)", block)
    assert facts and int(facts.group(2)) == 1
    assert "10 połączeń × 1 min × 0,40 zł = 4,00 zł; z ponownymi próbami (do 3) najwyżej 12,00 zł" in block
    # Staff rewrite it; the call reads exactly their words (made plain: one space between).
    response = editor.post(f"/admin/messages/{draft.id}/edit", data={
        "category": "weather", "level": "2", "title_pl": "Burze z gradem",
        "text_pl": "Jutro od 14:00 burze z gradem. Zabezpiecz rzeczy na balkonie.", "target": "all",
        "channels": ["sms", "voice"], "when": "now", "expires_at": (utcnow() + timedelta(hours=12)).astimezone(
            __import__("zoneinfo").ZoneInfo("Europe/Warsaw")).strftime("%Y-%m-%dT%H:%M"),
        "spoken_pl": "Jutro po południu   burze z gradem.\nSchowaj rzeczy z balkonu."})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    shown = html_lib.unescape(page(editor, f"/admin/messages/{draft.id}"))
    assert "Tekst napisany dla połączenia." in shown
    assert "Jutro po południu burze z gradem. Schowaj rzeczy z balkonu." in shown
    db.session.expire_all()
    lifecycle.publish(db.session.get(Alert, draft.id))
    drain(app)
    heard = twilio.ring(twilio.calls[0]["sid"], "human", keys=["1"]).text
    assert "Komunikat Gminy Kozy. Jutro po południu burze z gradem. Schowaj rzeczy z balkonu." in heard


def test_call_outcomes_per_village_and_the_not_confirmed_list_for_the_soltys(serve, twilio):  # noqa: F811
    import csv
    import io

    from flask import current_app

    from staff.audit import AuditEvent
    from tests.test_admin_messages import make_staff, page, signed_in

    serve(SYRENA_MUNICIPALITY="porabka", VOICE_BACKEND="twilio", TWILIO_VOICE_FROM=GMINA_NUMBER,
          VOICE_CALLS_PER_SECOND=0)
    app = current_app._get_current_object()
    seed(2, categories={"weather": 1}, areas=["CZA"], calls={"weather": 2}, start=0)
    seed(2, categories={"weather": 1}, areas=["BUJ"], calls={"weather": 2}, start=10)
    a = alert(level=2, channels=("voice",))
    lifecycle.publish(a)
    drain(app)
    by_phone = {c["To"]: c["sid"] for c in twilio.calls}
    twilio.ring(by_phone[phone_for(0)], "human", keys=["1"])
    twilio.ring(by_phone[phone_for(1)], "machine")
    twilio.ring(by_phone[phone_for(10)], "busy")
    twilio.ring(by_phone[phone_for(11)], "human")  # no key

    approver = signed_in(app, make_staff("approver"))
    shown = page(approver, f"/admin/messages/{a.id}")
    assert "Bez potwierdzenia: 3 z 4." in shown
    table = shown[shown.index('class="data compact call-outcomes"'):]
    table = table[:table.index("</table>")]
    assert 'data-call="confirmed">1<' in table and 'data-call="voicemail">1<' in table
    assert 'data-call="busy">1<' in table and 'data-call="answered">1<' in table

    listing = page(approver, f"/admin/messages/{a.id}/not-confirmed?area=BUJ")
    assert phone_for(10) in listing and phone_for(11) in listing and phone_for(1) not in listing
    response = approver.get(f"/admin/messages/{a.id}/not-confirmed.csv")
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))
    assert rows[0] == ["Telefon", "Miejscowość", "Ostatni wynik", "Połączeń"]
    # A number starts with "+": kept as text, not run as a formula by a spreadsheet.
    assert sorted(r[0].lstrip("'") for r in rows[1:]) == sorted([phone_for(1), phone_for(10), phone_for(11)])
    assert {r[2] for r in rows[1:]} == {"poczta głosowa", "zajęte", "odebrane, bez potwierdzenia"}
    # An editor sees the numbers masked; every look is audited.
    editor = signed_in(app, make_staff("editor"))
    assert phone_for(10) not in page(editor, f"/admin/messages/{a.id}/not-confirmed")
    actions = db.session.scalars(select(AuditEvent.action).where(AuditEvent.action.like("calls_not_confirmed%")))
    assert sorted(actions) == ["calls_not_confirmed_exported", "calls_not_confirmed_viewed",
                               "calls_not_confirmed_viewed"]


def test_a_call_whose_placing_timed_out_is_adopted_when_answered_and_not_placed_again(calls, twilio):
    from alerts.reconcile import reconcile_stuck

    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    sid = one_call(twilio, app)
    # What an ambiguous timeout leaves: uncertain, no SID, no event -- but Twilio placed it.
    db.session.execute(update(Delivery).values(status="uncertain", provider_ref=None, sent_at=None))
    db.session.execute(DeliveryEvent.__table__.delete())
    db.session.commit()
    heard = twilio.ring(sid, "human", keys=["1"])
    assert "Burze z gradem" in heard.text and heard.text.endswith("potwierdzenie zapisane. Do widzenia.")
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome, delivery.provider_ref) == ("delivered", "confirmed", sid)
    db.session.execute(update(Delivery).values(claimed_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    reconcile_stuck()
    later(60)
    drain(app)
    assert len(twilio.calls) == 1


def test_the_reconciler_finds_a_timed_out_call_its_status_callback_could_not_place(calls, twilio):
    """The call ended before anyone adopted it: its callback is kept with no delivery, and
    the reconciler still takes the call for the row's (no second call)."""
    from alerts.reconcile import reconcile_stuck

    app, base = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    sid = one_call(twilio, app)
    [delivery] = voice_deliveries()
    db.session.execute(update(Delivery).values(status="uncertain", provider_ref=None, sent_at=None))
    db.session.execute(DeliveryEvent.__table__.delete())
    db.session.commit()
    # A status callback of another delivery's id (so none adopts it) leaves an event of no delivery.
    twilio._set(sid, status="busy", duration=0)
    assert twilio.send_call_status(sid, url=f"{base}/webhooks/twilio/voice/status?d=999") == 204
    db.session.execute(update(Delivery).values(claimed_at=utcnow() - timedelta(minutes=5)))
    db.session.commit()
    reconcile_stuck()
    db.session.expire_all()
    assert db.session.get(Delivery, delivery.id).provider_ref == sid
    drain(app)
    assert len(twilio.calls) == 1


def test_a_withdrawal_reaches_a_resident_who_heard_the_warning_while_a_retry_waited(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    a = alert(level=2, channels=("voice",))
    lifecycle.publish(a)
    twilio.ring(one_call(twilio, app), "human")  # heard it, pressed nothing: a retry waits
    assert [(d.status, d.outcome) for d in voice_deliveries()] == [("pending", "answered")]
    cancel = lifecycle.follow_up(a, "cancel", lifecycle.Draft(category="weather", titles={"pl": "Odwołanie"},
                                                               texts={"pl": "Burze odwołane."}))
    assert lifecycle.publish(cancel) == {"voice": 1}
    first = db.session.scalar(select(Delivery).where(Delivery.alert_id == a.id))
    assert (first.status, first.outcome) == ("delivered", "answered")


def test_provider_errors_do_not_use_up_the_calls(calls, twilio):
    app, _ = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    for _ in range(2):
        twilio.fail_next(status=500)
        drain(app)
        later(60)
    assert twilio.calls == []
    twilio.ring(one_call(twilio, app), "busy")
    [delivery] = voice_deliveries()
    assert (delivery.status, delivery.outcome) == ("pending", "busy")  # one call made of three


def test_calls_waiting_for_the_call_rate_do_not_hold_up_sms(calls, twilio):
    import threading
    import time

    from alerts.window import SendingWindow

    app, _ = calls
    seed(8, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2}, voice_only=True, start=0)
    lifecycle.publish(alert(level=2, channels=("voice",)))  # 8 calls, queued first
    seed(20, categories={"weather": 1}, areas=["KOZY"], start=100)
    lifecycle.publish(alert(level=2, channels=("sms",)))  # then 20 SMS of the same priority
    app.config.update(VOICE_CALLS_PER_SECOND=1, SMS_RATE_PER_SECOND=0, DISPATCH_CONCURRENCY=4)
    dispatcher = Dispatcher(app)
    stop = threading.Event()
    runner = threading.Thread(target=SendingWindow(dispatcher).run, args=(stop, 0.1))
    started = time.monotonic()
    runner.start()
    try:
        while len(twilio.messages) < 20 and time.monotonic() - started < 20:
            time.sleep(0.05)
        sms_done = time.monotonic() - started
        calls_then = len(twilio.calls)
    finally:
        stop.set()
        runner.join(30)
        dispatcher.close()
    assert len(twilio.messages) == 20
    # At 1 call/s the 8 calls take 8 s; the SMS do not wait for them.
    assert sms_done < 3 and calls_then < 8, (sms_done, calls_then)


def test_a_call_is_not_placed_once_the_resident_turned_calls_off(calls, twilio):
    from subscribers import service

    app, _ = calls
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("sms", "voice")))
    dispatcher = Dispatcher(app)
    try:
        now = utcnow()
        ids = dispatcher.claim(now)
        jobs = dispatcher.load(ids)
        dispatcher.prepare(jobs, now)
        dispatcher.optout.expect(j.subscriber_id for j in jobs)
        # Calls turned off after the claim, before the call: the SMS goes, the call does not.
        call_choice.stop_calls(db.session.get(Subscriber, sid), service.Origin("web"))
        db.session.commit()
        outcomes = [dispatcher.send(j) for j in jobs]
    finally:
        dispatcher.close()
    assert {o.job.channel: o.left for o in outcomes} == {"sms": False, "voice": True}
    assert twilio.calls == [] and len(twilio.messages) == 1


def test_a_resident_who_rings_back_hears_what_is_in_force_most_severe_first(calls, twilio):
    app, base = calls
    url = f"{base}/webhooks/twilio/voice/incoming"
    heard = twilio.call_in(url, from_="+48338123456")
    assert heard.answers == [200]
    assert heard.text == ("Tu system powiadomień Gminy Kozy. Obecnie nie obowiązują żadne ostrzeżenia ani "
                          "komunikaty gminy. Do widzenia.")
    lifecycle.publish(alert(level=2, channels=("sms",), title="Burze 2. stopnia", text="Burze od 14:00."))
    lifecycle.publish(alert(category="emergency", level=None, channels=("sms",), title="Ewakuacja",
                            text="Opuść dom przy ulicy Szkolnej."))
    lifecycle.publish(alert(level=1, channels=("sms",), title="Ćwiczenia", text="To tylko próba.",
                            exercise=True))
    heard = twilio.call_in(url, from_="+48338123456").text
    assert heard.index("Ewakuacja") < heard.index("Burze drugiego stopnia") and "od czternastej" in heard
    assert "próba" not in heard  # an exercise is never read to the public
    # A forged ring is refused and says nothing.
    response = twilio.post_signed(url, {"CallSid": "CA" + "0" * 32, "From": "+48338123456",
                                        "CallStatus": "ringing"}, signature="forged")
    assert response.status_code == 403


def test_a_resident_reading_english_hears_the_english_text_in_an_english_voice(calls, twilio):
    app, _ = calls
    [en] = seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2}, language="en", start=0)
    [uk] = seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2}, language="uk", start=10)
    a = alert(level=2, channels=("voice",), title="Burze", text="Burze z gradem od 14:00.")
    a.titles, a.texts = {**a.titles, "en": "Storms", "uk": "Грози"}, {**a.texts, "en": "Hail storms from 2 pm.",
                                                                         "uk": "Грози з градом."}
    db.session.commit()
    lifecycle.publish(a)
    drain(app)
    by_phone = {c["To"]: c["sid"] for c in twilio.calls}
    heard = twilio.ring(by_phone[phone_for(0)], "human", keys=["1"])
    assert {(v, lang) for v, lang, _ in heard.said} == {("Polly.Amy", "en-GB")}
    assert heard.text.startswith("A message from Kozy Municipality. Storms. Hail storms from 2 pm.")
    assert "Press 1 to confirm." in heard.text and heard.text.endswith("Goodbye.")
    # No Ukrainian voice is set (VOICE_NAME_UK is off by default): the Polish call.
    heard = twilio.ring(by_phone[phone_for(10)], "human", keys=["1"])
    assert {(v, lang) for v, lang, _ in heard.said} == {("Polly.Ola-Neural", "pl-PL")}
    assert "od czternastej" in heard.text
    assert {d.outcome for d in voice_deliveries()} == {"confirmed"}
    # With a Ukrainian voice set, the Ukrainian text in it.
    app.config["VOICE_NAME_UK"] = "Google.uk-UA-Standard-A"
    b = alert(level=3, channels=("voice",), title="Burze", text="Burze.")
    b.titles, b.texts = {**b.titles, "uk": "Грози"}, {**b.texts, "uk": "Грози з градом."}
    db.session.commit()
    lifecycle.publish(b)
    drain(app)
    call = next(c for c in twilio.calls[2:] if c["To"] == phone_for(10))
    heard = twilio.ring(call["sid"], "human", keys=["1"])
    assert {(v, lang) for v, lang, _ in heard.said} == {("Google.uk-UA-Standard-A", "uk-UA")}
    assert "Грози з градом." in heard.text and "Натисніть 1, щоб підтвердити." in heard.text
    assert en and uk


def test_a_signed_voice_webhook_without_a_call_is_refused_and_changes_nothing(calls, twilio):
    app, base = calls
    seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    lifecycle.publish(alert(level=2, channels=("voice",)))
    one_call(twilio, app)
    [delivery] = voice_deliveries()
    for endpoint in ("answer", "gather", "status"):
        response = twilio.post_signed(f"{base}/webhooks/twilio/voice/{endpoint}?d={delivery.id}",
                                      {"AccountSid": twilio.account_sid, "Digits": "1"})  # no CallSid, no status
        assert response.status_code == 400, endpoint
    [after] = voice_deliveries()
    assert (after.status, after.outcome) == ("sent", None)
