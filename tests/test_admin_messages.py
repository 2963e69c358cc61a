"""The staff message screens: write, preview, approve, send, follow, correct and cancel.

Every test goes through the real views with signed-in staff (the login form of admin_auth),
sends through the real dispatcher to the fake Twilio, and checks what residents got, what
the screens said and what the audit log holds.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from babel.dates import format_date
from markupsafe import escape
from sqlalchemy import select, update

from alerts import publish as lifecycle
from alerts.dispatcher import Dispatcher
from alerts.models import Alert, Delivery
from alerts.preview import preview
from alerts.publish import TEXT_MAX_CHARS
from alerts.sms_text import count_segments
from db import db, utcnow
from i18n import translate
from population import phone_for, seed
from staff.audit import AuditEvent
from staff.models import StaffUser
from subscribers.models import Subscriber

PASSWORD = "correct horse battery staple"
WARSAW = ZoneInfo("Europe/Warsaw")


# --- helpers -----------------------------------------------------------------------------------

def make_staff(role: str, email: str | None = None) -> StaffUser:
    user = StaffUser(email=email or f"{role}@gmina.example.pl", role=role)
    user.set_password(PASSWORD)
    db.session.add(user)
    db.session.commit()
    return user


def signed_in(app, user: StaffUser):  # noqa: ANN001, ANN201
    """A test client signed in through the real login form."""
    client = app.test_client()
    response = client.post("/admin/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code in (302, 303), response.get_data(as_text=True)[:500]
    return client


def local(delta: timedelta) -> str:
    """A datetime-local value (gmina time) `delta` from now."""
    return (utcnow() + delta).astimezone(WARSAW).strftime("%Y-%m-%dT%H:%M")


def form(**fields) -> dict:  # noqa: ANN003
    data = {"category": "weather", "level": "2", "title_pl": "Burze z gradem",
            "text_pl": "Jutro od 14:00 burze z gradem. Zabezpiecz rzeczy na balkonie.",
            "target": "all", "channels": ["sms"], "when": "now", "expires_at": local(timedelta(hours=12))}
    data.update(fields)
    return {k: v for k, v in data.items() if v is not None}


def compose(client, **fields) -> Alert:  # noqa: ANN001, ANN003
    response = client.post("/admin/messages/new", data=form(**fields))
    assert response.status_code == 303, response.get_data(as_text=True)[:3000]
    alert_id = int(response.headers["Location"].rstrip("/").rsplit("/", 1)[1])
    return db.session.get(Alert, alert_id)


def page(client, url: str) -> str:  # noqa: ANN001
    response = client.get(url)
    assert response.status_code == 200, (url, response.status_code)
    return response.get_data(as_text=True)


def fingerprint(client, alert: Alert) -> str:  # noqa: ANN001
    html = page(client, f"/admin/messages/{alert.id}")
    return re.search(r'name="fingerprint" value="([0-9a-f]+)"', html).group(1)


def approve(client, alert: Alert):  # noqa: ANN001, ANN201
    response = client.post(f"/admin/messages/{alert.id}/approve",
                           data={"fingerprint": fingerprint(client, alert)})
    assert response.status_code == 303
    return client.get(response.headers["Location"]).get_data(as_text=True)


def drain(app) -> None:  # noqa: ANN001
    app.config.update({"SMS_RATE_PER_SECOND": 0})
    dispatcher = Dispatcher(app)
    while dispatcher.run_once():
        pass
    dispatcher.close()


def recipients(twilio) -> Counter:  # noqa: ANN001
    return Counter(m["To"] for m in twilio.messages)


def phones(ids_or_numbers) -> Counter:  # noqa: ANN001
    return Counter({phone_for(n): 1 for n in ids_or_numbers})


def audit_actions(alert: Alert) -> list[str]:
    return list(db.session.scalars(select(AuditEvent.action).where(AuditEvent.target == f"alert:{alert.id}")
                                   .order_by(AuditEvent.id)))


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section[^>]*id="{section_id}".*?</section>', html, re.S)
    assert match, f"no section #{section_id}"
    return match.group(0)


def error_text(code: str, **params) -> str:  # noqa: ANN003
    return str(escape(translate(f"error.{code}", "pl", **params)))


def reload(alert: Alert) -> Alert:
    db.session.expire_all()
    return db.session.get(Alert, alert.id)


# --- the two-person rule, end to end ---------------------------------------------------------------

def test_an_editors_draft_approved_by_an_approver_reaches_the_right_residents(app, twilio):
    seed(20, categories={"weather": 1}, areas=["KOZY"], start=0)
    seed(5, categories={"weather": 3}, areas=["KOZY"], start=100)  # only red warnings
    seed(5, categories={"official": 1}, areas=["KOZY"], start=200)  # no weather at all
    editor, approver = make_staff("editor"), make_staff("approver")
    ed, ap = signed_in(app, editor), signed_in(app, approver)

    alert = compose(ed)
    show = page(ed, f"/admin/messages/{alert.id}")
    assert 'data-reach="sms">20<' in show
    assert "Przekaż do zatwierdzenia" in show and "/approve" not in show  # an editor sees no send button
    ed.post(f"/admin/messages/{alert.id}/submit")
    assert reload(alert).status == "awaiting"
    assert "Burze z gradem" in page(ap, "/admin/queue")

    shown = approve(ap, alert)
    assert "Wysłano" in shown
    drain(app)
    assert recipients(twilio) == phones(range(20))
    assert twilio.messages[0]["Body"] == ("Gmina Kozy: Burze z gradem. Jutro od 14:00 burze z gradem. "
                                          "Zabezpiecz rzeczy na balkonie.")
    alert = reload(alert)
    assert alert.status == "published" and alert.approved_by == approver.id and alert.created_by == editor.id
    assert audit_actions(alert) == ["draft_created", "submitted", "approved", "sent"]

    sent = page(ap, f"/admin/messages/{alert.id}")
    assert 'data-figure="sms-total">20<' in sent and "Wyślij korektę" in sent and "Odwołaj" in sent


def test_self_approval_of_a_whole_gmina_message_is_refused_with_the_reason(app, twilio):
    seed(3, categories={"weather": 1}, areas=["KOZY"])
    approver = make_staff("approver")
    ap = signed_in(app, approver)
    alert = compose(ap)
    draft_page = page(ap, f"/admin/messages/{alert.id}")
    assert error_text("needs_second_person") in draft_page and 'id="approve"' not in draft_page
    ap.post(f"/admin/messages/{alert.id}/submit")
    shown = page(ap, f"/admin/messages/{alert.id}")
    assert error_text("self_approval") in shown and 'id="approve"' not in shown

    response = ap.post(f"/admin/messages/{alert.id}/approve", data={})
    assert error_text("self_approval") in ap.get(response.headers["Location"]).get_data(as_text=True)
    assert reload(alert).status == "awaiting"
    assert db.session.scalar(select(Delivery.id).limit(1)) is None
    assert audit_actions(alert)[-1] == "approval_refused"

    # A second approver may.
    other = signed_in(app, make_staff("approver", "second@gmina.example.pl"))
    approve(other, alert)
    drain(app)
    assert len(twilio.messages) == 3


def test_an_approver_may_send_alone_to_chosen_areas_of_a_multi_area_gmina(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(6, categories={"weather": 1}, areas=["CZA"], start=0)
    seed(4, categories={"weather": 1}, areas=["BUJ"], start=100)
    ap = signed_in(app, make_staff("approver"))
    alert = compose(ap, target="areas", areas=["CZA"])
    assert alert.areas == ["CZA"] and alert.status == "draft"
    shown = approve(ap, alert)
    assert "Wysłano" in shown
    drain(app)
    assert recipients(twilio) == phones(range(6))
    assert audit_actions(alert) == ["draft_created", "approved", "sent"]


def test_an_editor_cannot_approve_reject_or_break_glass(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(2, categories={"weather": 1}, areas=["CZA"])
    ed = signed_in(app, make_staff("editor"))
    alert = compose(ed, target="areas", areas=["CZA"])
    ed.post(f"/admin/messages/{alert.id}/submit")
    shown = page(ed, f"/admin/messages/{alert.id}")
    assert 'id="approve"' not in shown and 'id="reject"' not in shown and 'id="break-glass"' not in shown
    for action in ("approve", "reject", "break-glass"):
        response = ed.post(f"/admin/messages/{alert.id}/{action}", data={"reason": "because I can, really"})
        assert response.status_code == 303
        assert error_text("not_allowed") in ed.get(response.headers["Location"]).get_data(as_text=True)
    assert reload(alert).status == "awaiting"
    assert db.session.scalar(select(Delivery.id).limit(1)) is None
    assert "approval_refused" in audit_actions(alert)


def test_a_changed_message_is_not_sent_on_an_old_preview(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(2, categories={"weather": 1}, areas=["CZA", "BUJ"])
    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    alert = compose(ed, target="areas", areas=["CZA"])
    ed.post(f"/admin/messages/{alert.id}/submit")
    seen = fingerprint(ap, alert)
    ed.post(f"/admin/messages/{alert.id}/edit",
            data=form(target="areas", areas=["CZA", "BUJ"], text_pl="Inna treść"))
    response = ap.post(f"/admin/messages/{alert.id}/approve", data={"fingerprint": seen})
    assert "zmienił się" in ap.get(response.headers["Location"]).get_data(as_text=True)
    assert reload(alert).status == "awaiting"
    approve(ap, alert)
    assert reload(alert).status == "published"
    assert audit_actions(alert) == ["draft_created", "submitted", "draft_edited", "approval_refused", "approved", "sent"]


# --- break glass ------------------------------------------------------------------------------------

def test_break_glass_sends_an_emergency_by_a_lone_approver_with_a_reason(app, twilio):
    seed(4, categories={"events": 1}, areas=["KOZY"])  # an emergency reaches everyone
    ap = signed_in(app, make_staff("approver"))
    alert = compose(ap, category="emergency", level="", title_pl="Ewakuacja ul. Rzecznej",
                    text_pl="Woda przerwała wał. Opuść dom natychmiast.")
    shown = page(ap, f"/admin/messages/{alert.id}")
    assert 'id="break-glass"' in shown and 'id="approve"' not in shown

    response = ap.post(f"/admin/messages/{alert.id}/break-glass", data={"reason": "  nikt  "})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    message = error_text("break_glass_reason", minimum=10)
    assert f'<p class="field-error" id="reason-error">{message}</p>' in html
    assert "  nikt  </textarea>" in html
    assert reload(alert).status == "draft" and db.session.scalar(select(Delivery.id).limit(1)) is None

    reason = "Wójt nieosiągalny, woda przelewa się przez wał"
    response = ap.post(f"/admin/messages/{alert.id}/break-glass", data={"reason": reason})
    assert response.status_code == 303  # no fingerprint of what was seen: refused, nothing sent
    assert reload(alert).status == "draft"
    response = ap.post(f"/admin/messages/{alert.id}/break-glass",
                       data={"reason": reason, "fingerprint": fingerprint(ap, alert)})
    assert response.status_code == 303
    drain(app)
    assert recipients(twilio) == phones(range(4))
    alert = reload(alert)
    assert alert.status == "published" and alert.break_glass and alert.meta["break_glass_reason"] == reason
    event = db.session.scalar(select(AuditEvent).where(AuditEvent.action == "break_glass"))
    assert event.flagged and event.detail["reason"] == reason and event.target == f"alert:{alert.id}"
    assert "tryb awaryjny" in page(ap, f"/admin/messages/{alert.id}")


# --- exercises -------------------------------------------------------------------------------------

def test_an_exercise_reaches_only_the_test_group_and_stays_out_of_the_statistics(app, twilio):
    ids = seed(10, categories={"official": 1, "weather": 1}, areas=["KOZY"])
    db.session.execute(update(Subscriber).where(Subscriber.id.in_(ids[:2])).values(test_group=True))
    db.session.commit()
    ap = signed_in(app, make_staff("approver"))
    exercise = compose(ap, category="official", level="", title_pl="Próbny alarm", text_pl="Test łączności.",
                       exercise="1")
    shown = page(ap, f"/admin/messages/{exercise.id}")
    assert translate("preview.warning_exercise", "pl") in shown and 'data-reach="sms">2<' in shown
    approve(ap, exercise)  # no second person needed for an exercise
    drain(app)
    assert recipients(twilio) == phones(range(2))
    assert {m["Body"] for m in twilio.messages} == {"Gmina Kozy: CWICZENIA: Probny alarm. Test lacznosci."}

    # A real message the same day is counted; the exercise is not.
    other = signed_in(app, make_staff("approver", "second@gmina.example.pl"))
    real = compose(ap, title_pl="Silny wiatr")
    ap.post(f"/admin/messages/{real.id}/submit")
    approve(other, real)
    today = section(page(ap, "/admin/"), "today")
    assert "Silny wiatr" in today and "Próbny alarm" not in today
    assert "data-today-total>10<" in today
    assert "Ćwiczenia dzisiaj: 1" in today


# --- scheduling ------------------------------------------------------------------------------------

def test_a_scheduled_message_leaves_at_its_time(make_app, twilio, monkeypatch):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(3, categories={"events": 1}, areas=["POR"])
    ap = signed_in(app, make_staff("approver"))
    send_at = local(timedelta(hours=2))
    alert = compose(ap, category="events", level="", title_pl="Dożynki", text_pl="Zapraszamy na dożynki.",
                    target="areas", areas=["POR"], when="later", send_at=send_at,
                    expires_at=local(timedelta(days=1)))
    shown = page(ap, f"/admin/messages/{alert.id}")
    moment = datetime.fromisoformat(send_at)  # a Polish date with the month in words: "3 gru 2026, 10:19"
    when = f"{format_date(moment, 'medium', locale='pl')}, {moment:%H:%M}"
    assert f"Zatwierdź i zaplanuj na {when}" in shown
    approve(ap, alert)
    alert = reload(alert)
    assert alert.status == "scheduled" and db.session.scalar(select(Delivery.id).limit(1)) is None
    assert alert.send_at == datetime.fromisoformat(send_at).replace(tzinfo=WARSAW)
    assert "Dożynki" in section(page(ap, "/admin/"), "scheduled")

    assert lifecycle.publish_due(now=alert.send_at - timedelta(minutes=1)) == 0
    assert lifecycle.publish_due(now=alert.send_at) == 1
    # The dispatcher runs at that time too (its deliveries are due from send_at).
    monkeypatch.setattr("alerts.dispatcher.utcnow", lambda: alert.send_at + timedelta(seconds=5))
    drain(app)
    assert recipients(twilio) == phones(range(3))
    assert audit_actions(alert) == ["draft_created", "scheduled"]


def test_a_scheduled_message_can_be_stopped_and_a_waiting_one_rejected(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    alert = compose(ap, target="areas", areas=["POR"], when="later", send_at=local(timedelta(hours=2)))
    approve(ap, alert)
    assert reload(alert).status == "scheduled"
    ap.post(f"/admin/messages/{alert.id}/unschedule")
    assert reload(alert).status == "draft"
    assert lifecycle.publish_due(now=utcnow() + timedelta(hours=3)) == 0

    other = compose(ed, target="areas", areas=["POR"])
    ed.post(f"/admin/messages/{other.id}/submit")
    response = ap.post(f"/admin/messages/{other.id}/reject", data={"reason": "Zły adres"})
    shown = ap.get(response.headers["Location"]).get_data(as_text=True)
    assert "Zły adres" in shown and reload(other).status == "rejected"
    assert audit_actions(alert) == ["draft_created", "scheduled", "unscheduled"]
    assert audit_actions(other) == ["draft_created", "submitted", "rejected"]


def test_an_editor_sees_who_can_stop_a_scheduled_message(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    make_staff("admin", "szef@gmina.example.pl")
    alert = compose(ap, target="areas", areas=["POR"], when="later", send_at=local(timedelta(hours=2)))
    approve(ap, alert)
    html = page(ed, f"/admin/messages/{alert.id}")
    told = html[html.index('id="who-can-stop"'):]
    assert "Zatrzymać go może osoba zatwierdzająca: approver@gmina.example.pl, szef@gmina.example.pl" in told
    assert 'id="who-can-stop"' not in page(ap, f"/admin/messages/{alert.id}"), "an approver has the button"


def test_a_draft_is_deleted_by_its_author_or_an_approver_and_nobody_else(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ed, other = signed_in(app, make_staff("editor")), signed_in(app, make_staff("editor", "inny@gmina.example.pl"))
    ap = signed_in(app, make_staff("approver"))
    mine = compose(ed, target="areas", areas=["POR"], title_pl="Próba tytułu")
    assert 'id="delete-draft"' in page(ed, f"/admin/messages/{mine.id}")
    assert 'id="delete-draft"' not in page(other, f"/admin/messages/{mine.id}")
    refused = other.post(f"/admin/messages/{mine.id}/delete", follow_redirects=True).get_data(as_text=True)
    assert "Nie masz uprawnień do tej czynności." in refused
    assert db.session.get(Alert, mine.id) is not None
    done = ed.post(f"/admin/messages/{mine.id}/delete")
    assert done.status_code in (302, 303) and done.headers["Location"].endswith("/admin/messages")
    db.session.expire_all()
    assert db.session.get(Alert, mine.id) is None
    [row] = db.session.scalars(select(AuditEvent).where(AuditEvent.action == "draft_deleted")).all()
    assert row.target == f"alert:{mine.id}" and row.detail["title"] == "Próba tytułu"

    # Submitted: no longer a draft. Approved, scheduled, then stopped: a draft again, but its
    # approved version is evidence and stays (PostgreSQL's trigger would refuse the delete).
    waiting = compose(ed, target="areas", areas=["POR"])
    ed.post(f"/admin/messages/{waiting.id}/submit")
    assert "tylko szkic" in ed.post(f"/admin/messages/{waiting.id}/delete",
                                    follow_redirects=True).get_data(as_text=True)
    stopped = compose(ap, target="areas", areas=["POR"], when="later", send_at=local(timedelta(hours=2)))
    approve(ap, stopped)
    ap.post(f"/admin/messages/{stopped.id}/unschedule")
    assert reload(stopped).status == "draft"
    assert 'id="delete-draft"' not in page(ap, f"/admin/messages/{stopped.id}")
    assert "nie był jeszcze zatwierdzony" in ap.post(f"/admin/messages/{stopped.id}/delete",
                                                     follow_redirects=True).get_data(as_text=True)
    db.session.expire_all()
    assert db.session.get(Alert, stopped.id) is not None


# --- follow-ups --------------------------------------------------------------------------------------

def test_an_update_and_a_cancellation_reach_exactly_the_original_recipients(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(5, categories={"weather": 1}, areas=["CZA"], start=0)
    seed(4, categories={"weather": 1}, areas=["BUJ"], start=100)
    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    original = compose(ap, target="areas", areas=["CZA"])
    approve(ap, original)
    drain(app)
    assert recipients(twilio) == phones(range(5))

    # A resident who signs up afterwards in CZA with the same choice would get the update
    # (matching now); nobody in BUJ gets anything.
    prefilled = page(ed, f"/admin/messages/{original.id}/update")
    assert "Jutro od 14:00 burze z gradem" in prefilled and 'value="CZA" id="area_CZA" checked' in prefilled
    response = ed.post(f"/admin/messages/{original.id}/update",
                       data=form(target="areas", areas=["CZA"], text_pl="Burze przesunięte na 18:00."))
    assert response.status_code == 303
    correction = db.session.scalar(select(Alert).where(Alert.parent_id == original.id))
    assert correction.kind == "update" and correction.status == "draft"
    shown = page(ap, f"/admin/messages/{correction.id}")
    assert 'data-reach="sms">5<' in shown and "AKTUALIZACJA" in shown
    twilio.reset()
    approve(ap, correction)
    drain(app)
    assert recipients(twilio) == phones(range(5))
    assert all(m["Body"].startswith("Gmina Porabka: AKTUALIZACJA: ") for m in twilio.messages)
    assert reload(original).status == "updated"

    cancel_form = page(ed, f"/admin/messages/{correction.id}/cancel")
    assert "Komunikat jest nieaktualny." in cancel_form and 'name="areas"' not in cancel_form
    response = ed.post(f"/admin/messages/{correction.id}/cancel",
                       data={"title_pl": "Burze z gradem", "text_pl": "Ostrzeżenie odwołane."})
    assert response.status_code == 303
    withdrawal = db.session.scalar(select(Alert).where(Alert.parent_id == correction.id))
    assert withdrawal.kind == "cancel" and withdrawal.areas == ["CZA"] and withdrawal.channels == ["sms"]
    assert 'data-reach="sms">5<' in page(ap, f"/admin/messages/{withdrawal.id}")
    twilio.reset()
    approve(ap, withdrawal)
    drain(app)
    assert recipients(twilio) == phones(range(5))
    assert all(m["Body"].startswith("Gmina Porabka: ODWOLANE: ") for m in twilio.messages)
    assert reload(correction).status == "cancelled"
    assert "draft_created" in audit_actions(withdrawal) and "sent" in audit_actions(withdrawal)


def test_a_cancellation_draft_can_be_edited_and_keeps_its_target(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(2, categories={"weather": 1}, areas=["KOB"])
    ap = signed_in(app, make_staff("approver"))
    original = compose(ap, target="areas", areas=["KOB"], channels=["sms", "push"])
    approve(ap, original)
    ap.post(f"/admin/messages/{original.id}/cancel", data={"title_pl": "Burze", "text_pl": "Nieaktualne."})
    withdrawal = db.session.scalar(select(Alert).where(Alert.parent_id == original.id))
    response = ap.post(f"/admin/messages/{withdrawal.id}/edit",
                       data={"title_pl": "Burze", "text_pl": "Już nieaktualne."})
    assert response.status_code == 303, response.get_data(as_text=True)[:2000]
    withdrawal = reload(withdrawal)
    assert withdrawal.texts == {"pl": "Już nieaktualne."}
    assert withdrawal.areas == ["KOB"] and withdrawal.channels == ["sms", "push"] and withdrawal.level == 2


def test_a_message_not_sent_has_no_follow_up(app, twilio):
    ap = signed_in(app, make_staff("approver"))
    alert = compose(ap)
    response = ap.get(f"/admin/messages/{alert.id}/update")
    assert response.status_code == 303
    assert error_text("parent_not_published") in ap.get(response.headers["Location"]).get_data(as_text=True)


# --- the preview is what happens -----------------------------------------------------------------------

def test_the_preview_counts_and_segments_match_what_is_sent(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    seed(7, categories={"weather": 1}, areas=["CZA"], start=0)
    seed(3, categories={"weather": 1}, areas=["CZA", "POR"], start=100, language="en")
    seed(2, categories={"weather": 1}, areas=["POR"], start=200, language="uk")
    ap = signed_in(app, make_staff("approver"))
    long_text = ("Silne burze z gradem do 4 cm i porywami wiatru do 100 km/h. Zabezpiecz samochód, "
                 "rzeczy na balkonie i w ogrodzie. Nie chowaj się pod drzewami. ") * 3
    alert = compose(ap, target="areas", areas=["CZA", "POR"], text_pl=long_text,
                    title_en="Severe storms", text_en="Severe storms with hail. Stay indoors.",
                    title_uk="Сильні грози", text_uk="Сильні грози з градом. Залишайтеся вдома.")
    expected = preview(alert)
    html = page(ap, f"/admin/messages/{alert.id}")
    assert expected.reach == {"sms": 12} and f'data-reach="sms">{expected.reach["sms"]}<' in html
    assert "shortened" in expected.warnings and translate("preview.warning_shortened", "pl") in html
    for sms in expected.sms:
        assert f'data-sms-lang="{sms.language}">{escape(sms.body)}</pre>' in html
    assert "Сильні" in html  # Ukrainian stays Cyrillic

    approve(ap, alert)
    drain(app)
    assert len(twilio.messages) == expected.reach["sms"]
    assert sum(count_segments(m["Body"]).segments for m in twilio.messages) == expected.sms_segments
    bodies = {s.language: s.body for s in expected.sms}
    by_phone = {m["To"]: m["Body"] for m in twilio.messages}
    assert {by_phone[phone_for(n)] for n in range(7)} == {bodies["pl"]}
    assert {by_phone[phone_for(n)] for n in range(100, 103)} == {bodies["en"]}
    assert {by_phone[phone_for(n)] for n in range(200, 202)} == {bodies["uk"]}

    sent = page(ap, f"/admin/messages/{alert.id}")
    segments = sum(count_segments(m["Body"]).segments for m in twilio.messages)
    assert f"({segments} części SMS)" in sent
    assert 'class="chart"' in section(sent, "delivery") or "<svg" in sent


def test_the_preview_lists_the_characters_that_make_an_sms_dearer(app, twilio):
    seed(1, categories={"weather": 1}, areas=["KOZY"])
    ap = signed_in(app, make_staff("approver"))
    alert = compose(ap, title_pl="Żółć", text_pl="Gęś", keep_diacritics="1")
    html = page(ap, f"/admin/messages/{alert.id}")
    warning = re.search(r'<li class="warning warning-ucs2">.*?</li>', html, re.S).group(0)
    for ch in "Żółćę":
        assert f"<code>{ch}</code>" in warning
    assert "UCS-2" in html


def test_failures_figures_and_cost_are_shown_after_sending(make_app, twilio):
    app = make_app(SYRENA_MUNICIPALITY="porabka", SMS_PRICE_PER_SEGMENT="0.20")
    seed(4, categories={"weather": 1}, areas=["CZA"])
    twilio.fail_number(phone_for(0), 21610)  # the resident blocked us (STOP at the operator)
    ap = signed_in(app, make_staff("approver"))
    alert = compose(ap, target="areas", areas=["CZA"])
    approve(ap, alert)
    drain(app)
    html = page(ap, f"/admin/messages/{alert.id}")
    assert 'data-figure="sms-total">4<' in html and 'data-figure="sms-failed">1<' in html
    failures = section(html, "failures")
    assert "<code>21610</code>" in failures
    # 3 single-segment SMS x 0.20: Twilio reports no segments through a Messaging Service, so
    # the dispatcher counts the body it sent; nothing is left to estimate.
    assert "data-cost-so-far>0,60\u00a0zł<" in html and "szacunek" not in html
    assert "<rect" in html[html.index("Wysłane"):] and "<polyline" not in html  # deliveries over time, as columns
    english = page(ap, f"/admin/messages/{alert.id}?lang=en")
    assert "PLN\u00a00.60" in english and "Deliveries" in english


# --- every form rejects bad input, next to the field, keeping what was typed ------------------------------

BAD_INPUT = [
    pytest.param({"text_pl": ""}, "text_pl", "text_missing", {}, id="empty text"),
    pytest.param({"target": "areas", "areas": None}, "areas", "areas_missing", {}, id="no area"),
    pytest.param({"when": "later", "send_at": "PAST"}, "send_at", "send_at_in_past", {}, id="past send time"),
    pytest.param({"when": "later", "send_at": "+3h", "expires_at": "+2h"}, "expires_at",
                 "expires_before_start", {}, id="expiry before start"),
    pytest.param({"text_pl": "x" * (TEXT_MAX_CHARS + 1)}, "text_pl", "text_too_long",
                 {"limit": TEXT_MAX_CHARS}, id="text too long"),
]


def _bad(fields: dict) -> dict:
    values = dict(fields)
    for key in ("send_at", "expires_at"):
        if values.get(key) == "PAST":
            values[key] = local(-timedelta(hours=1))
        elif isinstance(values.get(key), str) and values[key].startswith("+"):
            values[key] = local(timedelta(hours=int(values[key][1:-1])))
    return values


def assert_rejected(response, field: str, code: str, params: dict, typed: dict) -> None:  # noqa: ANN001
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert f'<p class="field-error" id="{field}-error">{error_text(code, **params)}</p>' in html
    assert f'href="#{field}"' in html  # the summary links to the field
    title = typed.get("title_pl")
    if title:
        assert f'value="{escape(title)}"' in html
    if typed.get("text_pl"):
        assert f">{escape(typed['text_pl'])}</textarea>" in html
    for key in ("send_at", "expires_at"):
        if typed.get(key):
            assert f'name="{key}" id="{key}" value="{typed[key]}"' in html
    for area in typed.get("areas") or []:
        assert f'value="{area}" id="area_{area}" checked' in html


@pytest.mark.parametrize(("fields", "field", "code", "params"), BAD_INPUT)
def test_the_compose_form_rejects_bad_input(make_app, twilio, fields, field, code, params):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ed = signed_in(app, make_staff("editor"))
    typed = form(**_bad({"title_pl": "Burze „z gradem” & <wiatr>", **fields}))
    response = ed.post("/admin/messages/new", data=typed)
    assert_rejected(response, field, code, params, typed)
    assert db.session.scalar(select(Alert.id).limit(1)) is None


@pytest.mark.parametrize(("fields", "field", "code", "params"), BAD_INPUT)
def test_the_edit_form_rejects_bad_input(make_app, twilio, fields, field, code, params):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ed = signed_in(app, make_staff("editor"))
    alert = compose(ed, target="areas", areas=["CZA"])
    typed = form(**_bad({"title_pl": "Zmieniony tytuł", **fields}))
    assert_rejected(ed.post(f"/admin/messages/{alert.id}/edit", data=typed), field, code, params, typed)
    assert reload(alert).title("pl") == "Burze z gradem"


@pytest.mark.parametrize(("fields", "field", "code", "params"), BAD_INPUT)
def test_the_update_form_rejects_bad_input(make_app, twilio, fields, field, code, params):
    app = make_app(SYRENA_MUNICIPALITY="porabka")
    ap = signed_in(app, make_staff("approver"))
    original = compose(ap, target="areas", areas=["CZA"])
    approve(ap, original)
    typed = form(**_bad({"title_pl": "Korekta", **fields}))
    response = ap.post(f"/admin/messages/{original.id}/update", data=typed)
    assert_rejected(response, field, code, params, typed)
    assert db.session.scalar(select(Alert.id).where(Alert.parent_id == original.id)) is None


def test_the_cancel_form_rejects_an_empty_text(app, twilio):
    ap = signed_in(app, make_staff("approver"))
    other = signed_in(app, make_staff("approver", "second@gmina.example.pl"))
    original = compose(ap)
    ap.post(f"/admin/messages/{original.id}/submit")
    approve(other, original)
    typed = {"title_pl": "Odwołanie burzy", "text_pl": ""}
    response = ap.post(f"/admin/messages/{original.id}/cancel", data=typed)
    assert_rejected(response, "text_pl", "text_missing", {}, typed)


def test_a_bad_level_and_no_channel_are_shown_next_to_their_fields(app, twilio):
    ed = signed_in(app, make_staff("editor"))
    response = ed.post("/admin/messages/new", data=form(level=""))
    assert_rejected(response, "level", "level_invalid", {}, form())
    response = ed.post("/admin/messages/new", data=form(channels=[]))
    assert_rejected(response, "channels", "channels_missing", {}, form())
    response = ed.post("/admin/messages/new", data=form(category="official", level="2"))
    assert_rejected(response, "level", "level_not_applicable", {}, form())
    html = ed.post("/admin/messages/new", data=form(category="")).get_data(as_text=True)
    assert '<p class="field-error" id="category-error">Wybierz kategorię.</p>' in html


# --- the screens -------------------------------------------------------------------------------------

def test_the_dashboard_shows_active_alerts_feeds_and_the_queue(app, twilio):
    from alerts.feeds import record_failure, record_success

    ed, ap = signed_in(app, make_staff("editor")), signed_in(app, make_staff("approver"))
    other = signed_in(app, make_staff("approver", "second@gmina.example.pl"))
    active = compose(ap, title_pl="Upał")
    ap.post(f"/admin/messages/{active.id}/submit")
    approve(other, active)
    waiting = compose(ed, title_pl="Przerwa w dostawie wody")
    ed.post(f"/admin/messages/{waiting.id}/submit")
    record_success("imgw-meteo", "3 warnings, 0 for us")
    record_failure("meteoalarm", RuntimeError("HTTP 503 from feeds.meteoalarm.org"))

    html = page(ed, "/admin/")
    assert "Upał" in section(html, "active") and "Przerwa w dostawie wody" not in section(html, "active")
    assert "Do zatwierdzenia: 1" in html
    feeds = section(html, "feeds")
    assert "IMGW – ostrzeżenia meteorologiczne" in feeds and "imgw-meteo" not in feeds
    # Not a typed feed error: "an error" in words, the text itself folded away in the details.
    assert "Meteoalarm</strong>" in feeds and "błąd przy odczycie; nie było jeszcze dobrej odpowiedzi" in feeds
    assert "<summary>Szczegóły techniczne</summary>" in feeds and "HTTP 503 from feeds.meteoalarm.org" in feeds
    assert "Upał" in section(html, "today")
    english = page(ed, "/admin/?lang=en")
    assert "To approve: 1" in english and "Messages in force" in english


def test_in_force_lists_neither_cancellations_nor_exercises(app, twilio):
    from alerts.models import KIND_CANCEL
    from tests.test_delivery import alert as published_alert

    storm = published_alert(title="Burza")
    lifecycle.publish(storm)
    drill = published_alert(title="Próbny alarm", exercise=True)
    lifecycle.publish(drill)
    ended = published_alert(title="Upał")
    lifecycle.publish(ended)
    notice = lifecycle.follow_up(ended, KIND_CANCEL, lifecycle.Draft(
        category=ended.category, level=ended.level, titles={"pl": "Odwołanie upału"}, texts={"pl": "Koniec."},
        channels=["sms"], starts_at=utcnow()))
    lifecycle.publish(notice)
    in_force = section(page(signed_in(app, make_staff("editor")), "/admin/"), "active")
    assert "Burza" in in_force
    assert "Próbny alarm" not in in_force and "Odwołanie upału" not in in_force and "Upał" not in in_force


@pytest.mark.parametrize(("error", "says"), [
    ("timeout: no answer within 10 s (https://danepubliczne.imgw.pl/api/data/warningsmeteo)",
     "brak odpowiedzi w wyznaczonym czasie od"),
    ("connection: [Errno 111] Connection refused (https://danepubliczne.imgw.pl/x)", "brak połączenia od"),
    ("http: HTTP 503 Service Unavailable (https://danepubliczne.imgw.pl/x)",
     "błąd serwera źródła (HTTP 503) od"),
    ("malformed: expected a JSON list, got an HTML page (https://danepubliczne.imgw.pl/x)",
     "nieczytelna odpowiedź od"),
])
def test_a_failing_feed_is_one_plain_line_since_its_last_good_answer(app, twilio, error, says):
    from datetime import datetime, timezone

    from alerts.feeds import record_failure, record_success
    from providers.feeds import FeedError

    ok_at = datetime(2026, 12, 2, 20, 6, tzinfo=timezone.utc)
    record_success("imgw-meteo", "3 warnings, 0 for us", now=ok_at)
    kind, message = error.split(": ", 1)
    failure = FeedError(kind, message.rsplit(" (", 1)[0], url=message.rsplit(" (", 1)[1].rstrip(")"))
    assert str(failure) == error  # what record_failure stores
    record_failure("imgw-meteo", failure, now=ok_at + timedelta(minutes=20))
    feeds = section(page(signed_in(app, make_staff("editor")), "/admin/"), "feeds")
    assert f"{says} 2 gru 2026, 21:06<" in feeds  # Warsaw time: since the last good answer
    line = feeds[feeds.index('class="feed-error"'):]
    assert line.index("</span>") < line.index("<details"), "the technical text is folded away"


def test_the_queue_puts_feed_alerts_first_by_urgency(app, twilio):
    now = utcnow()

    def waiting(title: str, category: str = "weather", level: int | None = 1,
                source: str = "manual") -> Alert:
        draft = lifecycle.Draft(category=category, level=level, titles={"pl": title}, texts={"pl": "Treść."},
                                starts_at=now, expires_at=now + timedelta(hours=6), source=source,
                                external_id=None if source == "manual" else title)
        alert = lifecycle.create_alert(draft)
        alert.status = "awaiting"
        db.session.commit()
        return alert

    waiting("Zebranie wiejskie", "official", None)
    waiting("Ewakuacja", "emergency", None)
    waiting("IMGW żółte", source="feed:meteo")
    waiting("IMGW czerwone", level=3, source="feed:meteo")
    html = page(signed_in(app, make_staff("approver")), "/admin/queue")
    titles = re.findall(r'<h2><a href="/admin/messages/\d+">([^<]+)</a></h2>', html)
    assert titles == ["IMGW czerwone", "IMGW żółte", "Ewakuacja", "Zebranie wiejskie"]
    assert html.count("Sprawdź i zatwierdź") == 4
    # Where it came from, in words (the source as alerts/ingest.py writes it is "feed:meteo").
    assert html.count("automatycznie: ostrzeżenia meteorologiczne IMGW") == 2 and "feed:meteo" not in html


def test_the_message_list_filters_by_status(app, twilio):
    ed = signed_in(app, make_staff("editor"))
    first = compose(ed, title_pl="Pierwszy szkic")
    second = compose(ed, title_pl="Drugi do zatwierdzenia")
    ed.post(f"/admin/messages/{second.id}/submit")
    everything = page(ed, "/admin/messages")
    assert "Pierwszy szkic" in everything and "Drugi do zatwierdzenia" in everything
    awaiting = page(ed, "/admin/messages?status=awaiting")
    assert "Drugi do zatwierdzenia" in awaiting and "Pierwszy szkic" not in awaiting
    assert 'badge-awaiting">czeka na zatwierdzenie<' in awaiting
    assert first.id and "Messages" in page(ed, "/admin/messages?lang=en")


def test_a_template_prefills_the_form_in_polish(app, twilio):
    ed = signed_in(app, make_staff("editor"))
    html = page(ed, "/admin/messages/new?template=water&lang=en")
    assert 'value="Przerwa w dostawie wody"' in html and "Beczkowóz" in html
    assert '<option value="utilities" data-hazard="0" selected>' in html
    # A one-area gmina has no area choice.
    assert 'name="target" value="all"' in html and 'name="areas"' not in html
    # Brackets left from the template are pointed out in the preview.
    alert = compose(ed, category="utilities", level="", title_pl="Przerwa w dostawie wody",
                    text_pl="Jutro nie będzie wody: [ulice].")
    assert "<code>[ulice]</code>" in page(ed, f"/admin/messages/{alert.id}")


def test_every_screen_needs_a_signed_in_staff_member(app):
    client = app.test_client()
    for url in ("/admin/", "/admin/messages/new", "/admin/messages", "/admin/queue", "/admin/messages/1"):
        response = client.get(url)
        assert response.status_code == 302 and "/admin/login" in response.headers["Location"]
    assert client.post("/admin/messages/1/approve").status_code == 302
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.action == "approved")) is None


def test_an_unknown_message_is_404(app):
    ed = signed_in(app, make_staff("editor"))
    assert ed.get("/admin/messages/999").status_code == 404
    assert ed.post("/admin/messages/999/approve").status_code == 404
