"""Roll-call after a flood (issue 14): who is asked, the personal link, answers by SMS, link
and call, the latest answer winning, record on behalf, re-send, close with late answers,
the export and printout, GDPR; on both databases, through the real HTTP doors."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from alerts.models import Alert, Delivery
from alerts.publish import publish_due
from db import db, utcnow
from population import phone_for, seed
from rollcall import answers, service, tally
from rollcall.models import HELP, SAFE, UNCLEAR, RollCall, RollCallAnswer, RollCallMember
from rollcall.text import read_token, token
from staff.audit import AuditEvent
from subscribers import erasure, groups
from subscribers.models import Subscriber
from subscribers.service import Origin, export_data
from tests.parallel import at_once, serve  # noqa: F401 - the fixture
from tests.test_admin_messages import make_staff, signed_in
from tests.test_delivery import drain
from tests.test_inbound_sms import reply_of, text_us


def start(staff, areas=None, groups_=None, question=None, **kw):  # noqa: ANN001, ANN003, ANN201
    from rollcall.text import default_question

    return service.start(staff, question or default_question("pl"), areas, groups_, **kw)


def member_of(roll_call: RollCall, sid: int) -> RollCallMember:
    db.session.expire_all()
    return db.session.scalar(select(RollCallMember).where(RollCallMember.roll_call_id == roll_call.id,
                                                          RollCallMember.subscriber_id == sid))


def link_path(body: str) -> str:
    found = re.search(r"/r/(\d+\.\d+\.[A-Za-z0-9_-]{16})", body)
    assert found, body
    return f"/r/{found.group(1)}"


def answer_by_link(client, path: str, choice: str, text: str = ""):  # noqa: ANN001, ANN201
    """Open the page and press a button (no CSRF token: the link is the credential, and a
    page left open for hours must still take the answer)."""
    page = client.get(path)
    assert page.status_code == 200 and 'value="help"' in page.get_data(as_text=True)
    return client.post(path, data={"answer": choice, "text": text})


def test_a_roll_call_asks_everyone_in_the_villages_whatever_they_chose_with_a_personal_link(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    boss = make_staff("approver")
    cza = seed(3, categories={"events": 1}, areas=["CZA"], start=0)  # no warnings chosen: asked anyway
    buj = seed(2, categories={"weather": 1}, areas=["BUJ"], start=100)
    both = seed(1, categories={"weather": 1}, areas=["POR", "CZA"], start=200)
    left = seed(1, categories={"weather": 1}, areas=["CZA"], start=300, status="opted_out")
    roll_call = start(boss, areas=["CZA", "POR"])
    asked = dict(db.session.execute(select(RollCallMember.subscriber_id, RollCallMember.area)
                                    .where(RollCallMember.roll_call_id == roll_call.id)).all())
    assert set(asked) == set(cza + both) and not set(asked) & set(buj + left)
    assert asked[both[0]] == "CZA"  # counted once, under the first of its asked villages
    drain(app)
    bodies = {m["To"]: m["Body"] for m in twilio.messages}
    assert set(bodies) == {phone_for(n) for n in (0, 1, 2, 200)}
    body = bodies[phone_for(0)]
    assert body.startswith("Gmina Porąbka: ".replace("ą", "a")) and "Czy jestes bezpieczny" in body, body
    # The link is the resident's own: it names this roll-call and this resident only.
    path = link_path(body)
    assert read_token(path[3:]) == (roll_call.id, cza[0])
    assert link_path(bodies[phone_for(1)]) != path
    assert len(body) <= 160  # one SMS
    # Nothing of it on the public pages or feeds.
    client = app.test_client()
    for url in ("/", "/komunikaty", "/api/v1/alerts?active=1", "/feeds/alerts.atom"):
        assert "bezpieczn" not in client.get(url).get_data(as_text=True).lower(), url
    # A forged or tampered link opens nothing.
    assert client.get(path[:-1] + ("A" if path[-1] != "A" else "B")).status_code == 404
    assert client.get(f"/r/{roll_call.id}.{buj[0]}.{'x' * 16}").status_code == 404


def test_answers_by_sms_by_link_and_from_staff_count_once_each_the_latest_winning(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    ids = seed(4, categories={"weather": 1}, areas=["KOZY"], start=0)
    roll_call = start(boss)
    drain(app)
    client = app.test_client()
    # SMS: TAK, POMOC and own words, any case, with or without Polish letters.
    assert "bezpieczny" in reply_of(text_us(client, twilio, "tak", phone=phone_for(0)))
    assert "112" in reply_of(text_us(client, twilio, "Potrzebuję POMOCY, woda w domu", phone=phone_for(1)))
    assert "POMOC" in reply_of(text_us(client, twilio, "zalało nam piwnicę", phone=phone_for(2)))
    # The same answer again is not confirmed again (an auto-responder gets one reply).
    assert reply_of(text_us(client, twilio, "TAK!", phone=phone_for(0))) is None
    assert [member_of(roll_call, s).answer for s in ids] == [SAFE, HELP, UNCLEAR, None]
    # The link: the resident changes their mind; the latest answer counts, and is shown.
    body = next(m["Body"] for m in twilio.messages if m["To"] == phone_for(0))
    page = answer_by_link(client, link_path(body), "help", "Mama upadła, potrzebna karetka")
    assert page.status_code == 303 and "done=help" in page.headers["Location"]
    assert member_of(roll_call, ids[0]).answer == HELP
    shown = client.get(link_path(body)).get_data(as_text=True)
    assert "potrzebujesz pomocy" in shown
    # The GET of a link (a messenger's preview) answers nothing.
    body3 = next(m["Body"] for m in twilio.messages if m["To"] == phone_for(3))
    client.get(link_path(body3))
    assert member_of(roll_call, ids[3]).answer is None
    # STOP still stops, in the middle of a roll-call.
    text_us(client, twilio, "STOP", phone=phone_for(3))
    assert db.session.get(Subscriber, ids[3]).status == "opted_out"
    # Every answer is kept; the tally counts each resident once.
    assert db.session.scalar(select(func.count()).select_from(RollCallAnswer)) == 5
    per_area, total = tally.counts(db.session.get(RollCall, roll_call.id))
    assert (total.asked, total.safe, total.help, total.waiting, total.undeliverable) == (4, 0, 3, 1, 0)
    helped = tally.need_help(roll_call, boss)
    assert [h["text"] for h in helped][0] == "Mama upadła, potrzebna karetka"
    assert {h["via"] for h in helped} == {"link", "sms"}


def test_an_sms_long_after_the_roll_call_is_a_keyword_again(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    drain(app)
    db.session.execute(update(RollCall).values(started_at=utcnow() - answers.OPEN_WINDOW - timedelta(minutes=1)))
    db.session.commit()
    reply = reply_of(text_us(app.test_client(), twilio, "POMOC", phone=phone_for(0)))
    assert member_of(roll_call, sid).answer is None and reply and "STOP" in reply  # the keywords' help


@pytest.mark.parametrize("words,expected", [
    ("TAK", SAFE), ("tak.", SAFE), ("Ok", SAFE), ("Jesteśmy bezpieczni", SAFE), ("так", SAFE), ("YES", SAFE),
    ("1", SAFE), ("POMOC", HELP), ("pomocy!!", HELP), ("Ratunku, woda", HELP), ("допоможіть", HELP),
    ("2", HELP), ("Tak, ale potrzebujemy pomocy z pompą", HELP), ("nie potrzebuję pomocy, wszystko ok", SAFE),
    ("nie potrzebuję pomocy", SAFE), ("Nie", HELP), ("Nie jestem bezpieczny, woda w domu", HELP),
    ("nie jest dobrze", HELP), ("woda w piwnicy", UNCLEAR), ("mam 2 dzieci", UNCLEAR), ("", UNCLEAR)])
def test_reading_a_reply(words, expected):
    assert answers.classify(words) == expected


def test_two_answers_of_one_resident_racing_end_with_the_later_one_whichever_commits_first(app):
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    member = member_of(roll_call, sid)
    now = utcnow()
    # The later answer commits first; the earlier one arriving afterwards changes nothing.
    assert answers.record(member, HELP, None, "sms", now=now + timedelta(seconds=1)).counted
    db.session.commit()
    late_comer = answers.record(member_of(roll_call, sid), SAFE, None, "link", now=now)
    db.session.commit()
    assert not late_comer.counted and not late_comer.late
    assert member_of(roll_call, sid).answer == HELP


def test_record_on_behalf_is_audited_with_who_and_how(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    clerk = make_staff("editor", "clerk@gmina.example.pl")
    ids = seed(2, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    client = signed_in(app, clerk)
    page = client.get(f"/admin/rollcalls/{roll_call.id}").get_data(as_text=True)
    assert phone_for(0) not in page  # an editor sees masked numbers
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    done = client.post(f"/admin/rollcalls/{roll_call.id}/answers",
                       data={"csrf_token": csrf, "phone": phone_for(0), "answer": "help", "how": "door",
                             "note": "Starsza pani, potrzebny transport"})
    assert done.status_code == 303
    m = member_of(roll_call, ids[0])
    row = db.session.get(RollCallAnswer, m.answer_id)
    assert (m.answer, row.via, row.how, row.recorded_by, row.text) == (
        HELP, "staff", "door", clerk.id, "Starsza pani, potrzebny transport")
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "rollcall_answer_recorded"))
    assert event.staff_id == clerk.id and event.detail["how"] == "door" and event.detail["answer"] == "help"
    # A number the roll-call did not ask is refused, with a clear message; nothing written.
    client.post(f"/admin/rollcalls/{roll_call.id}/answers",
                data={"csrf_token": csrf, "phone": "+48 600 000 999", "answer": "safe", "how": "phone"})
    assert db.session.scalar(select(func.count()).select_from(RollCallAnswer)) == 1
    # An editor cannot start, re-send or close.
    for url in ("/admin/rollcalls/", f"/admin/rollcalls/{roll_call.id}/resend", f"/admin/rollcalls/{roll_call.id}/close"):
        assert client.post(url, data={"csrf_token": csrf, "question": "x", "after": "0"}).status_code == 403


def test_a_re_send_asks_only_those_without_an_answer_when_it_goes_out(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    ids = seed(3, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss, resend_after=15)
    drain(app)
    assert len(twilio.messages) == 3
    answers.record(member_of(roll_call, ids[0]), SAFE, None, "link")
    db.session.commit()
    # The planned wave goes out at its time, to those still without an answer then.
    assert publish_due(utcnow()) == 0
    answers.record(member_of(roll_call, ids[1]), HELP, None, "link")
    db.session.commit()
    # Fifteen minutes pass.
    db.session.execute(update(Alert).where(Alert.status == "scheduled").values(send_at=utcnow()))
    db.session.commit()
    assert publish_due(utcnow()) == 1
    drain(app)
    assert [m["To"] for m in twilio.messages[3:]] == [phone_for(2)]
    # And a re-send at once, by an approver.
    service.resend(boss, db.session.get(RollCall, roll_call.id), 0)
    drain(app)
    assert [m["To"] for m in twilio.messages[4:]] == [phone_for(2)]
    assert db.session.get(RollCall, roll_call.id).waves == 3
    # Every wave carries the same personal link.
    assert len({link_path(m["Body"]) for m in twilio.messages if m["To"] == phone_for(2)}) == 1


def test_closing_freezes_the_tally_keeps_late_answers_and_sends_nothing_more(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    ids = seed(3, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss, resend_after=30)
    answers.record(member_of(roll_call, ids[0]), SAFE, None, "link")
    db.session.commit()
    assert service.close(boss, db.session.get(RollCall, roll_call.id))
    assert not service.close(boss, db.session.get(RollCall, roll_call.id))  # once
    drain(app)
    assert twilio.messages == []  # the SMS still waiting were not sent
    assert publish_due(utcnow() + timedelta(hours=1)) == 0  # nor the planned wave
    client = app.test_client()
    reply = reply_of(text_us(client, twilio, "POMOC", phone=phone_for(1)))
    assert reply and "112" in reply
    late = db.session.scalar(select(RollCallAnswer).where(RollCallAnswer.late.is_(True)))
    assert late is not None and late.answer == HELP
    _per_area, total = tally.counts(db.session.get(RollCall, roll_call.id))
    assert (total.safe, total.help) == (1, 0)  # the tally as it was at closing
    assert [r["answer"] for r in tally.late(roll_call, boss)] == [HELP]
    assert db.session.scalar(select(func.count()).select_from(AuditEvent)
                             .where(AuditEvent.action == "rollcall_closed")) == 1


def test_the_export_and_the_printout_list_everyone_help_first_and_are_audited(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    boss = make_staff("approver")
    ids = seed(3, categories={"weather": 1}, areas=["CZA"])
    twilio.fail_number(phone_for(2), 21211)  # an invalid number: undeliverable
    roll_call = start(boss)
    drain(app)
    answers.record(member_of(roll_call, ids[1]), HELP, "Dach zerwany", "sms")
    db.session.commit()
    client = signed_in(app, boss)
    csv_text = client.get(f"/admin/rollcalls/{roll_call.id}/export.csv").get_data(as_text=True)
    lines = csv_text.lstrip("\ufeff").splitlines()
    assert lines[1].startswith("potrzebuje pomocy,'" + phone_for(1))  # no formula and "Dach zerwany" in lines[1]
    assert "nie dotarło" in csv_text and "bez odpowiedzi" in csv_text
    printed = client.get(f"/admin/rollcalls/{roll_call.id}/print").get_data(as_text=True)
    assert phone_for(1) in printed and "Dach zerwany" in printed
    actions = set(db.session.scalars(select(AuditEvent.action)))
    assert {"rollcall_started", "rollcall_exported", "rollcall_printed"} <= actions
    _per_area, total = tally.counts(db.session.get(RollCall, roll_call.id))
    assert (total.help, total.undeliverable, total.waiting) == (1, 1, 1)


def test_a_roll_call_to_a_group_asks_its_members_only(make_app, twilio):
    make_app(SYRENA_MUNICIPALITY="porabka")
    boss = make_staff("approver")
    osp = seed(2, categories={"weather": 1}, areas=["CZA"], start=0)
    others = seed(2, categories={"weather": 1}, areas=["CZA"], start=10)
    for sid in osp:
        groups.add(db.session.get(Subscriber, sid), "osp", boss, Origin("staff"))
    roll_call = start(boss, groups_=["osp"])
    asked = set(db.session.scalars(select(RollCallMember.subscriber_id)
                                   .where(RollCallMember.roll_call_id == roll_call.id)))
    assert asked == set(osp) and not asked & set(others)


def test_answers_are_in_the_resident_s_export_and_go_with_erasure(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    answers.record(member_of(roll_call, sid), HELP, "Brak prądu", "link")
    db.session.commit()
    data = export_data(db.session.get(Subscriber, sid))
    [entry] = data["roll_call_answers"]
    assert entry["answer"] == HELP and entry["text"] == "Brak prądu" and entry["counted"]
    erasure.erase(db.session.get(Subscriber, sid))
    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(RollCallAnswer)) == 0
    assert db.session.scalar(select(func.count()).select_from(RollCallMember)) == 0
    assert app.test_client().get(f"/r/{token(roll_call.id, sid)}").status_code == 404


def test_a_call_asks_the_question_and_1_or_2_answers_it(serve, twilio):  # noqa: F811
    from flask import current_app

    serve(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200", VOICE_CALLS_PER_SECOND=0)
    app = current_app._get_current_object()
    boss = make_staff("approver")
    landline = seed(1, categories={"weather": 1}, areas=["KOZY"], start=0, calls={"weather": 2}, voice_only=True)
    caller = seed(1, categories={"weather": 1}, areas=["KOZY"], start=1, calls={"weather": 2})
    roll_call = start(boss)
    drain(app)
    calls = {c["To"]: c["sid"] for c in twilio.calls}
    assert set(calls) == {phone_for(0), phone_for(1)}
    assert {m["To"] for m in twilio.messages} == {phone_for(1)}  # the landline gets no SMS
    heard = twilio.ring(calls[phone_for(0)], keys=["2"])
    assert "bezpieczny" in heard.text and "naciśnij 2" in heard.text and "sto dwanaście" in heard.text
    heard = twilio.ring(calls[phone_for(1)], keys=["3", "1"])  # 3: again, then 1: safe
    assert heard.text.count("naciśnij 1") == 2
    assert member_of(roll_call, landline[0]).answer == HELP
    assert member_of(roll_call, caller[0]).answer == SAFE
    db.session.expire_all()
    assert set(db.session.scalars(select(Delivery.status).where(Delivery.channel == "voice"))) == {"delivered"}
    via = set(db.session.scalars(select(RollCallAnswer.via)))
    assert via == {"voice"}
    assert db.session.scalar(select(func.count()).select_from(Alert).where(Alert.source == "rollcall")) == 1


def test_the_dashboard_shows_an_open_roll_call_first_and_the_pages_exist_in_english(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    answers.record(member_of(roll_call, sid), HELP, None, "sms")
    db.session.commit()
    client = signed_in(app, boss)
    dash = client.get("/admin/").get_data(as_text=True)
    assert f'id="rollcall-{roll_call.id}"' in dash and "pomoc: 1" in dash
    assert dash.index(f'id="rollcall-{roll_call.id}"') < dash.index('id="active"')
    english = client.get(f"/admin/rollcalls/{roll_call.id}?lang=en").get_data(as_text=True)
    assert "Need help" in english and "Record an answer taken by phone or at the door" in english
    assert "Residents&#39; safety roll-call" in client.get("/admin/rollcalls/?lang=en").get_data(as_text=True)
    # The question is none of the message pages' business: they lead to the roll-call.
    carrier = db.session.scalar(select(Alert).where(Alert.source == "rollcall"))
    moved = client.get(f"/admin/messages/{carrier.id}")
    assert moved.status_code == 303 and moved.headers["Location"].endswith(f"/admin/rollcalls/{roll_call.id}")
    assert f"/admin/messages/{carrier.id}" not in client.get("/admin/messages").get_data(as_text=True)
    assert app.test_client().get(f"/alerts/{carrier.id}").status_code == 404
    assert app.test_client().get(f"/cap/{carrier.id}.xml").status_code == 404


def test_a_resident_reading_ukrainian_is_asked_and_answers_in_ukrainian(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"], language="uk")
    roll_call = start(boss)
    drain(app)
    [sms] = twilio.messages
    assert "Ви в безпеці?" in sms["Body"]
    client = app.test_client()
    page = client.get(link_path(sms["Body"])).get_data(as_text=True)
    assert 'lang="uk"' in page and "ДОПОМОГА – мені потрібна допомога" in page
    reply = reply_of(text_us(client, twilio, "так", phone=phone_for(0)))
    assert member_of(roll_call, sid).answer == SAFE and "Дякуємо" in reply


@pytest.mark.parametrize("body,answer,status", [
    ("Nie, woda w domu", HELP, "active"), ("Nie", HELP, "active"), ("Tak, dziękuję", SAFE, "active"),
    ("Tak jestem", SAFE, "active"), ("Koniec świata, zalało nas", UNCLEAR, "active"), ("STOP", None, "opted_out"),
    ("Rezygnuję", None, "opted_out"), ("STOP, nie chcę tych SMS", None, "opted_out"),
    ("Stop sms", None, "opted_out"), ("START KOZY", None, "active")])
def test_while_a_roll_call_asks_words_that_look_like_keywords_are_answers(make_app, twilio, body, answer, status):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    text_us(app.test_client(), twilio, body, phone=phone_for(0))
    assert member_of(roll_call, sid).answer == answer
    assert db.session.get(Subscriber, sid).status == status


def test_a_resident_who_left_comes_back_with_start_during_a_roll_call(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    client = app.test_client()
    text_us(client, twilio, "STOP", phone=phone_for(0))
    text_us(client, twilio, "START", phone=phone_for(0))
    assert db.session.get(Subscriber, sid).status == "active" and member_of(roll_call, sid).answer is None


def test_an_sms_answers_the_open_roll_call_before_a_newer_closed_one(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["CZA"])
    older = start(boss, areas=["CZA"])
    newer = start(boss, areas=["CZA"])
    service.close(boss, db.session.get(RollCall, newer.id))
    text_us(app.test_client(), twilio, "POMOC", phone=phone_for(0))
    assert member_of(older, sid).answer == HELP and member_of(newer, sid).answer is None


def test_someone_who_answered_is_not_called_again(serve, twilio):  # noqa: F811
    from flask import current_app

    serve(VOICE_BACKEND="twilio", TWILIO_VOICE_FROM="+48338100200", VOICE_CALLS_PER_SECOND=0)
    app = current_app._get_current_object()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"], calls={"weather": 2})
    roll_call = start(boss)
    drain(app)
    [call] = twilio.calls
    twilio.ring(call["sid"], "no-answer")  # a retry is queued
    db.session.expire_all()
    assert db.session.scalar(select(Delivery.status).where(Delivery.channel == "voice")) == "pending"
    sms = next(m["Body"] for m in twilio.messages)
    app.test_client().post(link_path(sms), data={"answer": "safe"})
    db.session.expire_all()
    assert db.session.scalar(select(Delivery.status).where(Delivery.channel == "voice")) == "skipped"
    db.session.execute(update(Delivery).values(next_attempt_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    drain(app)
    assert len(twilio.calls) == 1 and member_of(roll_call, sid).answer == SAFE


def test_staff_s_own_question_is_shown_and_read_whole(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    [sid] = seed(1, categories={"weather": 1}, areas=["KOZY"])
    question = "Czy woda weszła do domu? Czy ktoś jest ranny? Odpisz lub kliknij."
    roll_call = start(boss, question=question)
    page = app.test_client().get(f"/r/{token(roll_call.id, sid)}").get_data(as_text=True)
    assert "Czy ktoś jest ranny? Odpisz lub kliknij." in page
    from rollcall.text import asked, default_question

    assert asked(question, False) == question
    assert asked(default_question("pl"), True) == "Czy jesteś bezpieczny?"


def test_bad_input_to_the_staff_forms_is_a_clear_refusal_not_an_error(make_app, twilio):
    app = make_app()
    boss = make_staff("approver")
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    roll_call = start(boss)
    client = signed_in(app, boss)
    assert client.get(f"/admin/rollcalls/{roll_call.id}?member={'9' * 30}").status_code == 200
    page = client.get(f"/admin/rollcalls/{roll_call.id}").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    for data in ({"member": "9" * 30, "answer": "safe", "how": "phone"},
                 {"phone": "+48 600 000 999", "answer": "maybe", "how": "phone"},
                 {"phone": "abc", "answer": "safe", "how": "phone"}):
        assert client.post(f"/admin/rollcalls/{roll_call.id}/answers", data={"csrf_token": csrf, **data}).status_code == 303
    assert client.post(f"/admin/rollcalls/{roll_call.id}/resend", data={"csrf_token": csrf, "after": "x"}).status_code == 303
    assert client.post("/admin/rollcalls/", data={"csrf_token": csrf, "question": "", "resend_after": "x"}).status_code == 400
    assert client.post("/admin/rollcalls/", data={"csrf_token": csrf, "question": "Ok?", "areas": ["NOPE"]}).status_code == 400
    assert client.post(f"/r/{token(roll_call.id, 1)}", data={"answer": "maybe"}).status_code in (400, 404)
    assert db.session.scalar(select(func.count()).select_from(RollCallAnswer)) == 0
    assert db.session.scalar(select(func.count()).select_from(RollCall)) == 1
